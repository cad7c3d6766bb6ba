"""CPU speed of a few-shot generation task through lm-eval, with and without the KV cache.

    OMP_NUM_THREADS=1 python benchmarks/generation.py [--examples 24] [--shots 5] [--max-gen-toks 32]

Builds the built-in corpus in a temp dir and a TriviaQA-shaped `generate_until` task from its
held-out documents (context: the first words of a document; target: the words that follow; 5-shot
prompts, greedy decoding of up to `--max-gen-toks` tokens), then runs it through lm-eval's `HFLM`
on an untrained `small`-scale model with a 512-token context (speed does not depend on the
weights; an untrained model never emits the stop sequence, so every request decodes the full
`--max-gen-toks`). lm-eval always asks for `use_cache=True`; the uncached pass forces
`use_cache=False` into `generate`, which is how generation ran before the model had a cache
(every step re-runs the whole prefix). Both passes must produce identical generations.
Writes benchmarks/generation.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from pathmoe.io import atomic_write_text

SMALL_512 = {"d_model": 128, "n_layers": 8, "n_heads": 4, "n_kv_heads": 2, "n_experts": 8, "top_k": 2,
             "expert_hidden": 256, "max_seq_len": 512}  # configs/small.yaml's model with a 512-token context

TASK_YAML = """task: gen_continue
dataset_path: json
dataset_kwargs:
  data_files:
    test: "{data}"
test_split: test
fewshot_split: test
output_type: generate_until
doc_to_text: "Text: {{{{context}}}}\\nContinuation:"
doc_to_target: " {{{{target}}}}"
target_delimiter: ""
fewshot_delimiter: "\\n\\n"
generation_kwargs:
  until: ["\\n\\n"]
  do_sample: false
  max_gen_toks: {max_gen_toks}
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


def write_task(val_jsonl: Path, out: Path, n_docs: int, max_gen_toks: int) -> Path:
    """The `gen_continue` task folder: contexts of 24 words and their next 8 words from held-out documents."""
    out.mkdir(parents=True)
    rows = []
    for line in val_jsonl.read_text().splitlines():
        words = json.loads(line)["text"].split()
        if len(words) >= 32:
            rows.append({"context": " ".join(words[:24]), "target": " ".join(words[24:32])})
        if len(rows) == n_docs:
            break
    data = out / "gen_continue.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / "gen_continue.yaml").write_text(TASK_YAML.format(data=data, max_gen_toks=max_gen_toks))
    return out


def without_cache(model: torch.nn.Module) -> None:
    """Make `model.generate` ignore lm-eval's use_cache=True: every step re-runs the prefix."""
    generate = model.generate

    def generate_uncached(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        kwargs["use_cache"] = False
        return generate(*args, **kwargs)

    model.generate = generate_uncached


def run_pass(lm, tm, shots: int, batch_size: int) -> tuple[float, list[str], int]:
    """Wall seconds, the generations, and the prompt tokens of one pass over the task."""
    import lm_eval

    t0 = time.perf_counter()
    out = lm_eval.simple_evaluate(model=lm, tasks=["gen_continue"], num_fewshot=shots, task_manager=tm,
                                  log_samples=True, bootstrap_iters=0, random_seed=0, fewshot_random_seed=0)
    wall = time.perf_counter() - t0
    samples = out["samples"]["gen_continue"]
    gens = [s["resps"][0][0] for s in samples]
    prompt_tokens = sum(len(lm.tok_encode(s["arguments"][0][0])) for s in samples)
    return wall, gens, prompt_tokens


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=24)
    ap.add_argument("--shots", type=int, default=5)
    ap.add_argument("--max-gen-toks", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).with_name("generation.md")))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from pathmoe.data import TokenShards, load_tokenizer, prepare_dataset
    from pathmoe.model import PathMoEConfig, PathMoEForCausalLM

    with tempfile.TemporaryDirectory(prefix="pathmoe-genbench-") as work:
        data = Path(work) / "data"
        prepare_dataset({"source": {"kind": "builtin", "num_documents": 600, "seed": 0},
                         "tokenizer": {"kind": "bpe", "vocab_size": 2048}, "validation_documents": 100,
                         "num_workers": 1}, data)
        tokenizer = load_tokenizer(data / "tokenizer")
        vocab = TokenShards(data / "shards", "val").vocab_size
        tm = TaskManager(include_path=str(write_task(data / "raw" / "val.jsonl", Path(work) / "task",
                                                     args.examples, args.max_gen_toks)), include_defaults=False)
        results = {}
        for name in ("cached", "uncached"):
            torch.manual_seed(0)
            model = PathMoEForCausalLM(PathMoEConfig(vocab_size=vocab, **SMALL_512)).eval()
            if name == "uncached":
                without_cache(model)
            lm = HFLM(pretrained=model, backend="causal", tokenizer=tokenizer, batch_size=args.batch_size,
                      max_length=SMALL_512["max_seq_len"])
            results[name] = run_pass(lm, tm, args.shots, args.batch_size)
            print(f"{name}: {results[name][0]:.1f} s", flush=True)

    (t_c, gens_c, prompt_tokens), (t_u, gens_u, _) = results["cached"], results["uncached"]
    if gens_c != gens_u:
        raise SystemExit("cached and uncached generations differ")
    generated = sum(len(tokenizer(g)["input_ids"]) for g in gens_c)
    cmd = (f"OMP_NUM_THREADS={args.threads} python benchmarks/generation.py --examples {args.examples} "
           f"--shots {args.shots} --max-gen-toks {args.max_gen_toks} --batch-size {args.batch_size} "
           f"--threads {args.threads}")
    text = "\n".join([
        "# Generation on CPU: a few-shot generate_until task through lm-eval, KV cache vs none",
        "",
        f"Command: `{cmd}`",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {args.threads} thread(s), torch {torch.__version__}, "
        f"Python {sys.version.split()[0]}.",
        f"Model: `small` scale with a 512-token context ({SMALL_512}), vocab {vocab}, untrained. Task: "
        f"{args.examples} requests, {args.shots}-shot, greedy, up to {args.max_gen_toks} new tokens, lm-eval batch "
        f"size {args.batch_size}; {prompt_tokens:,} prompt tokens and {generated:,} generated tokens (re-tokenised) "
        "in all.",
        "Wall time covers the whole `simple_evaluate` call (task loading, prompts, generation, metrics). "
        "`uncached` forces `use_cache=False`, the model's behaviour before it had a KV cache.",
        f"Load average at the end: {os.getloadavg()[0]:.1f} (a shared machine: expect +-30% run to run).",
        "",
        "| decoding | wall s | generated tokens/s |",
        "|---|---:|---:|",
        f"| uncached (prefix re-run every step) | {t_u:.1f} | {generated / t_u:,.0f} |",
        f"| KV cache (DynamicCache) | {t_c:.1f} | {generated / t_c:,.0f} |",
        "",
        f"Speed-up: {t_u / t_c:.1f}x; the {len(gens_c)} generations are identical in both passes.",
        "",
    ])
    atomic_write_text(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
