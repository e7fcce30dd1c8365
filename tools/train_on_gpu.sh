#!/usr/bin/env bash
# vggt-train on a GPU within a time budget (make train-gpu):
#
#   tools/train_on_gpu.sh SECONDS RUN SCENES VAL [vggt-train options...]
#
# trains on the bags in SCENES, validating on those in VAL, into the run folder RUN, and exports
# RUN.safetensors with its flow head fitted. A short probe on a few bags picks the largest batch
# of $BATCHES that fits and times its steps; the run then gets as many steps as fit in SECONDS
# (the learning-rate schedule is sized to them, so it ends decayed rather than cut off), with 5%
# warm-up and 6 validations.
set -euo pipefail
(($# >= 4)) || { sed -n '2,10p' "$0"; exit 2; }
budget=$1 run=$2 scenes=$3 val=$4
shift 4
python=${PYTHON:-python3}
batches=${BATCHES:-64 32 16}
# Worker processes draw the clips and hand each batch over through /dev/shm (about 135 MB a
# batch of 64 at 112 px, two batches a worker ahead): with a small /dev/shm, enlarge it or
# set WORKERS=0.
workers=${WORKERS:-$(($(nproc) > 2 ? $(nproc) - 2 : 1))}
start=$SECONDS
train() { "$python" -m vggt_ros.training.train --workers "$workers" --quiet "$@"; }

for batch in $batches; do
    rm -rf "$run.probe"
    if train $(ls -d "$scenes"/* | head -30) --out "$run.probe" --steps 40 --warmup 10 \
        --save-every 1000 --batch "$batch" "$@"; then
        step_seconds=$("$python" -c "import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))[15:]
print(statistics.median(float(row['seconds']) for row in rows))" "$run.probe/log.csv")
        break
    fi
    echo "batch $batch does not fit; trying a smaller one" >&2
done
[[ -n ${step_seconds:-} ]] || { echo 'no batch fits' >&2; exit 1; }
rm -rf "$run.probe"

# Reading the bags, validating, exporting and fitting the flow head and its depth tilt take about
# three minutes; the rest is training.
left=$((budget - (SECONDS - start) - 180))
steps=$("$python" -c "print(max(1, int(($left - 15) / $step_seconds)))")
echo "batch $batch at $step_seconds s a step: $steps steps in $left s"
train "$scenes"/* --val "$val"/* --out "$run" --batch "$batch" --steps "$steps" \
    --warmup $((steps / 20 + 1)) --save-every $((steps / 6 + 1)) \
    --max-minutes "$("$python" -c "print($left / 60)")" "$@"
"$python" -m vggt_ros.training.export "$run" "$run.safetensors" \
    --recipe "make train-gpu: batch $batch, $*"
# As make train: the flow head (pose_source: matches) fitted to the exported weights' tokens, and
# its depth tilt.
"$python" -m vggt_ros.training.flow_head "$run.safetensors" "$scenes"/* --out "$run.safetensors"
