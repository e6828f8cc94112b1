# Alleycat: `make run` runs everything on embedded defaults; `make test` runs every test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME_STAMP := $(VENV)/.installed-runtime
DEV_STAMP := $(VENV)/.installed-dev
# axe-core, injected into pages by the browser tests (tests/browser/test_pages_browser.py).
AXE := node_modules/axe-core/axe.min.js
PYTEST_ARGS ?=

.PHONY: run test test-postgres bench lint format migrations-check install install-dev clean sam-install sam-build sam-validate

$(PY):
	$(PYTHON) -m venv $(VENV)

$(RUNTIME_STAMP): requirements.txt | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt $(RUNTIME_STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(AXE): package.json package-lock.json
	npm ci --no-audit --no-fund --ignore-scripts
	touch $@

install: $(RUNTIME_STAMP)
install-dev: $(DEV_STAMP) $(AXE)

run: $(RUNTIME_STAMP)
	DJANGO_DEBUG=1 $(PY) manage.py migrate --noinput
	DJANGO_DEBUG=1 $(PY) manage.py seed_demo
	DJANGO_DEBUG=1 $(PY) manage.py ensure_staff
	DJANGO_DEBUG=1 $(PY) manage.py ensure_demo_rider
	DJANGO_DEBUG=1 exec $(PY) manage.py runstack

test: $(DEV_STAMP) $(AXE)
	$(PY) -m pytest $(PYTEST_ARGS)

# The Django tests once more against the database in DATABASE_URL (PostgreSQL in CI).
test-postgres: $(DEV_STAMP)
	@test -n "$(DATABASE_URL)" || (echo "Set DATABASE_URL to a PostgreSQL server" && exit 2)
	$(PY) -m pytest tests/races tests/leaderboards tests/ops -m "not browser and not e2e" $(PYTEST_ARGS)

bench: $(DEV_STAMP)
	@for f in bench/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(DEV_STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

migrations-check: $(DEV_STAMP)
	DJANGO_DEBUG=1 $(PY) manage.py makemigrations --check --dry-run

# AWS SAM CLI in its own virtualenv (its pins conflict with ours). `sam build` needs no container:
# infra/lambda/Makefile builds each function from processors/ + processors/requirements-lambda*.txt.
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
SAM_STAMP := $(SAM_VENV)/.installed
SAM_BUILD_DIR := .aws-sam/build

$(SAM_STAMP): requirements-sam.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-sam.txt
	touch $@

sam-install: $(SAM_STAMP)

# SAM_CLI_TELEMETRY=0: no usage reports; the build only needs PyPI. PYTHON: the pip that
# infra/lambda/Makefile runs is the SAM venv's (Debian's system python3 comes without pip).
sam-build: $(SAM_STAMP)
	SAM_CLI_TELEMETRY=0 PYTHON=$(CURDIR)/$(SAM_VENV)/bin/python $(SAM) build --template-file infra/template.yaml --build-dir $(SAM_BUILD_DIR) \
		--parallel --no-cached
	@du -s --apparent-size --block-size=1K $(SAM_BUILD_DIR)/*Function | sed 's|$(SAM_BUILD_DIR)/||'

sam-validate: $(SAM_STAMP)
	SAM_CLI_TELEMETRY=0 $(SAM) validate --lint --template-file infra/template.yaml

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam var staticfiles
