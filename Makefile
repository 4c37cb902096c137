# The README's two commands. Both create .venv with the pinned dependencies when it is missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.driftgate-installed
# DDS traffic stays on loopback; a per-run domain id keeps parallel runs apart.
ROS_ENV := ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_DOMAIN_ID=$${ROS_DOMAIN_ID:-$$(( $$$$ % 100 + 100 ))}

.PHONY: demo test venv bench clean

venv: $(STAMP)

$(STAMP): setup.py constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt --config-settings editable_mode=compat -e '.[ros,dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(ROS_ENV) $(VENV)/bin/driftgate demo

# The DDS node tests run in a pytest process of their own: sharing one process with hundreds of
# other tests (threads, executors, child processes left by earlier tests) made their timing flaky.
ROS_TESTS := tests/test_ros_nodes.py tests/test_ros_trigger.py tests/test_ros_e2e.py tests/test_demo.py \
             tests/test_ros_conventions.py tests/test_ros_safe_exit.py tests/test_ros_params.py \
             tests/test_ros_distill.py tests/test_benchmarks_smoke_ros.py tests/test_ros_floating_base.py \
             tests/test_ros_base.py

test: $(STAMP)
	$(ROS_ENV) OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest $(addprefix --ignore=,$(ROS_TESTS))
	$(ROS_ENV) OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest $(ROS_TESTS)

bench: $(STAMP)
	$(PY) benchmarks/adaptation.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
