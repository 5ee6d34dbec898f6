# The two commands of the README. Each creates .venv when missing and installs first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: course test test-fast venv clean

venv:
	@tools/venv.sh "$(PYTHON)" "$(VENV)"

## make course: build the course (executed lectures, slides, assignment releases) into build/
course: venv
	$(BIN)/normlab build

## make test: run the whole test suite (CI runs exactly this)
test: venv
	$(BIN)/python -m pytest

## make test-fast: skip the slow end-to-end tests (developers, locally)
test-fast: venv
	$(BIN)/python -m pytest -m "not slow"

clean:
	rm -rf build .pytest_cache
