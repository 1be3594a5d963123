# `make` runs lint and tests, the same checks CI runs (.ci/run).
PY ?= .venv/bin/python

.PHONY: check lint test bench docs
check: lint test

lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test:
	$(PY) -m pytest -q

docs:  ## rewrite README's config table, .env.example and app.json from steward/config/
	$(PY) scripts/sync_config_docs.py

bench:
	for b in startup updates flood posting training monitoring dialogs; do $(PY) -m bench.$$b || exit 1; done
