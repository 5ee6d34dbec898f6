"""Small helpers for lecture notebooks: the library's source as a code block, prose with
computed numbers, and claims about measurements that fail loudly when they stop holding."""

from __future__ import annotations

import inspect
import textwrap

import numpy as np

__all__ = ["show_source", "prose", "claim", "ClaimError"]


def show_source(obj, *, docstring: bool = True):
    """Display the library's own source of a function or class as a code block.

    Lectures show the implementation they teach this way instead of pasting a copy,
    so there is one version of every piece of code. ``docstring=False`` drops the
    docstring to keep a slide short.
    """
    from IPython.display import Markdown

    source = textwrap.dedent(inspect.getsource(obj))
    if not docstring and obj.__doc__:
        source = _without_docstring(source)
    return Markdown(f"```python\n{source.rstrip()}\n```")


def _without_docstring(source: str) -> str:
    import ast

    tree = ast.parse(source)
    node = tree.body[0]
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant):
        lines = source.splitlines()
        del lines[first.lineno - 1:first.end_lineno]
        return "\n".join(lines)
    return source


class ClaimError(AssertionError):
    """A lecture's statement about a measurement no longer holds for what was measured."""


def _format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_format_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def claim(statement: str, holds, **measured) -> None:
    """Assert what the prose says about a measurement.

    ``holds`` is the statement checked on the computed values, and ``measured`` the
    values it rests on. When it is false, raises `ClaimError` naming the statement and
    those values, so the notebook (and ``normlab build``, and the tests) fail the day a
    change makes the prose wrong. Where an outcome varies with seeds, say in
    ``statement`` over which seeds it was measured.
    """
    if not isinstance(holds, (bool, np.bool_)):
        raise TypeError(f"claim {statement!r}: holds must be a bool (the check itself), got {type(holds).__name__}")
    if not holds:
        values = ", ".join(f"{name} = {_format_value(value)}" for name, value in measured.items())
        raise ClaimError(f"the lecture says: {statement!r}, but the measurement no longer shows it"
                         + (f" (measured: {values})" if values else "")
                         + "; rewrite the sentence from the new numbers, or find what changed")


def prose(text: str):
    """Markdown rendered from a code cell: the lecture's sentences with the numbers the
    notebook computed formatted in (write ``text`` as an f-string). Give the cell the tag
    ``remove-input``: the notebook, the HTML pages and the slides then show only the prose."""
    from IPython.display import Markdown

    return Markdown(textwrap.dedent(text).strip())
