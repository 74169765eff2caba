"""What an experiment's published finding predicts of its table, checked against it.

An experiment module lists its ``CLAIMS``: each names two arms and a figure (an error or
a loss: lower is better) and says which arm the finding puts ahead (``Ahead``), that
the two should be close (``Close``), or that one matches or beats the other
(``NotBehind``). ``verdicts`` reads them against the table of
finished runs and says plainly, a line each, what shows and what does not.
"""

from __future__ import annotations

import dataclasses

FIGURES = {"final_test_error": ("test error", 100, "%"),
           "final_train_error": ("train error", 100, "%"),
           "final_train_loss": ("train loss", 1, ""),
           "first_train_loss": ("first epoch's train loss", 1, "")}


@dataclasses.dataclass(frozen=True)
class Ahead:
    """``ahead`` has the lower ``figure`` than ``behind``."""

    text: str
    ahead: str
    behind: str
    figure: str = "final_test_error"


@dataclasses.dataclass(frozen=True)
class Close:
    """``a`` and ``b`` are within ``within`` of each other in ``figure``."""

    text: str
    a: str
    b: str
    within: float
    figure: str = "final_test_error"


@dataclasses.dataclass(frozen=True)
class NotBehind:
    """``ahead`` matches or beats ``behind``: its ``figure`` is at most ``within`` higher."""

    text: str
    ahead: str
    behind: str
    within: float
    figure: str = "final_test_error"


def _shown(row: dict, figure: str) -> str:
    name, scale, unit = FIGURES[figure]
    mean, std = scale * row[f"{figure}_mean"], scale * row[f"{figure}_std"]
    spread = f" +- {std:.2f}" if row["seeds"] > 1 else ""
    return f"{row['arm']} {mean:.2f}{spread}{unit}"


def verdict(claim: Ahead | Close | NotBehind, rows: dict[str, dict]) -> str:
    """One line: whether ``claim`` shows in ``rows`` (arm -> table row, finished seeds)."""
    arms = (claim.a, claim.b) if isinstance(claim, Close) else (claim.ahead, claim.behind)
    missing = [a for a in arms if a not in rows or not rows[a]["seeds"]]
    if missing:
        return (f"**Not measured here:** {claim.text} (no finished run of "
                f"{', '.join(missing)} at this scale).")
    first, second = (rows[a] for a in arms)
    name = FIGURES[claim.figure][0]
    figures = f"{name}, {_shown(first, claim.figure)} against {_shown(second, claim.figure)}"
    gap = second[f"{claim.figure}_mean"] - first[f"{claim.figure}_mean"]
    if isinstance(claim, Close):
        if abs(gap) <= claim.within:
            return f"**Shows:** {claim.text} ({figures})."
        return f"**Does not show:** {claim.text} ({figures})."
    if isinstance(claim, NotBehind):
        shown = "Shows" if gap >= -claim.within else "Does not show"
        return f"**{shown}:** {claim.text} ({figures})."
    if gap <= 0:
        return f"**Does not show:** {claim.text} ({figures})."
    spread = first[f"{claim.figure}_std"] + second[f"{claim.figure}_std"]
    if min(first["seeds"], second["seeds"]) < 2 or gap <= spread:
        return (f"**In the predicted order, within the seeds' spread:** {claim.text} "
                f"({figures}).")
    return f"**Shows:** {claim.text} ({figures})."


def verdicts(claims, rows: list[dict]) -> list[str]:
    by_arm = {row["arm"]: row for row in rows}
    return [verdict(claim, by_arm) for claim in claims]
