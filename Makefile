# One command each: `make test`, `make demo`, `make bench` set the environment up first.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
SETUP_STAMP := $(VENV)/.vggt_ros-setup
SETUP_INPUTS := tools/setup_env.sh setup.py setup.cfg $(wildcard requirements/*.txt) $(wildcard interfaces/tf2_msgs/*) \
	$(wildcard interfaces/tf2_msgs/msg/*)

.PHONY: setup test demo bench train train-data train-gpu heldout lint clean

setup: $(SETUP_STAMP)

$(SETUP_STAMP): $(SETUP_INPUTS)
	tools/setup_env.sh $(VENV)
	touch $@

test: setup
	$(PYTHON) -m pytest

lint: setup
	$(PYTHON) -m ruff check vggt_ros test launch

# Without CHECKPOINT the shipped small model runs in its deployed configuration
# (config/small.yaml); CHECKPOINT=path-or-hf-id runs other weights (add PRESET= for another size).
DEMO := out/demo
demo: setup
	rm -rf $(DEMO)/walk && mkdir -p $(DEMO)
	$(PYTHON) -m vggt_ros.synthetic $(DEMO)/walk --frames 120 --width 320 --height 240
	$(PYTHON) -m vggt_ros.evaluation.cli $(DEMO)/walk --out $(DEMO)/report \
		--gt-tf world:camera_optical_frame --depth-topic /camera/depth --baselines \
		$(if $(CHECKPOINT),--checkpoint $(CHECKPOINT) --preset $(or $(PRESET),streamvggt-1b),--params-file config/small.yaml)
	@echo "demo report: $(DEMO)/report/report.md"

bench: setup
	$(PYTHON) -m vggt_ros.bench --out out/bench $(BENCH_ARGS)

# The small preset's recipe: 300 varied training worlds x 3 trajectory kinds, the first 40 frames
# of each 120-frame path at 224x168, then vggt-train (camera, depth and point losses) for at most
# TRAIN_MINUTES on this machine's cores, validated on 4 held-out worlds (not those make heldout
# scores) at every save: $(TRAIN)/run/validation.csv.
TRAIN := out/train
TRAIN_MINUTES ?= 58
TRAIN_RECIPE := --preset small --image-width 112 --clip 8 --heads camera,depth,point
train-data: setup
	$(PYTHON) -m vggt_ros.training.scenes $(TRAIN)/scenes --seeds 1 300 --frames 40
	$(PYTHON) -m vggt_ros.training.scenes $(TRAIN)/val --seeds 1000010 1000013 --frames 40 \
		--split held-out

train: train-data
	$(PYTHON) -m vggt_ros.training.train $(TRAIN)/scenes/* --val $(TRAIN)/val/* $(TRAIN_RECIPE) \
		--out $(TRAIN)/run --steps 5000 --max-minutes $(TRAIN_MINUTES) $(TRAIN_ARGS)
	$(PYTHON) -m vggt_ros.training.export $(TRAIN)/run $(TRAIN)/small.safetensors
	@echo "to ship: cp $(TRAIN)/small.safetensors $(TRAIN)/run/loss.png vggt_ros/weights/"

# The same data and model on a GPU for TRAIN_GPU_SECONDS: batches of clips drawn by the CPU
# cores, the schedule sized to the time (tools/train_on_gpu.sh), LayerScale gains from 0.1.
TRAIN_GPU_SECONDS ?= 3600
TRAIN_GPU_ARGS ?= --lr 5e-4 --residual-gain 0.1 --decay matrices
train-gpu: train-data
	PYTHON=$(PYTHON) tools/train_on_gpu.sh $(TRAIN_GPU_SECONDS) $(TRAIN)/gpu $(TRAIN)/scenes \
		$(TRAIN)/val $(TRAIN_RECIPE) $(TRAIN_GPU_ARGS)
	@echo "to ship: cp $(TRAIN)/gpu.safetensors vggt_ros/weights/small.safetensors"

# The shipped model on held-out worlds, beside the baselines (HELDOUT_ARGS: vggt-eval options).
heldout: setup
	$(PYTHON) -m vggt_ros.training.heldout out/heldout $(HELDOUT_ARGS)

clean:
	rm -rf $(VENV) build install log .pytest_cache
