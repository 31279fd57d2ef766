# The two commands of the README. Each one does all of its own set-up on a fresh machine:
# a virtual environment with the pinned packages, the Kafka and Apicurio jars from Maven
# Central, and the local stack (Kafka KRaft + Apicurio Registry + PostgreSQL 15) on loopback.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup stack test unit faults quarantine lint demo down clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

stack: setup
	$(BIN)/tipsync stack up

test: stack
	$(BIN)/python -m pytest tests

unit: setup
	$(BIN)/python -m pytest tests/unit

faults: stack
	$(BIN)/python -m pytest -m faults tests/integration

# tests that fail now and then for a cause not yet found; not part of CI until fixed
quarantine: stack
	$(BIN)/python -m pytest -m quarantine tests/integration

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy schemas producers streams sinks deploy

demo: stack
	$(BIN)/tipsync demo

down: setup
	$(BIN)/tipsync stack down

clean: down
	rm -rf $(VENV)
