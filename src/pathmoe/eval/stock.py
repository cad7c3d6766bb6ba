"""Stock lm-eval on our exports: lm-eval's own CLI, run with the PathMoE classes registered.

An export (`<run>/hf/step_<N>/`) is a plain transformers checkpoint whose config says
`model_type: pathmoe`; transformers resolves that name only once `pathmoe.model` is imported
(which registers `PathMoEConfig` / `PathMoEForCausalLM` with `AutoConfig` and
`AutoModelForCausalLM`). `pathmoe eval lm-eval -- <args>` imports it and hands the arguments to
lm-eval's entry point untouched, so any lm-eval invocation (`--model hf --model_args
pretrained=<export>`, `--tasks`, `--include_path`, `--output_path`, `ls tasks`, ...) works as documented
by lm-eval, with no trust_remote_code.
"""

from __future__ import annotations

import sys


def run_lm_eval_cli(argv: list[str]) -> int:
    """Run `lm-eval <argv>` in this process with the PathMoE model class registered; its exit status."""
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise ValueError("pathmoe eval lm-eval: no lm-eval arguments; e.g. "
                         "`pathmoe eval lm-eval -- --model hf --model_args pretrained=<export> --tasks <task>`")
    import pathmoe.model  # noqa: F401  (registers the Auto* classes lm-eval's HFLM loads through)
    from lm_eval.__main__ import cli_evaluate

    saved = sys.argv
    sys.argv = ["lm-eval", *argv]
    try:
        cli_evaluate()
    except SystemExit as exc:  # argparse's --help / usage errors, lm-eval's own exits: keep their status
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved
    return 0
