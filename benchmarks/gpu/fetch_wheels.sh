#!/usr/bin/env bash
# Run HERE (the CPU machine), from the repository root, before a device session's first `run`.
# Puts into .whl/ (git-ignored through .git/info/exclude) the wheels the GPU machine's image lacks
# (see /work/.library/device/KINDS.md): DeepSpeed and its pydantic/hjson needs, jsonschema for config
# validation, and the transformers version this repo is tested with (plus regex, which transformers
# checks at import: >=2025.10.22). The device runs Python 3.12. Everything else the GPU path imports
# is on the image: tests/test_cuda.py and `pathmoe bench` were rehearsed on CPU with the packages the
# image lacks (datasets, lm_eval, snakemake, ...) made unimportable.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl && mkdir -p .whl

# DeepSpeed is published as an sdist only: build its pure-Python wheel (no compiled ops) here.
DS_BUILD_OPS=0 python -m pip wheel -q --no-deps --no-build-isolation -w .whl "deepspeed==0.19.8"

python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl \
  "hjson==3.1.0" "pydantic==2.13.4" "pydantic-core==2.46.4" "annotated-types==0.7.0" "typing-inspection==0.4.2" \
  "jsonschema==4.26.0" "jsonschema-specifications==2025.9.1" "referencing==0.37.0" "rpds-py==0.30.0" \
  "transformers==5.24.0" "regex==2026.5.9"
ls -l .whl
du -sh .whl
