#!/usr/bin/env bash
# Performance on one NVIDIA GPU (H100/H200): items 1-5 of benchmarks/run.py, stacked runs, CUDA graphs, the bf16 check.
# Needs torch with CUDA and geocsp importable (pip install -e . or PYTHONPATH=src); no network.
#   bash benchmarks/gpu.sh                # tables on stdout; JSON in $RESULTS (benchmarks/results)
#   RESULTS=$OUT BUDGET_S=480 bash benchmarks/gpu.sh
# Steps run cheapest first, each under its own time limit, so that a short lease still returns
# the step numbers when the last, longest step (inat-scale GeoWorld generation + the whole
# 30 + 200-epoch protocol; 7.2 GB of disk while the world is written) does not finish.
set -uo pipefail
cd "$(dirname "$0")/.."
export GEOCSP_CACHE="${GEOCSP_CACHE:-$PWD/.bench-cache}"
RESULTS="${RESULTS:-benchmarks/results}"
BUDGET_S="${BUDGET_S:-3600}"
mkdir -p "$RESULTS"
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('card:', torch.cuda.get_device_name(0), '| torch', torch.__version__)" || exit 1
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm --format=csv || true
t0=$(date +%s)
left() { echo $(( BUDGET_S - ($(date +%s) - t0) )); }
step() {  # step NAME MAX_S CMD...: run CMD under min(MAX_S, time left); report its status
  local name=$1 max=$2; shift 2
  local lim; lim=$(left); (( lim > max )) && lim=$max
  if (( lim < 20 )); then echo "== $name: skipped (no time left)"; return; fi
  echo "== $name (limit ${lim} s)"; local s; s=$(date +%s)
  timeout --signal=TERM --kill-after=10 "$lim" "$@"; local rc=$?
  echo "== $name: exit $rc after $(( $(date +%s) - s )) s"
}
# bf16 autocast (float32 master weights): steps 1-3 and their roofline ratios
step "bf16 items 1,2,3,5" 240 python benchmarks/run.py --device cuda --precision bf16 --items 1,2,3,5 \
    --out "$RESULTS/perf-cuda.json"
# float32 steps for comparison
step "fp32 items 1,2,3,5" 180 python benchmarks/run.py --device cuda --precision fp32 --items 1,2,3,5 \
    --out "$RESULTS/perf-cuda-fp32.json"
# issue 19 item 2: would training R runs as one stacked step pay here? (on the 2-core CPU it does not)
step "stacked runs" 90 python benchmarks/stacked_step.py --device cuda --replicas 2,3,5,10 \
    --json "$RESULTS/stacked-step-cuda.json"
# numerical faithfulness: bf16 fused top-1 within 0.5 points of float32 on the small world
step "bf16 fidelity" 180 python benchmarks/perf/precision.py --device cuda --out "$RESULTS/bf16-fidelity-cuda.json"
# issue 19 item 3: CUDA graphs for the launch-bound small steps (torch.compile mode reduce-overhead)
step "reduce-overhead items 1,2" 240 python benchmarks/run.py --device cuda --precision bf16 --items 1,2 \
    --compile reduce-overhead --out "$RESULTS/perf-cuda-reduce-overhead.json"
# item 4: the whole protocol at inat-scale (world generated when missing)
step "bf16 item 4" 3000 python benchmarks/run.py --device cuda --precision bf16 --items 4 \
    --out "$RESULTS/perf-cuda-protocol.json"
echo "gpu.sh finished in $(( $(date +%s) - t0 )) s"
