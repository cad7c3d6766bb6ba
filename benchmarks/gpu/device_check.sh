#!/usr/bin/env bash
# Run ON the lent GPU machine (device tool `run`, carry [".whl"], timeout_s 570):
#     bash benchmarks/gpu/device_check.sh
# after `bash benchmarks/gpu/fetch_wheels.sh` here. One call does every GPU check of the project:
#   1. tests/test_cuda.py: grouped GEMM on CUDA bf16 vs the reference, no host-device sync inside
#      the dispatch (torch.cuda.set_sync_debug_mode("error")), DeepSpeed bf16 training (eager and
#      compiled) on CUDA;
#   2. `pathmoe bench` on the paper's 0.9B config (Indep-MoE and PathB4-MoE, seq 4096, bf16):
#      eager, then regional torch.compile, then compile at micro-batch 8 if time is left.
# Everything lands in $OUT (device_check.log, train_throughput_*.md: 4 files, within the tool's 8);
# copy the .md records to benchmarks/ with the device line from the log.
set -uo pipefail
OUT=${OUT:-/tmp/pathmoe-device-out}
mkdir -p "$OUT"
BUDGET_S=${BUDGET_S:-540}  # stop starting new stages after this many seconds
# Knobs for a CPU rehearsal (benchmarks/gpu/rehearse_on_cpu.sh); the defaults are the GPU run.
BENCH_CONFIG=${BENCH_CONFIG:-paper-0.9b} BENCH_DEVICE=${BENCH_DEVICE:-cuda} BENCH_STEPS=${BENCH_STEPS:-20}
if [[ -z ${SKIP_INSTALL:-} ]]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH="$PWD/src:/tmp/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader || true
  python3 -c "import torch, deepspeed, transformers; print('torch', torch.__version__, '| deepspeed', deepspeed.__version__, '| transformers', transformers.__version__, '|', torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"
} 2>&1 | tee "$OUT/device_check.log"

stage() {  # stage NAME COMMAND...: run if time is left, append its output to the log
  local name=$1; shift
  if (( SECONDS > BUDGET_S )); then echo "== skipped $name: ${SECONDS}s used" | tee -a "$OUT/device_check.log"; return; fi
  echo "== $name (t=${SECONDS}s)" | tee -a "$OUT/device_check.log"
  "$@" 2>&1 | tee -a "$OUT/device_check.log"
}

stage test_cuda python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py
BENCH=(python3 -m pathmoe.cli bench --config "$BENCH_CONFIG" --runs indep_s0 pathb4_s0 --steps "$BENCH_STEPS"
       --device "$BENCH_DEVICE")
stage bench_eager "${BENCH[@]}" --no-compile --out "$OUT/train_throughput_eager.md"
stage bench_compile "${BENCH[@]}" --compile --out "$OUT/train_throughput_compile.md"
stage bench_compile_mb8 "${BENCH[@]}" --compile --micro-batch-size 8 --out "$OUT/train_throughput_compile_mb8.md"
echo "done in ${SECONDS}s" | tee -a "$OUT/device_check.log"
