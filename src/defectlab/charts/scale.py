"""Numbers for charts: clean values, nice tick steps, log ticks, compact and exact formats, colours."""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Iterable, Sequence
from decimal import Decimal

# Colour-blind-safe, distinct on white: the site's accent blue first.
PALETTE = (
    "#1f5fbf",
    "#e69f00",
    "#009e73",
    "#cc79a7",
    "#56b4e9",
    "#d55e00",
    "#7a5195",
    "#8c8c00",
    "#6b7785",
    "#b3261e",
)
# Axes cover at most ±LIMIT (values beyond sit on the edge), so a span, a step and a tick stay
# finite; at most MAX_TICKS ticks per axis.
LIMIT = 1e300
MAX_TICKS = 50
_HEX = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def color(value: str | None, index: int) -> str:
    """`value` when it is "#rgb" or "#rrggbb" (lower-cased), otherwise the palette's colour."""
    if isinstance(value, str) and _HEX.fullmatch(value):
        return value.lower()
    return PALETTE[index % len(PALETTE)]


def finite(value: object) -> float:
    """A number to draw: NaN, ±inf and anything that is not a number count as 0."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


def clamp(value: object, limit: float = sys.float_info.max) -> float:
    """A number to draw a total or a range end with: NaN and what is not a number are 0, ±inf
    and what lies beyond is ±`limit` (a sum of huge values overflows to inf)."""
    number = finite(value) if not _infinite(value) else float(value)  # type: ignore[arg-type]
    return min(max(number, -limit), limit)


def _infinite(value: object) -> bool:
    try:
        return math.isinf(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return False


def clean(values: Iterable[object], length: int) -> list[float]:
    """Exactly `length` finite values: missing ones are 0, extra ones are dropped."""
    numbers = [finite(value) for value in values][:length]
    return numbers + [0.0] * (length - len(numbers))


def nice_step(span: float, count: int = 5) -> float:
    """A step of 1, 2 or 5 × 10^k giving about `count` intervals over `span`."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / max(count, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1.0, 2.0, 5.0, 10.0):
        if raw <= factor * power:
            return factor * power
    return 10.0 * power  # pragma: no cover - the loop always returns


def nice_ticks(low: float, high: float, count: int = 5, *, whole: bool = False) -> list[float]:
    """Tick values covering [low, high] on 1-2-5 steps, at least two, rising, at most
    `MAX_TICKS`; bounds beyond ±`LIMIT` are taken as ±LIMIT; a range without span gets one
    (1 wide, or a millionth of the value when that is wider). With `whole` (the values are
    counts) no step is below 1: a count of 1 reads 0, 1, not 0, 0.2, … 1. ValueError for NaN
    or infinity (callers pass `finite` or `clamp`ed values)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"ticks need finite bounds, not {low!r} and {high!r}")
    low, high = clamp(low, LIMIT), clamp(high, LIMIT)
    if high <= low:
        high = low + max(1.0, abs(low) * 1e-6)
    step = nice_step(high - low, count)
    if whole:
        step = max(step, 1.0)
    first = math.floor(low / step + 1e-9)
    last = math.ceil(high / step - 1e-9)
    if last - first + 1 > MAX_TICKS:  # not on a 1-2-5 step; kept for callers' odd counts
        return [_tidy(low, high - low), _tidy(high, high - low)]
    # Near the limits of a float two ticks can round to one value: keep each once.
    ticks = list(dict.fromkeys(_tidy(k * step, step) for k in range(first, last + 1)))
    if len(ticks) < 2 or not ticks[-1] > ticks[0]:
        return [_tidy(low, high - low), _tidy(high, high - low)]
    return ticks


def log_ticks(values: Iterable[float]) -> list[float]:
    """Powers of ten covering the positive values (up to `LIMIT`), the smallest strictly above
    the first tick (1 and 10 when none is positive)."""
    positive = [min(value, LIMIT) for value in values if value > 0]  # 10^309 overflows
    if not positive:
        return [1.0, 10.0]
    low = math.floor(math.log10(min(positive)) + 1e-9)
    if abs(math.log10(min(positive)) - low) < 1e-9:
        low -= 1  # the smallest value on a decade of its own would draw no bar
    high = math.ceil(math.log10(max(positive)) - 1e-9)
    if high <= low:
        high = low + 1
    return [10.0**power for power in range(low, high + 1)]


def _tidy(value: float, step: float) -> float:
    """`value` rounded to a few digits below `step` (0.30000000000000004 → 0.3, and a tick of
    4e-11 stays 4e-11), never -0."""
    if value == 0 or not step > 0:
        return 0.0 if value == 0 else value
    digits = max(math.floor(math.log10(abs(value))) - math.floor(math.log10(step)), 0) + 3
    tidy = float(f"{value:.{digits}g}")
    return 0.0 if tidy == 0 else tidy


def is_power_of_ten(value: float) -> bool:
    if value <= 0 or not math.isfinite(value):
        return False
    exponent = math.log10(value)
    return abs(exponent - round(exponent)) < 1e-9


def power_of_ten(value: float) -> str:
    """10⁻⁵, 10⁰, 10³ — for a value that is a power of ten; compact form otherwise."""
    if is_power_of_ten(value):
        return "10" + str(round(math.log10(value))).translate(_SUPERSCRIPT)
    return compact(value)


def compact(value: float) -> str:
    """Short labels: 950, 1.2k, 3.4M, 5G; 12.5, 0.25, 0.001; no trailing zeros; from 1e15 up
    scientific (1e+300)."""
    value = finite(value)
    size = abs(value)
    if size >= 1e15:
        return f"{value:.2g}"
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if size >= limit:
            return _trim(f"{value / limit:.1f}") + suffix
    if value == int(value):
        return str(int(value))
    if size >= 100:
        return _trim(f"{value:.0f}")
    if size >= 1:
        return _trim(f"{value:.1f}")
    return _trim(f"{value:.2g}") if size >= 1e-4 else f"{value:.0e}"


def percent(value: float) -> str:
    """A fraction as a percentage with one decimal: 0.1234 → 12.3%."""
    return f"{finite(value) * 100:.1f}%"


def exact(value: object, *, as_percent: bool = False) -> str:
    """The number as a table shows it: digits only, integers whole, no grouping, no rounding
    beyond ten significant digits (which removes binary noise like 0.30000000000000004);
    scientific (1e+300, 1e-20) from 1e21 up and under 1e-15, where digits would run long."""
    number = finite(value)
    if as_percent:
        return _plain(f"{number * 100:.10g}") + "%"
    if number == int(number) and abs(number) < 1e15:
        return str(int(number))
    return _plain(f"{number:.10g}")


def _plain(text: str) -> str:
    """Digits without an exponent: 1e-05 → 0.00001; very large or small numbers keep it."""
    if "e" not in text:
        return text
    size = abs(Decimal(text))
    return format(Decimal(text), "f") if Decimal("1e-15") <= size < Decimal("1e21") else text


def _trim(text: str) -> str:
    if "." in text and "e" not in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def coordinate(value: float) -> str:
    """An SVG coordinate rounded to one decimal, without "-0" or a trailing ".0"."""
    text = f"{round(finite(value), 1):.1f}"
    if text.endswith(".0"):
        text = text[:-2]
    return "0" if text == "-0" else text


def maximum(numbers: Sequence[float]) -> float:
    return max(numbers, default=0.0)


def whole(values: Iterable[float]) -> bool:
    """Whether every value is a whole number (counts), for `nice_ticks`."""
    return all(float(value).is_integer() for value in values)
