"""How long one run of an item may take before it counts as stuck: learned from the fleet where it can be.

A fixed limit (``PlanSettings.item_time_limit``, an hour) has to fit the slowest item of any release, so a
two-minute item that hangs is noticed only after an hour. Once the fleet has run an item of a version often
enough (``norm_samples`` successful runs), its p95 says what is normal: a run past ``norm_factor`` times p95,
never less than ``norm_floor``, is stuck. The fixed limit stays the ceiling, and the only limit while the
fleet has seen too few runs to know.

The verdict's reason names the fleet's figure and the limit crossed, not the seconds run so far: a reason
that changed with every plan would rewrite the cluster's status each time it is planned.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from agent.api.models import StateItem
from regional.planning.durations import Key, Norm
from regional.planning.settings import PlanSettings


@dataclass(frozen=True)
class TimeLimit:
    seconds: float
    """How long a run may take."""
    norm: Norm | None = None
    """The fleet's figure it was learned from; None for the fixed limit."""


def time_limit(item: StateItem, settings: PlanSettings, norms: Mapping[Key, Norm]) -> TimeLimit:
    """The limit of one run of ``item``: learned from the fleet's runs of the same name and version when
    there are enough of them, else the fixed one."""
    norm = norms.get((item.name, item.version))
    if norm is None or norm.samples < settings.norm_samples:
        return TimeLimit(settings.item_time_limit)
    learned = max(settings.norm_floor, norm.p95 * settings.norm_factor)
    if learned >= settings.item_time_limit:
        return TimeLimit(settings.item_time_limit)
    return TimeLimit(learned, norm)


def overrun(item: StateItem, limit: TimeLimit) -> str:
    """The reason of a run past its limit: the item, the time crossed and what the fleet takes."""
    if limit.norm is None:
        return f"item {item.name} has run for more than {limit.seconds:.0f}s"
    version = f" {item.version}" if item.version else ""
    p95 = limit.norm.p95
    figure = f"{p95:.0f}" if p95 >= 10 else f"{p95:.1f}"  # whole seconds, but a short item's tenths
    return (f"item {item.name} has run for more than {limit.seconds:.0f}s; the fleet's p95 for "
            f"{item.name}{version} is {figure}s")
