"""Training through the DeepSpeed engine: `train(run_config)` and the throughput benchmark.

Modules: spec (validated train settings), schedule (cosine lr), sampler (deterministic windows),
optim (AdamW groups), dsconfig, distenv (launcher env), checkpoint (resume + HF exports),
metrics (metrics.jsonl + expert load), measure (tokens/s, peak memory), restrict (Table 3 path
restriction), loop (`train`), throughput (`pathmoe bench`). Exports are lazy (pathmoe.lazy), so
`pathmoe config` and the light modules (spec, schedule) do not import torch.
"""

from pathmoe.lazy import lazy_exports

__all__ = ["NonFiniteLossError", "TrainSpec", "lr_factor", "parse_train_spec", "train"]
__getattr__ = lazy_exports(__name__, {"NonFiniteLossError": "loop", "train": "loop", "lr_factor": "schedule",
                                      "TrainSpec": "spec", "parse_train_spec": "spec"})
