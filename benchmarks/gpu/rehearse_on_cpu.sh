#!/usr/bin/env bash
# Rehearse device_check.sh HERE before spending device time: the same stages on the CPU with the
# embedded default config, and with the Python packages the device image lacks made unimportable
# (so a missing wheel shows up now, not on the GPU). tests/test_cuda.py skips without a GPU.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
block=$(mktemp -d)
cat > "$block/sitecustomize.py" <<'PY'
import sys
# Absent on the device image (/work/.library/device/KINDS.md) and not carried by fetch_wheels.sh.
# None in sys.modules reads as "not installed" to both `import` and importlib.util.find_spec.
for name in ("datasets", "lm_eval", "snakemake", "evaluate", "dill", "multiprocess", "boto3", "botocore",
             "s3transfer", "jmespath", "wcwidth", "rfc3339_validator", "jsonpointer", "sqlitedict",
             "pytablewriter", "word2number", "rouge_score", "jsonlines"):
    sys.modules[name] = None
PY
export OUT=${OUT:-$(mktemp -d)}
PYTHONPATH="$block" SKIP_INSTALL=1 BENCH_CONFIG=default BENCH_DEVICE=cpu BENCH_STEPS=4 BUDGET_S=300 \
  bash benchmarks/gpu/device_check.sh
echo "records in $OUT:"; ls "$OUT"
