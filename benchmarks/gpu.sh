#!/usr/bin/env bash
# Issue 6 on one NVIDIA GPU (H100/H200): items 1-5 + the bf16-vs-fp32 top-1 check.
# Needs torch with CUDA and geocsp installed (pip install -e .); no network: the inat-scale
# GeoWorld is generated on the GPU into $GEOCSP_CACHE (7.2 GB of disk while it is written).
#   bash benchmarks/gpu.sh            # prints the tables; JSON in benchmarks/results/
set -euo pipefail
cd "$(dirname "$0")/.."
export GEOCSP_CACHE="${GEOCSP_CACHE:-$PWD/.bench-cache}"
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('card:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"
t0=$(date +%s)
# bf16 autocast (float32 master weights): the issue's GPU configuration, all five items
python benchmarks/run.py --device cuda --precision bf16 --items 1,2,3,4,5 --out benchmarks/results/perf-cuda.json "$@"
# float32 steps for comparison (items 1-3 + roofline; the world is reused)
python benchmarks/run.py --device cuda --precision fp32 --items 1,2,3,5 --out benchmarks/results/perf-cuda-fp32.json
# numerical faithfulness: bf16 fused top-1 within 0.5 points of float32 on the small world
python benchmarks/perf/precision.py --device cuda
echo "gpu.sh finished in $(( $(date +%s) - t0 )) s"
