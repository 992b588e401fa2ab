# Two commands do all the setup on a fresh machine (see README.md):
#   make run    install (with model training), migrate, load the demo and serve it on http://127.0.0.1:8000
#   make test   install everything the tests need and run them
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
LABELER := $(VENV)/bin/labeler
PORT ?= 8000

.PHONY: run test install install-ml install-test browser redis nginx npm-test bench lint

$(VENV)/bin/activate:
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip

install: $(VENV)/bin/activate vendor
	$(PIP) install -q -e .

# what the demo needs to train and evaluate its models (torch is the CPU wheel: see pyproject.toml)
install-ml: $(VENV)/bin/activate vendor
	$(PIP) install -q -e '.[ml]'

install-test: $(VENV)/bin/activate vendor
	$(PIP) install -q -e '.[test,ml]'

run: install-ml
	LABELER_ENV=$${LABELER_ENV:-development} LABELER_AUTH=$${LABELER_AUTH:-dev} $(LABELER) db upgrade
	LABELER_ENV=$${LABELER_ENV:-development} LABELER_AUTH=$${LABELER_AUTH:-dev} $(LABELER) demo
	@echo "labeler: open http://127.0.0.1:$(PORT) and sign in as a demo user"
	LABELER_ENV=$${LABELER_ENV:-development} LABELER_AUTH=$${LABELER_AUTH:-dev} $(LABELER) serve --port $(PORT)

.PHONY: vendor
# the front-end packages the app serves (static/vendor/package.json: OpenSeadragon for deep zoom),
# from npm at install time, never copied into the repository
vendor:
	npm ci --prefix static/vendor --ignore-scripts --no-audit --no-fund --loglevel=error

# Debian's chromium for the browser tests (never `playwright install`: it downloads a browser)
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else echo "browser tests need Debian's chromium: sudo apt-get install chromium chromium-driver" >&2; exit 1; fi; }

# Debian's redis-server for the Celery tests (each test run starts its own on a free loopback port)
redis:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	  else echo "the Celery tests need Debian's redis-server: sudo apt-get install redis-server" >&2; exit 1; fi; }

# Debian's nginx for `labeler deploy nginx`'s tests (each run starts its own on a free loopback port)
nginx:
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; \
	  else echo "the deployment tests need Debian's nginx: sudo apt-get install nginx" >&2; exit 1; fi; }

npm-test:
	npm ci --prefix tests/oidc_provider --no-audit --no-fund --loglevel=error
	npm ci --prefix tests/browser_support --no-audit --no-fund --loglevel=error
	npm ci --prefix tests/azurite_support --no-audit --no-fund --loglevel=error

lint: install-test
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

test: install-test browser redis nginx npm-test lint
	$(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

bench: install-test
	$(PY) bench/import.py --count 100
	$(PY) bench/metrics.py
	$(PY) bench/panel.py
	$(PY) bench/allocation.py
	$(PY) bench/labeling.py
	$(PY) bench/ml.py
