"""Assertions for the assignments' test cells that say what is wrong, not just *that* it is.

A failing test should teach: which output, which shape, which entry, what was expected
and what came back, and (where the mistake is a classic one) a hint. The assignments
import these instead of writing bare ``assert np.allclose(...)``::

    assert_close(out, expected, "out")
    # AssertionError: out[1, 0] should be -1.2247 but is -1.0954
    #   (4 of 6 entries differ; largest difference 0.13 at [1, 0])

Every helper raises ``AssertionError`` (never prints, never warns: nbgrader scores a
test cell that writes to stderr as 0) and returns quietly when the check passes.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "describe_mismatch",
    "assert_close",
    "assert_shape",
    "assert_choice",
    "assert_choices",
    "assert_expression",
    "assert_equivalent",
    "substitute",
    "assert_no_torch_calls",
    "checked_call",
    "hint_if",
    "gradient_table",
    "assert_gradients_close",
]


def _as_array(value, what: str) -> np.ndarray:
    if value is None:
        raise AssertionError(f"{what} is None: did you forget a `return`?")
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise AssertionError(f"{what} should be an array of numbers, got {type(value).__name__}") from None
    return array


def _index(index: tuple) -> str:
    return "[" + ", ".join(str(int(i)) for i in index) + "]"


def describe_mismatch(got, expected, what: str = "result", rtol: float = 1e-6, atol: float = 1e-8):
    """Why `got` is not close to `expected`, in one or two lines; None when it is close.

    Checks, in this order: a value at all, the shape, NaN or infinity, then the values
    (entrywise ``|got - expected| <= atol + rtol * |expected|``), naming the first entry
    that differs, how many differ, and the largest difference.
    """
    got = _as_array(got, what)
    expected = np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        return f"{what} has shape {got.shape} but should have shape {expected.shape}"
    bad = ~np.isfinite(got)
    if got.ndim == 0 and bad:
        return f"{what} is {float(got)}: a division by zero, or the square root of a negative number?"
    if bad.any():
        first = tuple(np.argwhere(bad)[0])
        return (f"{what}{_index(first)} is {got[first]} ({int(bad.sum())} of {got.size} entries "
                "are NaN or infinite): a division by zero, or the square root of a negative number?")
    off = np.abs(got - expected) > atol + rtol * np.abs(expected)
    if not off.any():
        return None
    if got.ndim == 0:
        return f"{what} should be {float(expected):.6g} but is {float(got):.6g}"
    first = tuple(np.argwhere(off)[0])
    difference = np.abs(got - expected)
    worst = np.unravel_index(np.argmax(difference), difference.shape)
    return (f"{what}{_index(first)} should be {expected[first]:.6g} but is {got[first]:.6g}\n"
            f"  ({int(off.sum())} of {got.size} entries differ; largest difference "
            f"{difference[worst]:.3g} at {_index(worst)})")


def assert_close(got, expected, what: str = "result", rtol: float = 1e-6, atol: float = 1e-8,
                 hint: str = "") -> None:
    """Raise AssertionError describing the first difference (see `describe_mismatch`).

    `hint` is added on its own line: use it to name the likely mistake.
    """
    message = describe_mismatch(got, expected, what, rtol, atol)
    if message:
        raise AssertionError(message + (f"\n  hint: {hint}" if hint else ""))


def hint_if(got, wrong, hint: str, rtol: float = 1e-4, atol: float = 1e-6) -> str:
    """`hint` if `got` is what one known mistake gives (`wrong`, worked out by hand for the
    test's input), else "".

    For ``assert_close(out, expected, "out", hint=hint_if(out, wrong, "..."))``: a test names
    a mistake only when the output identifies it; any other failure states the property
    that failed and the values.
    """
    try:
        return hint if describe_mismatch(got, wrong, rtol=rtol, atol=atol) is None else ""
    except (AssertionError, TypeError, ValueError):  # not an array of numbers: no hint
        return ""


def assert_shape(got, shape: tuple, what: str = "result") -> None:
    """Raise AssertionError unless `got` is an array of exactly this shape."""
    got = _as_array(got, what)
    if got.shape != tuple(shape):
        raise AssertionError(f"{what} has shape {got.shape} but should have shape {tuple(shape)}")


def _letter(answer, options: str, what: str) -> str:
    if not isinstance(answer, str):
        raise AssertionError(f"{what} should be a letter in quotes, like \"a\"; got {answer!r}")
    letter = answer.strip().strip("()").strip().lower()
    if len(letter) != 1 or letter not in options:
        raise AssertionError(f"{what} should be one of {', '.join(repr(o) for o in options)}; got {answer!r}")
    return letter


def assert_choice(answer, options: str = "abcd", what: str = "answer") -> str:
    """Check the *form* of a multiple-choice answer (one letter) and return it normalized.

    Accepts "b", "B", " (b) "; rejects anything else with a message listing the options.
    Whether the letter is *right* is for the hidden tests.
    """
    return _letter(answer, options, what)


def assert_choices(answer, options: str = "abcd", what: str = "answer") -> frozenset:
    """Like `assert_choice` for "select all that apply": a set, list or string of letters."""
    if isinstance(answer, str):
        answer = [part for part in answer.replace(",", " ").split() if part]
        if len(answer) == 1 and len(answer[0]) > 1:
            answer = list(answer[0])
    if not isinstance(answer, (set, frozenset, list, tuple)):
        raise AssertionError(f"{what} should be a set of letters like {{\"a\", \"c\"}}; got {answer!r}")
    letters = frozenset(_letter(item, options, what) for item in answer)
    if not letters:
        raise AssertionError(f"{what} is empty: choose at least one of {', '.join(options)}")
    return letters


def assert_expression(expr, allowed: dict, what: str = "expression"):
    """Check that `expr` is a SymPy expression in the given symbols only; return it.

    `allowed` maps symbol names to how the notebook spells them, e.g.
    ``{"x_1": "x1", "epsilon": "epsilon"}``, so the message can say what to use.
    """
    import sympy as sp

    if isinstance(expr, numbers.Number):
        expr = sp.sympify(expr)
    if not isinstance(expr, sp.Basic):
        raise AssertionError(f"{what} should be a SymPy expression, got {type(expr).__name__}")
    unknown = sorted(s.name for s in expr.free_symbols if s.name not in allowed)
    if unknown:
        spelled = ", ".join(allowed.values())
        raise AssertionError(f"{what} uses the symbol(s) {', '.join(unknown)}, which the grader "
                             f"does not know: build it from {spelled} (defined above)")
    if expr.has(sp.Derivative, sp.Limit, sp.Integral):
        raise AssertionError(f"{what} still contains an unevaluated derivative, limit or integral: "
                             "call .doit() on it")
    return expr


def assert_equivalent(got, expected, what: str = "expression", hint: str = "") -> None:
    """Raise AssertionError unless two SymPy expressions are equal for all symbol values.

    Uses `normlab.symbolic.is_equivalent` (symbols matched by name, so any correct form
    passes). On failure, names a point where the two differ.
    """
    import sympy as sp

    from normlab.symbolic import is_equivalent

    if is_equivalent(got, expected):
        return
    got, expected = sp.sympify(got), sp.sympify(expected)
    message = f"{what} is not the right expression"
    point = _a_point_where_they_differ(got, expected)
    if point:
        values, a, b = point
        message += f": at {values} it gives {a:.6g} but should give {b:.6g}"
    raise AssertionError(message + (f"\n  hint: {hint}" if hint else ""))


def _a_point_where_they_differ(a, b):
    import sympy as sp

    names = sorted({s.name for s in a.free_symbols | b.free_symbols})
    values = {"x_1": 3, "x_2": 1, "g_1": 2, "g_2": -1, "gamma": 3, "beta": 1, "epsilon": sp.Rational(1, 2)}
    point = {name: values.get(name, sp.Rational(1, 3)) for name in names}
    try:
        va = complex(a.xreplace({s: point[s.name] for s in a.free_symbols}).evalf())
        vb = complex(b.xreplace({s: point[s.name] for s in b.free_symbols}).evalf())
    except (TypeError, ValueError):
        return None
    if va.imag or vb.imag or abs(va - vb) <= 1e-9 * max(abs(va), abs(vb)):
        return None
    shown = ", ".join(f"{name}={value}" for name, value in point.items())
    return shown, va.real, vb.real


def substitute(expr, **values):
    """`expr` with symbols replaced *by name*: ``substitute(e, g_2=g1)`` sets every symbol
    named g_2 to g1, however it was declared (``Symbol("g_2")`` or with ``real=True``)."""
    import sympy as sp

    expr = sp.sympify(expr)
    return expr.xreplace({s: sp.sympify(values[s.name]) for s in expr.free_symbols if s.name in values})


def assert_no_torch_calls(run, forbidden=("batch_norm", "layer_norm", "group_norm", "instance_norm"),
                          what: str = "your code", modules=(), functions=()):
    """Call ``run()`` and return its result; raise AssertionError if it called a torch
    function whose name contains one of the strings in `forbidden`, any Python
    function defined in one of `modules` (e.g. ``("normlab.functional",)``, the course
    library's own implementations), or one of `functions` by its full name (e.g.
    ``("normlab.gradcheck.check_layer",)``, where the rest of its module is allowed).

    For layers written "from scratch". Every call into torch's Python API is watched
    with a ``TorchFunctionMode``: ``torch.nn.functional.batch_norm``, ``torch.batch_norm``,
    ``torch.native_batch_norm``, ``torch.ops.aten.native_batch_norm`` (so also a
    ``torch.nn.BatchNorm1d`` used inside), and tensor methods; calls into `modules` are
    watched with ``sys.setprofile``. Run the backward pass inside ``run`` to watch it too::

        assert_no_torch_calls(lambda: layer(x).sum().backward(), what="your BatchNorm")

    (A ``TorchDispatchMode`` would also see the ATen kernels, but its first use imports
    torch._dynamo, several seconds per grading kernel, and sees nothing more here.)
    """
    import sys

    called = set()
    prefixes = tuple(modules)
    named = frozenset(functions)

    def profile(frame, event, arg):
        if event == "call":  # a call into a forbidden module (or function) from outside it
            module = frame.f_globals.get("__name__", "")
            caller = frame.f_back.f_globals.get("__name__", "") if frame.f_back else ""
            if module.startswith(prefixes) and not caller.startswith(prefixes):
                called.add(f"{module}.{frame.f_code.co_name}")
            elif named and f"{module}.{frame.f_code.co_name}" in named and caller != module:
                called.add(f"{module}.{frame.f_code.co_name}")

    def watched():
        if not prefixes and not named:
            return run()
        previous = sys.getprofile()
        sys.setprofile(profile)
        try:
            return run()
        finally:
            sys.setprofile(previous)

    if forbidden:
        from torch.overrides import TorchFunctionMode

        class _Functions(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                called.add(f"{getattr(func, '__module__', None) or 'torch.Tensor'}.{getattr(func, '__name__', func)}")
                return func(*args, **(kwargs or {}))

        with _Functions():
            result = watched()
    else:
        result = watched()
    bad = sorted((name for name in called
                  if any(word in name for word in forbidden) or name.startswith(prefixes) or name in named),
                 key=lambda name: (name.rsplit(".", 1)[-1].startswith(("<", "__")), name))  # imports last
    if bad:
        raise AssertionError(f"{what} calls {', '.join(bad[:3])}: write it with basic operations "
                             "(mean, sum, sqrt, reshape, ...) instead of a library's own implementation")
    return result


def _snapshot(value):
    """A copy of `value` that no call can reach: arrays and tensors copied, containers rebuilt."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if hasattr(value, "detach") and hasattr(value, "clone"):  # a torch tensor
        copy = value.detach().clone()
        return copy.requires_grad_(True) if value.requires_grad and value.is_leaf else copy
    if isinstance(value, dict):
        return {key: _snapshot(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_snapshot(item) for item in value)
    return value


def _difference(before, after, where: str) -> str | None:
    """Where `after` no longer equals `before` (arrays compared entry by entry), or None."""
    if isinstance(before, dict):
        for key in before:
            if key not in after:
                return f"{where}[{key!r}] was removed"
            found = _difference(before[key], after[key], f"{where}[{key!r}]")
            if found:
                return found
        return None
    if isinstance(before, (list, tuple)):
        for i, (b, a) in enumerate(zip(before, after)):
            found = _difference(b, a, f"{where}[{i}]")
            if found:
                return found
        return None if len(before) == len(after) else f"{where} changed length"
    if isinstance(before, np.ndarray) or hasattr(before, "detach"):
        b, a = _as_array(before, where), _as_array(after, where)
        if b.shape != a.shape:
            return f"{where} changed shape from {b.shape} to {a.shape}"
        off = ~((b == a) | (np.isnan(b) & np.isnan(a)))
        if off.any():
            first = tuple(np.argwhere(off)[0])
            was, now = f"{b[first]:.6g}", f"{a[first]:.6g}"
            if was == now:  # a change in the last digits (rounding): show them all
                was, now = repr(float(b[first])), repr(float(a[first]))
            return f"{where}{_index(first)} was {was} and is now {now}"
    return None


def checked_call(function, *args, may_change=(), **kwargs):
    """``function(*args, **kwargs)`` on copies of the arguments; raise AssertionError if it
    modified an argument in place, unless the argument is named in `may_change`.

    The test keeps its own arrays intact (its reference results stay right whatever the
    function does) and the message names the argument and the first entry that changed.
    """
    import inspect

    try:
        names = list(inspect.signature(function).bind(*args, **kwargs).arguments)
    except (TypeError, ValueError):
        names = [f"argument {i + 1}" for i in range(len(args))] + list(kwargs)
    values = list(args) + list(kwargs.values())
    before = [_snapshot(value) for value in values]
    passed = [_snapshot(value) for value in values]
    result = function(*passed[:len(args)], **dict(zip(kwargs, passed[len(args):])))
    name = getattr(function, "__qualname__", "the function")
    for argument, old, new in zip(names, before, passed):
        if argument in may_change:
            continue
        changed = _difference(old, new, argument)
        if changed:
            raise AssertionError(f"{name} modified its argument {argument} in place ({changed}): "
                                 "compute new arrays (x = x - mu, not x -= mu) and leave the caller's as they were")
    return result


def gradient_table(got: dict, expected: dict, names) -> str:
    """Karpathy's ``cmp`` for a dict of gradients, one line per name: whether ``got[name]``
    equals ``expected[name]`` exactly (every entry), approximately (``np.allclose``) and the
    largest difference ``max |got - expected|``; "missing" or the wrong shape where it is not comparable."""
    lines = [f"{'gradient':<16} {'exact':<6} {'approximate':<12} max difference"]
    for name in names:
        if name not in got:
            lines.append(f"{name:<16} missing")
            continue
        try:
            a, b = _as_array(got[name], name), np.asarray(expected[name], dtype=np.float64)
        except AssertionError as error:
            lines.append(f"{name:<16} {error}")
            continue
        if a.shape != b.shape:
            lines.append(f"{name:<16} shape {a.shape}, should be {b.shape}")
            continue
        exact, approximate = bool(np.array_equal(a, b)), bool(np.allclose(a, b))
        lines.append(f"{name:<16} {str(exact):<6} {str(approximate):<12} {float(np.max(np.abs(a - b))):.3g}")
    return "\n".join(lines)


def assert_gradients_close(got, expected: dict, names, what: str = "gradients", rtol: float = 1e-6,
                           atol: float = 1e-8) -> None:
    """Raise AssertionError unless `got` is a dict whose entry for every name in `names` is
    close to `expected`'s (as `assert_close`): the message names the first gradient that is
    missing or differs, how, and shows `gradient_table` of all of them."""
    if not isinstance(got, dict):
        raise AssertionError(f"{what} should be a dict name -> gradient, got {type(got).__name__}")
    for name in names:
        message = ("no gradient for " + repr(name) if name not in got
                   else describe_mismatch(got[name], expected[name], f"d{name}", rtol, atol))
        if message:
            raise AssertionError(f"{what}: {message}\n{gradient_table(got, expected, names)}")
