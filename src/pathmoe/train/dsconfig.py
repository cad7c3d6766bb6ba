"""The DeepSpeed config dict, derived from the run spec (never written by hand per run)."""

from __future__ import annotations

from typing import Any

from pathmoe.train.spec import TrainSpec


def build_ds_config(spec: TrainSpec, world_size: int) -> dict[str, Any]:
    """Batch sizes, clipping, precision and ZeRO stage for `deepspeed.initialize`.

    The optimizer and scheduler are passed as client objects (AdamW param groups with
    no-decay/MoE splits, our cosine LambdaLR), so they are not described here.
    """
    accum = spec.grad_accum(world_size)
    cfg: dict[str, Any] = {
        "train_batch_size": spec.global_batch_size,
        "train_micro_batch_size_per_gpu": spec.micro_batch_size,
        "gradient_accumulation_steps": accum,
        "gradient_clipping": float(spec.grad_clip),
        "zero_optimization": {"stage": spec.zero_stage},
        "steps_per_print": 10**9,  # we log ourselves
        "wall_clock_breakdown": False,
        "bf16": {"enabled": spec.precision == "bf16"},
        "fp16": {"enabled": False},
        "zero_allow_untested_optimizer": True,
    }
    if spec.zero_stage == 3:
        cfg["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] = True
    return cfg
