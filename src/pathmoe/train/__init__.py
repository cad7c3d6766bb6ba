"""Training through the DeepSpeed engine: `train(run_config)` and the CPU throughput benchmark.

Modules: spec (validated train settings), schedule (cosine lr), sampler (deterministic windows),
optim (AdamW groups), dsconfig, distenv (launcher env), checkpoint (resume + HF exports),
metrics (metrics.jsonl + expert load), measure (tokens/s, peak memory), restrict (Table 3 path
restriction), loop (`train`), bench (`bench_train`).
"""

from pathmoe.train.loop import NonFiniteLossError, train
from pathmoe.train.schedule import lr_factor
from pathmoe.train.spec import TrainSpec, parse_train_spec

__all__ = ["NonFiniteLossError", "TrainSpec", "lr_factor", "parse_train_spec", "train"]
