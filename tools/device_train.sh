#!/usr/bin/env bash
# make train-device: the GPU recipe in one call on a lent GPU machine, from the repository root:
#
#   TRAIN_WORLDS=... VAL_WORLDS=... tools/device_train.sh SECONDS [vggt-train options...]
#
# installs the wheels in .whl/ that the machine's image lacks (make device-wheels here; carry
# .whl), renders the training and validation worlds (vggt_ros.training.scenes options: the
# Makefile's) on every core, trains with tools/train_on_gpu.sh for what is left of SECONDS, and
# copies the weights (flow head fitted), validation.csv, log.csv and loss.png to $OUT
# (out/train/device without it).
set -euo pipefail
(($# >= 1)) && [[ -n ${TRAIN_WORLDS:-} && -n ${VAL_WORLDS:-} ]] || { sed -n '2,10p' "$0"; exit 2; }
budget=$1
shift
start=$SECONDS
python=${PYTHON:-python3}
if [[ -d .whl ]]; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/device-site .whl/*.whl
    export PYTHONPATH=/tmp/device-site:$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
train=out/train
"$python" -m vggt_ros.training.scenes "$train/scenes" $TRAIN_WORLDS
"$python" -m vggt_ros.training.scenes "$train/val" $VAL_WORLDS
echo "worlds rendered in $((SECONDS - start)) s"
PYTHON=$python tools/train_on_gpu.sh $((budget - (SECONDS - start))) "$train/gpu" \
    "$train/scenes" "$train/val" "$@"
out=${OUT:-$train/device}
mkdir -p "$out"
cp "$train/gpu.safetensors" "$train"/gpu/{validation.csv,log.csv,loss.png} "$out"/
