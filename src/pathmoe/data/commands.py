"""`pathmoe data fetch|tokenizer|tokenize|prepare --dataset-config FILE.json --out DATA_DIR`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable

from pathmoe.data.config import validate_dataset_config


def _load_config(path: str) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--dataset-config {path!r} does not exist")
    with open(p) as f:
        return validate_dataset_config(json.load(f))


def _step(name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from pathmoe import data

        from pathmoe.hub import RevisionLock

        cfg = _load_config(args.dataset_config)
        if name == "tokenize":
            result = data.tokenize_to_shards(cfg, args.out)
        else:
            fn = {"fetch": data.fetch_documents, "tokenizer": data.build_tokenizer, "prepare": data.prepare_dataset}[name]
            result = fn(cfg, args.out, RevisionLock(args.revision_lock))
        if isinstance(result, dict) and "num_tokens" in result:
            print(json.dumps({"num_tokens": result["num_tokens"], "vocab_size": result["vocab_size"], "dtype": result["dtype"]}))
        return 0
    return run


HELP = {
    "fetch": "stream the source's documents into raw/train.jsonl and raw/val.jsonl",
    "tokenizer": "train the BPE tokenizer (or snapshot a hub tokenizer) into tokenizer/",
    "tokenize": "tokenize raw/*.jsonl into shards/{train,val}_*.bin + index.json (resumable)",
    "prepare": "fetch + tokenizer + tokenize, each skipping work already done",
}


def register(subparsers: Any) -> None:
    """Add the `data` command group to the `pathmoe` CLI; each leaf sets `func(args) -> int`."""
    parser = subparsers.add_parser("data", help="prepare a dataset: documents, tokenizer, token shards")
    steps = parser.add_subparsers(dest="data_command", required=True)
    for name, text in HELP.items():
        sp = steps.add_parser(name, help=text, description=text)
        sp.add_argument("--dataset-config", required=True, help="resolved dataset config JSON (dataset_config.json)")
        sp.add_argument("--out", required=True, help="the dataset's data dir, <out>/data/<dataset>")
        if name != "tokenize":
            sp.add_argument("--revision-lock", default=None, metavar="FILE",
                            help="lock file pinning hub revisions to commits (<config>.lock.yaml), written at the "
                                 "first download; without it a hub revision is resolved for this call only")
        sp.set_defaults(func=_step(name))
