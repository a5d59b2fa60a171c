"""Scalar arguments of the public API: wrong types and ranges raise
:class:`adl.InvalidInputError` naming the parameter, before anything runs.

:func:`checked` declares the checks of a function's parameters; each check converts an
accepted value to its plain Python type (``numpy.int64(3)`` → ``3``). Integers are not
booleans and not floats (``account=1.7`` or ``account=True`` is refused, never read as 1);
numbers are finite unless said otherwise; flags are booleans only.
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import math
import os
from collections.abc import Callable, Collection, Mapping
from typing import Any, ParamSpec, TypeVar

import numpy as np

from adl.errors import InvalidInputError

P = ParamSpec("P")
R = TypeVar("R")

U64 = 2**64 - 1
I64 = 2**63 - 1

Check = Callable[[str, Any], Any]


def _fail(name: str, value: Any, expected: str) -> InvalidInputError:
    return InvalidInputError(f"{name}: {value!r} is not {expected}", name, None)


def integer(lo: int | None = None, hi: int | None = None, *, optional: bool = False) -> Check:
    """A whole number (int or NumPy integer, not bool or float) in [lo, hi]."""

    def check(name: str, value: Any) -> int | None:
        if value is None and optional:
            return None
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise _fail(name, value, "an integer")
        v = int(value)
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            bounds = [f"{op} {b}" for op, b in ((">=", lo), ("<=", hi)) if b is not None]
            raise InvalidInputError(f"{name}: {v} is out of range (must be {' and '.join(bounds)})", name, None)
        return v

    return check


def number(lo: float | None = None, hi: float | None = None, *, above: float | None = None,
           below: float | None = None, optional: bool = False) -> Check:
    """A finite real number (int, float or NumPy number, not bool) in [lo, hi] (> above,
    < below)."""

    def check(name: str, value: Any) -> float | None:
        if value is None and optional:
            return None
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise _fail(name, value, "a number")
        try:
            v = float(value)
        except OverflowError:
            raise _fail(name, value, "a finite number") from None
        if not math.isfinite(v):
            raise _fail(name, value, "a finite number")
        if (lo is not None and v < lo) or (hi is not None and v > hi) or (above is not None and v <= above) or (
                below is not None and v >= below):
            bounds = [f"{op} {b}" for op, b in ((">=", lo), (">", above), ("<=", hi), ("<", below)) if b is not None]
            raise InvalidInputError(f"{name}: {v} is out of range (must be {' and '.join(bounds)})", name, None)
        return v

    return check


def flag(*, optional: bool = False) -> Check:
    """True or False (a NumPy bool too); 1, 0, "yes" are refused."""

    def check(name: str, value: Any) -> bool | None:
        if value is None and optional:
            return None
        if not isinstance(value, (bool, np.bool_)):
            raise _fail(name, value, "True or False")
        return bool(value)

    return check


def text(*, optional: bool = False, choices: Collection[str] | None = None) -> Check:
    """A string (one of ``choices`` when given)."""

    def check(name: str, value: Any) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise _fail(name, value, "a string")
        if choices is not None and value not in choices:
            raise InvalidInputError(f"{name}: {value!r} is not one of {sorted(choices)}", name, None)
        return value

    return check


def path() -> Check:
    """A file system path (str or os.PathLike), returned as str."""

    def check(name: str, value: Any) -> str:
        if not isinstance(value, (str, os.PathLike)):
            raise _fail(name, value, "a path")
        p = os.fspath(value)
        if not isinstance(p, str) or not p or "\0" in p:
            raise _fail(name, value, "a path")
        return p

    return check


def blob() -> Check:
    """Bytes (bytes, bytearray or memoryview), returned as bytes."""

    def check(name: str, value: Any) -> bytes:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise _fail(name, value, "bytes")
        return bytes(value)

    return check


def price_or_mapping(lo_open: float = 0.0, *, tables: bool = False) -> Check:
    """A price > 0, or a mapping symbol -> price > 0 (the marks of several markets); with
    ``tables``, a ``symbol, mark`` table (a frame) passes through to the function's reader."""
    price = number(above=lo_open)

    def check(name: str, value: Any) -> Any:
        if isinstance(value, Mapping):
            out = {}
            for k in value.keys():
                if not isinstance(k, str):
                    raise _fail(name, k, "a symbol (str)")
                out[k] = price(f"{name}[{k!r}]", value[k])
            return out
        plain = (int, float, complex, str, bytes, bytearray, list, tuple, np.number, np.bool_)
        if tables and value is not None and not isinstance(value, plain):
            return value
        return price(name, value)

    return check


