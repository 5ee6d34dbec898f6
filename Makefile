# The two commands of the README. Each creates .venv when missing and installs first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: course test test-fast venv chromium slides-assets bubblewrap postgresql clean

venv:
	@tools/venv.sh "$(PYTHON)" "$(VENV)"

## make course: build the course (executed lectures, slides, assignment releases, the website
## build/site/) into build/; a second run redoes only what changed (normlab build --force: everything)
course: venv slides-assets
	$(BIN)/normlab build

## make test: run the whole test suite (CI runs exactly this)
test: venv chromium slides-assets bubblewrap postgresql
	$(BIN)/python -m pytest

## make test-fast: skip the slow end-to-end tests (developers, locally)
test-fast: venv
	$(BIN)/python -m pytest -m "not slow"

## the slides' reveal.js, MathJax, jQuery and require.js: npm packages fetched once into
## ~/.cache/normlab (lib/normlab/slides.py); Debian's npm when there is none
slides-assets: venv
	@command -v npm >/dev/null || { $(SUDO) apt-get update && $(SUDO) apt-get install -y npm; }
	@$(BIN)/normlab slides --assets-only

## Debian's chromium for the slides test (tests/test_slides.py), when missing
chromium:
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium fonts-dejavu-core; }

## Debian's bubblewrap, the sandbox `normlab grade` runs students' notebooks in
## (tests/test_grading.py), when missing
bubblewrap:
	@command -v bwrap >/dev/null || { $(SUDO) apt-get update && $(SUDO) apt-get install -y bubblewrap; }

## Debian's PostgreSQL server binaries, for the shared-gradebook tests (the tests start a
## private server on a Unix socket and stop it; nothing is started here)
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { $(SUDO) apt-get update && $(SUDO) apt-get install -y postgresql; }

clean:
	rm -rf build .pytest_cache
