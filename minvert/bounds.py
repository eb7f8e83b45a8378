"""Ranges for every number a user gives minvert: command-line options and MINVERT_* variables.

A number outside its range is refused before any work, in one line, instead of failing deep
inside a run (``--history 2**63`` overflowing NumPy, ``MINVERT_MAX_READ_MB=inf`` overflowing
an int). The parser's options use :func:`int_range`, :func:`float_range` and
:func:`int_list` as their ``type=``; each carries its range as ``.bounds`` so that a test can
walk the whole parser and find any option left unbounded.
"""
import argparse
import math
import os

from .errors import MinvertError

SEED_MAX = 2**32 - 1   # NumPy's legacy seeds and most others
MANY = 10**9           # a generous upper bound for counts (iterations, epochs, images, rows)
# (variable, default, lowest, highest): megabytes one file may make minvert read (1 kB to 16 TB)
MAX_READ_MB = ("MINVERT_MAX_READ_MB", 768, 0.001, 1 << 24)


def _bounded(parse, lo, hi, name):
    parse.bounds = (lo, hi)
    parse.__name__ = name  # argparse names the type in some messages
    return parse


def int_range(lo, hi):
    """argparse type: an integer in [lo, hi] (decimal digits only, at most 30 of them)."""
    def parse(text):
        value = _int_or_none(text)
        if value is None or not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{_shown(text)}: give a whole number from {lo} to {hi}")
        return value
    return _bounded(parse, lo, hi, f"integer in [{lo}, {hi}]")


def float_range(lo, hi, above=False):
    """argparse type: a finite number in [lo, hi] (in (lo, hi] when ``above``)."""
    def parse(text):
        value = _float_or_none(text)
        low_ok = value is not None and (value > lo if above else value >= lo)
        if not low_ok or not value <= hi:
            opening = "above" if above else "from"
            raise argparse.ArgumentTypeError(f"{_shown(text)}: give a number {opening} {lo:.10g} "
                                             f"to {hi:.10g}")
        return value
    return _bounded(parse, lo, hi, f"number in [{lo}, {hi}]")


def int_list(lo, hi, what, max_items=64):
    """argparse type: "a,b,c" -> [a, b, c], at most ``max_items`` integers in [lo, hi]."""
    def parse(text):
        values = [_int_or_none(v) for v in text.split(",")[:max_items + 1] if v.strip()]
        if (not values or len(values) > max_items or None in values
                or not all(lo <= v <= hi for v in values)):
            raise argparse.ArgumentTypeError(f"{_shown(text)}: give {what} (each {lo} to {hi}, "
                                             f"at most {max_items})")
        return values
    return _bounded(parse, lo, hi, f"integers in [{lo}, {hi}]")


def named_shape(max_dim, max_elements):
    """argparse type: "NAME=D1,D2,..." (at most 8 sizes, each 1 to ``max_dim``, together at most
    ``max_elements`` elements); the text is returned unchanged for the command to parse."""
    sizes = int_list(1, max_dim, "sizes", max_items=8)

    def parse(text):
        name, eq, dims = text.partition("=")
        try:
            shape = sizes(dims) if eq and name.isidentifier() else None
        except argparse.ArgumentTypeError:
            shape = None
        if shape is None or math.prod(shape) > max_elements:
            raise argparse.ArgumentTypeError(
                f"{_shown(text)}: write NAME=D1,D2,... with sizes from 1 to {max_dim} and at most "
                f"{max_elements:,} elements in all, e.g. x=2,3,6,5")
        return text
    return _bounded(parse, 1, max_dim, f"NAME=sizes in [1, {max_dim}]")


def fraction_text(text, where):
    """A number in (0, 1) written by the user inside another option (``--split fraction:F``)."""
    value = _float_or_none(text)
    if value is None or not 0 < value < 1:
        raise MinvertError(f"{where}: the fraction must be a number between 0 and 1, not "
                           f"{_shown(text)}")
    return value


def check_environment():
    """Check minvert's variables (MINVERT_DEVICE is checked by the CLI, which knows devices)."""
    env_number(*MAX_READ_MB)
    env_paths("MINVERT_WEIGHTS")


def env_number(name, default, lo, hi):
    """``$name`` as a finite number in [lo, hi] (``default`` when unset or empty)."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    value = _float_or_none(text)
    if value is None or not lo <= value <= hi:
        raise MinvertError(f"{name}={_shown(text)}: give a number from {lo:.10g} to {hi:.10g}")
    return value


def env_paths(name):
    """``$name``, a list of folders separated by os.pathsep, each with ``~`` expanded."""
    out = []
    for part in os.environ.get(name, "").split(os.pathsep):
        if not part.strip():
            continue
        expanded = os.path.expanduser(part)
        if expanded.startswith("~") or "\0" in expanded:
            raise MinvertError(f"{name}: cannot use {_shown(part)} (no such user, or not a "
                               "path); give folders separated by "
                               f"{os.pathsep!r}")
        out.append(expanded)
    return out


def _int_or_none(text):
    text = text.strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not digits.isascii() or not digits.isdigit() or len(digits) > 30:
        return None  # no '1e3', no 400-digit numbers, no non-ASCII digits
    return int(text)


def _float_or_none(text):
    text = text.strip()
    if len(text) > 40:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _shown(text):
    """The user's text, shortened and with control characters escaped, for a message."""
    text = text if len(text) <= 40 else text[:37] + "..."
    return ascii(text) if not text.isprintable() else repr(text)
