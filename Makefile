# The two set-up-and-run commands of the README:
#   make demo   builds .venv if missing, then runs the main job (`rdlviz demo`)
#   make test   builds .venv if missing, then runs the test suite
PY      ?= python3.11
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.rdlviz-installed

.PHONY: demo test venv lab browser clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: the CPU wheel; an unpinned resolve pulls a CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# One torch thread by default. Measured on this 2-core machine (rel-f1 pretraining step):
# quiet, two threads are 1.36x faster (0.68 vs 0.50 steps/s); with anything else running,
# two OpenMP threads stall each other and a step was 10-30x slower. `make demo THREADS=`
# keeps torch's own default.
THREADS ?= OMP_NUM_THREADS=1

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(THREADS) $(BIN)/rdlviz demo

# Headless Chromium for the browser tests (Debian packages); skipped when present.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) \
	  || echo "could not install chromium: browser tests will fail"; }

# The tests, then every tutorial and notebook top to bottom in small-budget mode.
test: $(STAMP) browser
	HF_HUB_OFFLINE=1 RDLVIZ_QUICK=1 $(THREADS) $(BIN)/python -m pytest -q tests --nbmake --nbmake-timeout=600 tutorials notebooks

lab: $(STAMP)
	HF_HUB_OFFLINE=1 $(THREADS) $(BIN)/jupyter lab tutorials/

clean:
	rm -rf $(VENV) build *.egg-info
