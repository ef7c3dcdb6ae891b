# The two set-up commands of the README. Both install into ./.venv first.
PY ?= python3
NPM ?= npm
VENV := .venv
# The stock OTel JS SDK that tests/integration/test_js_sdk.py drives (pinned in its lock file).
NODE_SDK := tests/integration/node
# playwright-core (drives the system's Chromium), esbuild and the OTel JS web SDK that
# tests/integration/test_browser.py uses (pinned in its lock file).
BROWSER := tests/integration/browser

.PHONY: dev test install

$(VENV)/.installed: pyproject.toml setup.py otlp_feedback/_native.c
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

# npm rewrites node_modules/.package-lock.json on every install: the stamp, which the tests
# look for too. Without npm this step is left out (a Python-only machine still installs); the
# JS SDK tests then skip if node is missing too, and otherwise fail naming `make install`.
$(NODE_SDK)/node_modules/.package-lock.json: $(NODE_SDK)/package.json $(NODE_SDK)/package-lock.json
	@if command -v $(NPM) >/dev/null 2>&1; then \
	  cd $(NODE_SDK) && $(NPM) ci --no-audit --no-fund --loglevel=error && touch node_modules/.package-lock.json; \
	else \
	  echo "make install: $(NPM) not found, not installing $(NODE_SDK) (its tests need Node)"; \
	fi

$(BROWSER)/node_modules/.package-lock.json: $(BROWSER)/package.json $(BROWSER)/package-lock.json
	@if command -v $(NPM) >/dev/null 2>&1; then \
	  cd $(BROWSER) && $(NPM) ci --no-audit --no-fund --loglevel=error && touch node_modules/.package-lock.json; \
	else \
	  echo "make install: $(NPM) not found, not installing $(BROWSER) (its tests need Node)"; \
	fi

install: $(VENV)/.installed $(NODE_SDK)/node_modules/.package-lock.json \
	$(BROWSER)/node_modules/.package-lock.json

# The receiver needs no Node: dev installs the Python side only.
dev: $(VENV)/.installed
	$(VENV)/bin/otlp-feedback dev

test: install
	$(VENV)/bin/python -m pytest
