"""Training curves of one run group (a base run and its seeds) from their metrics.jsonl logs.

The paper shows no training curves, but a reproduction is judged on them first: whether a variant
diverged, whether its learning rate followed the schedule, whether experts died. One figure per
run group, six panels over optimizer steps: loss, learning rate, gradient norm (one line per
seed), then per layer the largest and the smallest expert share and the dead-expert count (one
line per layer, mean over the seeds at the steps they all logged).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pathmoe.io import atomic_path  # noqa: E402

SEED_PANELS = (("loss", "loss (LM + aux)"), ("lr", "learning rate"), ("grad_norm", "gradient norm (before clipping)"))
LAYER_PANELS = (("expert_load_max", "largest expert share per layer"),
                ("expert_load_min", "smallest expert share per layer"),
                ("dead_experts", "dead experts per layer"))


def read_log(path: Path) -> list[dict]:
    """The records of one metrics.jsonl (FileNotFoundError naming it when absent, ValueError on a bad line)."""
    if not path.is_file():
        raise FileNotFoundError(f"training curves: {path} not found (the run has not trained)")
    records = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"training curves: {path}:{lineno} is not valid JSON ({exc.msg})") from None
    if not records:
        raise ValueError(f"training curves: {path} holds no logged step")
    return records


def layer_means(logs: Sequence[list[dict]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps every seed logged, and `key`'s per-layer values averaged over the seeds: [steps], [steps, layers]."""
    by_step = [{r["step"]: r[key] for r in log if key in r} for log in logs]
    steps = sorted(set.intersection(*(set(s) for s in by_step)))
    values = np.asarray([[s[step] for step in steps] for s in by_step], dtype=float)  # [seeds, steps, layers]
    return np.asarray(steps), values.mean(axis=0) if len(steps) else np.zeros((0, 0))


def curves_figure(group: str, logs: Sequence[list[dict]], labels: Sequence[str]) -> plt.Figure:
    """The 2 x 3 panel figure of one group's logs (one list of metrics records per seed)."""
    fig, axes = plt.subplots(2, 3, figsize=(15, 7.5))
    for ax, (key, title) in zip(axes[0], SEED_PANELS):
        for label, log in zip(labels, logs):
            pts = [(r["step"], r[key]) for r in log if r.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts), label=label)
        ax.set_title(title)
        ax.set_xlabel("step")
    axes[0][0].legend(fontsize="small")
    axes[0][2].set_yscale("log")
    for ax, (key, title) in zip(axes[1], LAYER_PANELS):
        steps, values = layer_means(logs, key)
        n_layers = values.shape[1] if values.ndim == 2 else 0
        colors = plt.cm.viridis(np.linspace(0, 1, max(n_layers, 1)))
        for layer in range(n_layers):
            ax.plot(steps, values[:, layer], color=colors[layer], lw=1)
        if n_layers:
            bar = fig.colorbar(plt.cm.ScalarMappable(cmap="viridis", norm=plt.Normalize(0, n_layers - 1)), ax=ax)
            bar.set_label("layer")
        ax.set_title(title + (f" (mean of {len(logs)} seeds)" if len(logs) > 1 else ""))
        ax.set_xlabel("step")
    fig.suptitle(f"Training curves: {group}")
    return fig


def render_curves(group: str, metrics: Sequence[Path], labels: Sequence[str], out_dir: Path) -> list[Path]:
    """Write <out_dir>/<group>.pdf and .png from each seed's metrics.jsonl (`labels` name the seeds)."""
    if len(metrics) != len(labels) or not metrics:
        raise ValueError(f"training curves {group!r}: {len(metrics)} metrics files for {len(labels)} labels")
    fig = curves_figure(group, [read_log(Path(p)) for p in metrics], labels)
    out_dir = Path(out_dir)
    paths = [out_dir / f"{group}.pdf", out_dir / f"{group}.png"]
    try:
        fig.tight_layout()
        for p in paths:
            with atomic_path(p, suffix=p.suffix) as tmp:
                fig.savefig(tmp, format=p.suffix[1:], dpi=110)
    finally:
        plt.close(fig)
    return paths
