"""Dimension breakdowns: the correction across a breakdown's cells, cells too small for a test, and a
Simpson's-paradox hint when the total points the other way from its cells.

**Cells as one family.**  A breakdown by country with 30 cells is 30 tests; read uncorrected, one
in twenty shows a "significant" effect by chance.  :func:`correct_cells` applies Holm or
Benjamini-Hochberg (:mod:`analysis.corrections`) across the cells that have enough users for a
test; cells with fewer than ``min_users_per_arm`` in an arm are marked too small and left out of
the family (so they neither claim significance nor dilute the correction).

**Simpson's paradox** (Simpson 1951; the classic case is Charig et al. 1986's kidney-stone data,
discussed by Julious & Mullee 1994, BMJ 309:1480): every cell can favour one arm while the total
favours the other, when the arms' users are spread differently across the cells (in an experiment:
a ramp that changed the split mid-way, an assignment bug, a dimension the treatment itself changes
such as "sessions with a click").  :func:`simpson_hint` flags a total whose direction disagrees with
the cells that matter — the significant ones and the large ones — and reports how far the arms'
cell mix differs, the usual cause.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from analysis.corrections import Correction
from analysis.frequentist import FrequentistResult, apply_correction

MIN_USERS_PER_ARM = 100  # below this a cell's test is too noisy to show (and its normal approximation poor)
LARGE_SHARE = 0.10  # a cell holding at least this share of the users matters for the Simpson hint
Agreement = Literal["all", "majority"]


# --------------------------------------------------------------------------------- correction


@dataclass(frozen=True)
class CellTest:
    """One cell of a breakdown (e.g. ``device=mobile``) and its treatment-vs-control test."""

    name: str
    control_users: int
    treatment_users: int
    result: FrequentistResult


@dataclass(frozen=True)
class CellOutcome:
    """A cell as the breakdown shows it: its result corrected across the family, or ``None`` and
    ``too_small`` when an arm has fewer users than a test needs."""

    name: str
    control_users: int
    treatment_users: int
    result: FrequentistResult | None
    too_small: bool
    message: str | None = None

    @property
    def significant(self) -> bool:
        return self.result is not None and self.result.significant


def correct_cells(cells: Sequence[CellTest], correction: Correction | None = "holm",
                  min_users_per_arm: int = MIN_USERS_PER_ARM) -> list[CellOutcome]:
    """The cells in input order: those with enough users corrected as one family, the rest marked."""
    if min_users_per_arm < 1:
        raise ValueError(f"min_users_per_arm must be at least 1, got {min_users_per_arm}")
    if len({c.name for c in cells}) != len(cells):
        raise ValueError("cell names must be unique within a breakdown")
    testable = [c for c in cells if min(c.control_users, c.treatment_users) >= min_users_per_arm]
    corrected = dict(zip((c.name for c in testable), apply_correction([c.result for c in testable], correction),
                         strict=True))
    out = []
    for c in cells:
        if c.name in corrected:
            out.append(CellOutcome(c.name, c.control_users, c.treatment_users, corrected[c.name], False))
        else:
            smaller = min(c.control_users, c.treatment_users)
            out.append(CellOutcome(c.name, c.control_users, c.treatment_users, None, True,
                                   f"too small for a test: {smaller:,} users in an arm, "
                                   f"at least {min_users_per_arm:,} needed"))
    return out


# ------------------------------------------------------------------------------------- Simpson


@dataclass(frozen=True)
class CellEstimate:
    """A cell's (or the total's) users and metric mean per arm; ``significant`` from its test
    (``None``: not tested)."""

    name: str
    control_users: int
    treatment_users: int
    control_mean: float
    treatment_mean: float
    significant: bool | None = None

    @property
    def users(self) -> int:
        return self.control_users + self.treatment_users

    @property
    def direction(self) -> int:
        """+1 when the treatment's mean is higher, -1 lower, 0 equal."""
        diff = self.treatment_mean - self.control_mean
        return (diff > 0) - (diff < 0)


@dataclass(frozen=True)
class SimpsonHint:
    flagged: bool
    total_direction: int
    considered: tuple[str, ...]  # the significant or large cells the total was compared with
    disagreeing: tuple[str, ...]  # those of them pointing the other way
    disagreeing_share: float  # their share of the considered cells' users
    mix_shift: float  # max |share of a cell among treatment users - among control users|
    text: str


def cell_mix_shift(cells: Sequence[CellEstimate]) -> float:
    """The largest difference between a cell's share of the treatment's users and of the control's.

    0 when both arms are spread the same way across the cells; Simpson's paradox needs it above 0.
    """
    c_total = sum(c.control_users for c in cells)
    t_total = sum(c.treatment_users for c in cells)
    if c_total == 0 or t_total == 0:
        return 0.0
    return max((abs(c.treatment_users / t_total - c.control_users / c_total) for c in cells), default=0.0)


def simpson_hint(total: CellEstimate, cells: Sequence[CellEstimate], require: Agreement = "majority",
                 large_share: float = LARGE_SHARE) -> SimpsonHint:
    """Flag a total whose direction disagrees with the cells that matter.

    The cells compared are the significant ones and those with at least ``large_share`` of all users.
    ``require="all"`` flags only when every one of them points the other way; ``"majority"`` when
    those pointing the other way hold more than half of the compared cells' users.  A total with no
    direction (equal means) or no cell to compare with is never flagged.
    """
    if require not in ("all", "majority"):
        raise ValueError(f"require must be 'all' or 'majority', got {require!r}")
    users = sum(c.users for c in cells)
    considered = [c for c in cells if c.direction != 0
                  and (c.significant or (users > 0 and c.users / users >= large_share))]
    disagreeing = [c for c in considered if c.direction == -total.direction]
    weight = sum(c.users for c in considered)
    share = sum(c.users for c in disagreeing) / weight if weight else 0.0
    mix = cell_mix_shift(cells)
    if total.direction == 0 or not considered:
        flagged = False
    elif require == "all":
        flagged = len(disagreeing) == len(considered)
    else:
        flagged = share > 0.5
    text = ""
    if flagged:
        way = "higher" if total.direction > 0 else "lower"
        text = (f"Simpson's paradox? The total is {way} in the treatment, but "
                f"{', '.join(c.name for c in disagreeing)} ({share:.0%} of the users of the cells that matter) "
                f"point the other way. The arms' users are spread differently across the cells (up to "
                f"{mix:.1%} points of share): check the split over time and whether the treatment changes "
                "the dimension itself; the cells are the fairer comparison.")
    return SimpsonHint(flagged, total.direction, tuple(c.name for c in considered),
                       tuple(c.name for c in disagreeing), share, mix, text)
