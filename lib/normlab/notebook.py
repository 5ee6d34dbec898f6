"""Small helpers for lecture notebooks."""

from __future__ import annotations

import inspect
import textwrap


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
