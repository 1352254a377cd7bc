"""Numbers for charts: clean values, nice tick steps, log ticks, compact and exact formats, colours."""

from __future__ import annotations

import math
import re
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


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Tick values covering [low, high] on 1-2-5 steps; [0, 1] when there is no span."""
    if high <= low:
        high = low + 1.0
    step = nice_step(high - low, count)
    first = math.floor(low / step + 1e-9)
    last = math.ceil(high / step - 1e-9)
    return [_tidy(k * step) for k in range(first, last + 1)]


def log_ticks(values: Iterable[float]) -> list[float]:
    """Powers of ten covering the positive values, the smallest strictly above the first tick
    (1 and 10 when none is positive)."""
    positive = [value for value in values if value > 0]
    if not positive:
        return [1.0, 10.0]
    low = math.floor(math.log10(min(positive)) + 1e-9)
    if abs(math.log10(min(positive)) - low) < 1e-9:
        low -= 1  # the smallest value on a decade of its own would draw no bar
    high = math.ceil(math.log10(max(positive)) - 1e-9)
    if high <= low:
        high = low + 1
    return [10.0**power for power in range(low, high + 1)]


def _tidy(value: float) -> float:
    tidy = round(value, 10)
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
    """Short labels: 950, 1.2k, 3.4M, 5G; 12.5, 0.25, 0.001; no trailing zeros."""
    value = finite(value)
    size = abs(value)
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
    beyond ten significant digits (which removes binary noise like 0.30000000000000004)."""
    number = finite(value)
    if as_percent:
        return _plain(f"{number * 100:.10g}") + "%"
    if number == int(number) and abs(number) < 1e15:
        return str(int(number))
    return _plain(f"{number:.10g}")


def _plain(text: str) -> str:
    """Digits without an exponent: 1e-05 → 0.00001."""
    return format(Decimal(text), "f") if "e" in text else text


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
