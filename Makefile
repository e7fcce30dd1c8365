# One command each: `make test`, `make demo`, `make bench` set the environment up first.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
SETUP_STAMP := $(VENV)/.vggt_ros-setup
SETUP_INPUTS := tools/setup_env.sh $(wildcard requirements/*.txt) $(wildcard interfaces/tf2_msgs/*) \
	$(wildcard interfaces/tf2_msgs/msg/*)

.PHONY: setup test demo bench lint clean

setup: $(SETUP_STAMP)

$(SETUP_STAMP): $(SETUP_INPUTS)
	tools/setup_env.sh $(VENV)
	touch $@

test: setup
	$(PYTHON) -m pytest

lint: setup
	$(PYTHON) -m ruff check vggt_ros test launch

demo: setup
	@echo "make demo: not implemented yet (synthetic scenes and the evaluator land with their issue)"

bench: setup
	$(PYTHON) -m vggt_ros.bench --out out/bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build install log .pytest_cache
