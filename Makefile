# Imminence: `make demo` runs the main job, `make test` the whole suite.
# Both create .venv when missing and install the project (editable, pinned).
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: setup system-deps demo test bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

# Debian packages the tests drive for real: chromium (console), GStreamer's RTSP
# server (camera drops), stunnel (TLS to the broker), kcat (a librdkafka client). Installed when root.
system-deps:
	@bash scripts/system-deps.sh

demo: setup
	$(VENV)/bin/imminence demo

test: setup system-deps
	$(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .yolo build *.egg-info runs
