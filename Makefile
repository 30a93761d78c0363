# The one front door. `make demo` and `make test` work on a fresh machine.
.PHONY: setup demo test test-light test-heavy lint bench clean

PY := .venv/bin/python
PYTEST := -m pytest -p no:cacheprovider -q
# Plugins with heavy stacks name their environment in plugins/<name>/ENV (see ci/envs/).
HEAVY := $(patsubst plugins/%/ENV,%,$(wildcard plugins/*/ENV))
LIGHT_TESTS := core/tests tests $(filter-out $(addsuffix /tests,$(addprefix plugins/,$(HEAVY))),$(wildcard plugins/*/tests))

setup:
	@scripts/bootstrap.sh

demo: setup
	$(PY) scripts/demo.py

# Every package's tests, the Label Studio end-to-end suite included, each in its own
# environment. Any non-zero pytest exit, 5 (no tests collected) included, fails the target.
test: test-light test-heavy

test-light: setup
	$(PY) $(PYTEST) $(LIGHT_TESTS)

test-heavy: setup
	@set -e; for p in $(HEAVY); do \
	  env=$$(cat plugins/$$p/ENV); scripts/make-env.sh $$env; \
	  echo "== plugins/$$p (.venv-$$env)"; .venv-$$env/bin/python $(PYTEST) plugins/$$p/tests; \
	done

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

# Every benchmark runs; the target fails at the end if any missed its target.
BENCHES := $(filter-out bench/_%,$(wildcard bench/*.py))
bench: setup
	@failed=""; for b in $(BENCHES); do echo "== $$b"; $(PY) $$b || failed="$$failed $$b"; done; \
	if [ -n "$$failed" ]; then echo "missed a target:$$failed"; exit 1; fi

clean:
	rm -rf .venv .venv-* .demo