def instance(cls: type) -> Check:
    """An instance of ``cls``."""

    def check(name: str, value: Any) -> Any:
        if not isinstance(value, cls):
            raise _fail(name, value, f"a {cls.__name__}")
        return value

    return check


def symbols() -> Check:
    """A non-empty sequence of symbol strings (a bare string is refused: it is not a list)."""

    def check(name: str, value: Any) -> list[str]:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value:
            raise _fail(name, value, "a non-empty list of symbols")
        for v in value:
            if not isinstance(v, str):
                raise _fail(name, v, "a symbol (str)")
        return list(value)

    return check


def account_id(*, optional: bool = False) -> Check:
    """An account id: an integer in [0, 2**64 - 1] or a non-empty string (an engine holding
    string ids maps it to its code)."""
    whole = integer(0, U64, optional=optional)

    def check(name: str, value: Any) -> int | str | None:
        if isinstance(value, str):
            if not value:
                raise _fail(name, value, "an account id (an integer or a non-empty string)")
            return value
        out: int | None = whole(name, value)
        return out

    return check


def timestamp(*, optional: bool = False) -> Check:
    """A ``ts``: an integer (the caller's clock) or a ``datetime`` (NumPy/pandas ones too),
    returned as is (``adl._io.ts_value`` converts a datetime to ms)."""
    whole = integer(-I64 - 1, I64, optional=optional)

    def check(name: str, value: Any) -> Any:
        if isinstance(value, (dt.datetime, np.datetime64)) or type(value).__name__ == "Timestamp":
            return value
        return whole(name, value)

    return check


def optional_callable() -> Check:
    def check(name: str, value: Any) -> Any:
        if value is not None and not callable(value):
            raise _fail(name, value, "callable or None")
        return value

    return check


def checked(**checks: Check) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Checks (and converts) the named parameters of the decorated function on every call."""

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        sig = inspect.signature(fn)
        unknown = set(checks) - set(sig.parameters)
        if unknown:
            raise TypeError(f"{fn.__qualname__} has no parameter(s) {sorted(unknown)}")

        # Where each checked parameter sits when passed by position (per-request reads are
        # called millions of times: no Signature.bind on the common path).
        kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        slots = [p.name for p in sig.parameters.values() if p.kind in kinds]
        at = {name: slots.index(name) if name in slots else None for name in checks}
        simple = all(p.kind != inspect.Parameter.VAR_POSITIONAL for p in sig.parameters.values())

        @functools.wraps(fn)
        def inner(*args: P.args, **kwargs: P.kwargs) -> R:
            if not simple or len(args) > len(slots):
                bound = sig.bind(*args, **kwargs)
                for name, check in checks.items():
                    if name in bound.arguments:
                        bound.arguments[name] = check(name, bound.arguments[name])
                return fn(*bound.args, **bound.kwargs)
            given = list(args)
            for name, check in checks.items():
                i = at[name]
                if i is not None and i < len(given):
                    given[i] = check(name, given[i])
                elif name in kwargs:
                    kwargs[name] = check(name, kwargs[name])
            return fn(*given, **kwargs)  # type: ignore[arg-type]

        return inner

    return wrap
