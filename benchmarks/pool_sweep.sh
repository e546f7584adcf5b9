#!/bin/sh
# Per-row negatives from a per-batch pool against exact per-row and shared negatives, at equal epochs.
# Gowalla, the fast config with N = 100 negatives per positive, 4 epochs, seeds 2020 and 2021; rows go to
# benchmarks/results/time_to_quality/ (labels pool-*) and BENCHMARKS.md's pool table (benchmarks/report.py).
#   sh benchmarks/pool_sweep.sh [SEED ...]
set -e
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
for seed in ${@:-2020 2021}; do
  for case in "batch 100 1000" "pool 100 500" "pool 100 1000" "pool 100 2000" "pool 100 8000" "row 10 1000" "row 100 1000"; do
    set -- $case
    label="pool-$1-n$2-s$seed"
    if [ "$1" = pool ]; then label="pool-$1-n$2-p$3-s$seed"; fi
    $PYTHON benchmarks/time_to_quality.py --config properties/fast/gowalla.yaml --label "$label" --minutes 600 \
      --neg_sharing="$1" --num_negatives="$2" --neg_pool_size="$3" --epochs=4 --eval_step=4 --seed="$seed"
  done
done
