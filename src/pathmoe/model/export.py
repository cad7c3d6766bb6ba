"""Load an HF export only when its bytes are the ones training wrote.

`pathmoe train` records the hash of every export (`hf/step_<N>.prov.json`, beside the directory)
when it writes it. One flipped byte in `model.safetensors` changes a weight, and so every number
evaluated from it, without any loader noticing; a flipped header byte makes safetensors fail with
a traceback. Every reader of exports (evaluation, analyses, path-restricted continuations) loads
through `load_export`, which checks the directory against its record first and turns any failure
into one line naming the export, so a corrupted export is an error, never a changed number.

An export inside a pathmoe run directory (`<run_dir>/hf/step_<N>/` with `<run_dir>/state_hash`)
must have its record; a stand-alone checkpoint (`pathmoe analyze` works on any) is checked when
it has one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

RUN_MARKER = "state_hash"  # `pathmoe train` writes it into every run directory (pathmoe.train.integrity)


def record_required(ckpt: Path) -> bool:
    """True for an export that `pathmoe train` wrote into a run directory."""
    return ckpt.parent.name == "hf" and (ckpt.parent.parent / RUN_MARKER).is_file()


def verify_export(ckpt_dir: str | os.PathLike) -> Path:
    """Raise ValueError (one line) when the export differs from the hash recorded at write time,
    or when an export of a run directory has no record; return the directory."""
    from pathmoe.audit.provenance import record_mismatch

    ckpt = Path(ckpt_dir)
    problem = record_mismatch(ckpt)
    if problem is None:
        return ckpt
    if problem.startswith("no hash record") and not record_required(ckpt):
        return ckpt
    raise ValueError(f"checkpoint {ckpt} was modified or corrupted after training wrote it: {problem}; "
                     "re-export or retrain it (`pathmoe train --restart`) instead of evaluating it")


def load_export(ckpt_dir: str | os.PathLike, **kwargs: Any):
    """`PathMoEForCausalLM.from_pretrained(ckpt_dir, **kwargs)` after `verify_export`; a file that
    cannot be read (a damaged header, a bad config.json) is a one-line ValueError.

    The model is built with the dropless dispatch whatever dispatch trained it: exports hold every
    expert in the dropless layout, and the deepspeed dispatch would need a process group (and drop
    tokens beyond its capacity), which evaluation and the analyses must not depend on.
    """
    from pathmoe.model import PathMoEForCausalLM

    ckpt = verify_export(ckpt_dir)
    kwargs = {"dispatch": "dropless", "expert_parallel_size": 1, **kwargs}
    try:
        return PathMoEForCausalLM.from_pretrained(str(ckpt), **kwargs)
    except Exception as exc:  # safetensors, json and transformers each raise their own types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"checkpoint {ckpt} cannot be loaded ({type(exc).__name__}: {first})") from exc


__all__ = ["load_export", "record_required", "verify_export"]
