# The two commands of the README: `make demo` and `make test`. Both create the
# environment on first use (idempotent, fast afterwards).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

# torch is pinned to the CPU build first, so that no dependency pulls a CUDA one. Then the
# fused C++ recurrences are compiled (once, cached by torch; rnnkit works without them, slower).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	$(BIN)/python -m rnnkit.kernels.build
	@command -v espeak-ng >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -q espeak-ng >/dev/null 2>&1; } \
		|| echo "note: espeak-ng is not installed (sudo apt-get install espeak-ng): the speech corpus needs it"
	@command -v flite >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -q flite >/dev/null 2>&1; } \
		|| echo "note: flite is not installed (sudo apt-get install flite): the speech corpus's second engine needs it"
	touch $@

demo: setup
	$(BIN)/rnnkit demo

# Every test twice: with rnnkit's C++ extension, and without it (RNNKIT_NO_EXTENSION=1: the
# extension's own tests skip, every other path runs on torch's kernels and the reference loop).
test: setup
	$(BIN)/ruff check rnnkit tests bench
	$(BIN)/python -m pytest -q
	RNNKIT_NO_EXTENSION=1 $(BIN)/python -m pytest -q

# DyNet's Table 2 and the layer kernels at 1 thread, then Table 2 at 2 threads, side by side
# (9 short alternating windows per implementation, as the machine's speed drifts; BENCHMARKS.md).
bench: setup
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[bench]'
	$(BIN)/python -m bench.table2 --threads 1 --seconds 1 --repeats 9 --bf16 --sparse-lm
	$(BIN)/python -m bench.table2 --threads 2 --seconds 1 --repeats 9 --bf16 --sparse-lm \
		--rows lm1 lm4 lm16 lm64 tagger tagger-sparse tagger-char tagger-char-sparse
	$(BIN)/python -m bench.breakdown --mb 1 64 --threads 1 2

lint: setup
	$(BIN)/ruff check rnnkit tests bench

clean:
	rm -rf $(VENV) build *.egg-info
