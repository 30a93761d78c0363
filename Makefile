# The one front door. `make demo` and `make test` work on a fresh machine.
.PHONY: setup demo test test-core lint bench clean

PY := .venv/bin/python
PYTEST := $(PY) -m pytest -p no:cacheprovider
LIGHT_TESTS := core/tests $(wildcard plugins/text_classifier/tests plugins/kimi/tests plugins/modelscope_qwen/tests)

setup:
	@scripts/bootstrap.sh

demo: setup
	$(PY) scripts/demo.py

# Every package's tests, the Label Studio end-to-end suite included. Exit code 5 (no tests
# collected) is a failure like any other non-zero code.
test: setup
	$(PYTEST) -q $(LIGHT_TESTS)

test-core: setup
	$(PYTEST) -q core/tests --ignore=core/tests/e2e

lint: setup
	.venv/bin/ruff check .

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf .venv .venv-ls .demo
