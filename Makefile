# The two set-up commands of the README. Both install into ./.venv first.
PY ?= python3
VENV := .venv

.PHONY: dev test install

$(VENV)/.installed: pyproject.toml setup.py otlp_feedback/_native.c
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

dev: install
	$(VENV)/bin/otlp-feedback dev

test: install
	$(VENV)/bin/python -m pytest
