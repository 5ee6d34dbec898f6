#!/usr/bin/env bash
# Create the project's virtual environment at $2 (default .venv) with $1 (default python3)
# and install normlab (editable) with its test dependencies, at the exact versions of
# tools/constraints.txt (written by tools/freeze_constraints.py): the lectures' claims and
# the tests were checked on those versions, so every machine gets them.
#
# If NORMLAB_VENV_CACHE is set (CI sets it), the dependencies live in a venv under that
# folder keyed by a hash of pyproject.toml, the constraints and the Python version, and .venv is a
# symlink to it: a second run with unchanged dependencies reuses it in seconds. Without
# the variable, .venv is a plain venv in the clone. Either way only normlab itself is
# (re)installed when the venv exists already.
set -euo pipefail
python=${1:-python3}
venv=${2:-.venv}
here=$(pwd)

if [ ! -e "$venv" ]; then
  if [ -n "${NORMLAB_VENV_CACHE:-}" ]; then
    key=$( (cat pyproject.toml tools/constraints.txt; "$python" -c 'import sys; print(sys.version)') | sha256sum | cut -c1-16)
    target="$NORMLAB_VENV_CACHE/venv-$key"
    if [ ! -x "$target/bin/python" ] || [ ! -e "$target/.deps-complete" ]; then
      echo "normlab: creating the dependency venv $target (first time: a few minutes)"
      rm -rf "$target"
      mkdir -p "$NORMLAB_VENV_CACHE"
      "$python" -m venv "$target"
      "$target/bin/python" -m pip install --quiet --upgrade pip
      "$target/bin/python" -m pip install --quiet -c tools/constraints.txt -e ".[test]"
      touch "$target/.deps-complete"
    fi
    ln -s "$target" "$venv"
  else
    echo "normlab: creating $venv (first time: a few minutes; torch is large)"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -c tools/constraints.txt -e ".[test]"
    exit 0
  fi
fi

# Make sure the venv's normlab is this clone's (a cached venv may point at another one).
where=$("$venv/bin/python" -c 'import normlab, os; print(os.path.dirname(normlab.__file__))' 2>/dev/null || true)
if [ "$where" != "$here/lib/normlab" ]; then
  "$venv/bin/python" -m pip install --quiet --no-deps -e .
fi
