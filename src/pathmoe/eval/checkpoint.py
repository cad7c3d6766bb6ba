"""Load one HF export (`<run_dir>/hf/step_<N>/`) for evaluation, refusing incomplete ones.

An export is only evaluated when it is complete and its tokenizer fits its embedding table:
silently evaluating a half-copied checkpoint or the wrong tokenizer would put a wrong number in
the paper tables with nothing to flag it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from pathmoe.io import read_json

REQUIRED_FILES = ("config.json", "model.safetensors")
# Embedding tables are often padded up to a multiple of 64/128 for speed; a tokenizer at most
# this many ids smaller than vocab_size still "matches".
VOCAB_PADDING = 128
_STEP_DIR = re.compile(r"^step_(\d+)$")


def check_checkpoint(ckpt_dir: str | Path) -> Path:
    """Raise FileNotFoundError naming the first missing file of a complete export."""
    ckpt = Path(ckpt_dir)
    if not ckpt.is_dir():
        raise FileNotFoundError(f"checkpoint directory not found: {ckpt}")
    for name in REQUIRED_FILES:
        if not (ckpt / name).is_file():
            raise FileNotFoundError(f"incomplete checkpoint {ckpt}: missing {name}")
    return ckpt


def list_exports(run_dir: str | Path) -> list[tuple[int, Path]]:
    """`(step, dir)` of every `hf/step_<N>/` export of a run, ascending by step."""
    hf = Path(run_dir) / "hf"
    found = [(int(m.group(1)), p) for p in hf.glob("step_*") if p.is_dir() and (m := _STEP_DIR.match(p.name))]
    return sorted(found)


def resolve_device(device: str) -> torch.device:
    """`auto` -> cuda when available else cpu; `cuda` without a GPU is an error, not a fallback."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"eval.device={device!r}: allowed are 'auto', 'cpu', 'cuda'")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("eval.device='cuda' but no CUDA device is available")
    return torch.device(device)


def eval_dtype(device: torch.device, bf16: bool) -> torch.dtype:
    """bf16 weights only for a bf16-trained run on CUDA; fp32 otherwise (CPU bf16 is slow and lossy)."""
    return torch.bfloat16 if (bf16 and device.type == "cuda") else torch.float32


def load_tokenizer_for(ckpt: Path, fallback_dir: Path | None = None):
    """The export's own tokenizer files, else the dataset's tokenizer directory."""
    from pathmoe.data import load_tokenizer

    for cand in (ckpt, fallback_dir):
        if cand is not None and (Path(cand) / "tokenizer.json").is_file():
            return load_tokenizer(cand)
    raise FileNotFoundError(f"no tokenizer for checkpoint {ckpt}: missing tokenizer.json"
                            + (f" (also not in {fallback_dir})" if fallback_dir else ""))


def check_vocab(tokenizer, vocab_size: int, where: Path) -> None:
    n = len(tokenizer)
    if not (vocab_size - VOCAB_PADDING < n <= vocab_size):
        raise ValueError(f"tokenizer vocabulary ({n} tokens) does not match vocab_size={vocab_size} "
                         f"of checkpoint {where}")


def _checked_export(ckpt_dir: str | Path, tokenizer_dir: str | Path | None) -> tuple[Path, Any]:
    """The export directory and its tokenizer, after checking its files and vocabulary size."""
    ckpt = check_checkpoint(ckpt_dir)
    config = read_json(ckpt / "config.json")
    if "vocab_size" not in config:
        raise ValueError(f"{ckpt / 'config.json'}: missing key 'vocab_size'")
    tokenizer = load_tokenizer_for(ckpt, Path(tokenizer_dir) if tokenizer_dir else None)
    check_vocab(tokenizer, int(config["vocab_size"]), ckpt)
    return ckpt, tokenizer


def check_export(ckpt_dir: str | Path, tokenizer_dir: str | Path | None = None) -> Path:
    """Complete files and a matching tokenizer, checked without loading any weights."""
    return _checked_export(ckpt_dir, tokenizer_dir)[0]


def load_checkpoint(ckpt_dir: str | Path, device: str = "auto", bf16: bool = False,
                    tokenizer_dir: str | Path | None = None):
    """`(model, tokenizer)` ready for evaluation: eval mode, on `device`, bf16 only on CUDA.

    The tokenizer the checks used is the one returned: a Llama or NeoX fast tokenizer takes real
    time to load, so it is loaded once per call.
    """
    ckpt, tokenizer = _checked_export(ckpt_dir, tokenizer_dir)

    from pathmoe.model.export import load_export  # checks the bytes against the hash recorded at export

    dev = resolve_device(device)
    model = load_export(ckpt, dtype=eval_dtype(dev, bf16)).to(dev).eval()
    return model, tokenizer
