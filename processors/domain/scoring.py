"""The scoring formula, the one copy: output of a second, exact score units, the personal-best rule.

Scores are kept as integer ten-thousandths ("units") so that a sum over a set of seconds is exact and
does not depend on the order in which the seconds were added; ``units_to_score`` turns them back into
a float.
"""

from __future__ import annotations

UNITS_PER_POINT = 10_000


def output_of(cadence: float, resistance: float) -> float:
    """Output of one second: round(((cadence + 35) * (resistance + 65)) / 100, 4), computed fast.

    ``round(x, 4)`` goes through a decimal string and costs ~0.2 us. The result is the double
    nearest to x rounded to 4 decimals, i.e. nearest to r / 10**4 for the right integer r, and
    ``r / 10000`` (two exact integers below 2**53) is that same correctly rounded double. r is
    ``round(x * 10000)`` unless x * 10000 lies next to a half, where the product's own rounding
    could decide: then we ask ``round(x, 4)``. Whole-number inputs give P / 100 with P an integer,
    which already has at most 2 decimals. Both shortcuts are tested against the formula.
    """
    product = ((cadence + 35) * (resistance + 65)) / 100
    if type(cadence) is int and type(resistance) is int:
        return product
    scaled = product * 10000.0
    nearest = round(scaled)
    if -0.49 < scaled - nearest < 0.49:
        return nearest / 10000
    return round(product, 4)


def output_units(output: float) -> int:
    """An output (at most 4 decimals) as exact integer ten-thousandths."""
    return round(output * UNITS_PER_POINT)


def units_to_score(units: int) -> float:
    return units / UNITS_PER_POINT


def is_better_best(new_score: float, current_score: float | None) -> bool:
    """A personal best is replaced only by a strictly greater score."""
    return current_score is None or new_score > current_score
