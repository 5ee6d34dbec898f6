"""The tooling that builds, checks and grades the course: the `normlab` command."""

import sys

# nbformat's validator imports jsonschema, which imports the optional IRI format checker
# rfc3987-syntax when it is installed (jupyter-events pulls it in): that compiles a grammar
# at import, about 1.5 s in every process that reads a notebook. No notebook or schema
# read here uses IRI formats; without the module jsonschema leaves them unchecked.
sys.modules.setdefault("rfc3987_syntax", None)
