"""How long the fleet takes for each state item: a bounded book of run durations per (item, version).

Every agent says over MQTT how each run of an item ended and how long it took (the ``finished`` item event,
docs/telemetry.md); the scheduler feeds those into a ``DurationBook``. It is the regional roll-up that
needs no scrape of a thousand nodes (the scheduler exports it to Prometheus), and the fleet's figure the
planner compares a running item against (``regional.planning.item_norms``).

Bounded both ways: each key is a fixed-bucket histogram (constant memory however many runs), and the
number of keys is capped (releases times items is small; an agent that makes up item names cannot grow the
book past ``capacity``: the key heard from least recently goes first). Quantiles are estimated from the
buckets as Prometheus' ``histogram_quantile`` does (linear inside the bucket), so the planner's figure and
the dashboard's agree.

Pure: values in, values out, no clock (the caller passes nothing time-dependent).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

BUCKETS: tuple[float, ...] = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, math.inf)
"""Upper bounds in seconds: from a one-second bash item to a two-hour engine upgrade."""
OUTCOMES = ("success", "failed", "cancelled", "timeout")
"""The runners' outcomes (``agent.api.execution.Outcome``): a label with a closed set of values."""
CAPACITY = 500
"""Keys kept: every item of every release a region runs (a few releases of a few dozen items), with room
to spare. It bounds the metrics too: each key is 21 series (bench/fleet_durations.py: a full book scrapes
as about 850 KiB of text)."""
NAME_LIMIT = 100
"""Characters of an item name or version kept as a label value (Kubernetes names are shorter)."""

Key = tuple[str, str]
"""(item name, item version) as the LCMMachine's ``spec.stateItems`` name them."""


@dataclass
class Histogram:
    """Cumulative-free bucket counts (``counts[i]`` runs took at most ``BUCKETS[i]`` and more than the
    bound before), their total and sum."""

    counts: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    total: int = 0
    sum: float = 0.0

    def observe(self, seconds: float) -> None:
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                self.counts[i] += 1
                break
        self.total += 1
        self.sum += seconds

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, runs at most that long), as Prometheus' ``le`` buckets."""
        out, running = [], 0
        for bound, count in zip(BUCKETS, self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile, interpolated inside its bucket; None without runs. A quantile in the last
        (infinite) bucket is the highest finite bound, as in Prometheus."""
        if self.total == 0:
            return None
        rank, lower, seen = q * self.total, 0.0, 0
        for bound, count in zip(BUCKETS, self.counts, strict=True):
            if count and seen + count >= rank:
                if math.isinf(bound):
                    return lower
                return lower + (bound - lower) * (rank - seen) / count
            seen += count
            lower = bound if not math.isinf(bound) else lower
        return lower


@dataclass
class ItemRuns:
    """One key's record: durations of successful runs, and runs by outcome."""

    durations: Histogram = field(default_factory=Histogram)
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))


@dataclass(frozen=True)
class Norm:
    """The fleet's figure for one key: the p95 of successful runs and how many runs it rests on."""

    p95: float
    samples: int


class DurationBook:
    """Runs by (item, version); at most ``capacity`` keys, the least recently heard dropped first."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._runs: OrderedDict[Key, ItemRuns] = OrderedDict()
        self.recorded = 0
        """Runs taken so far: a reader can tell whether anything changed since it last looked."""
        self.evicted = 0
        """Keys dropped to stay within ``capacity`` (a count for the logs: never zero means it is too small
        or an agent invents item names)."""

    def __len__(self) -> int:
        return len(self._runs)

    def record(self, item: str, version: str, outcome: str, seconds: float) -> bool:
        """One finished run; False (and nothing kept) for what no runner reports: an unknown outcome, a
        negative or non-finite duration, an empty name."""
        if not item or outcome not in OUTCOMES or not math.isfinite(seconds) or seconds < 0:
            return False
        key = (item[:NAME_LIMIT], version[:NAME_LIMIT])
        runs = self._runs.get(key)
        if runs is None:
            runs = self._runs[key] = ItemRuns()
            while len(self._runs) > self.capacity:
                self._runs.popitem(last=False)
                self.evicted += 1
        else:
            self._runs.move_to_end(key)
        runs.outcomes[outcome] += 1
        self.recorded += 1
        if outcome == "success":
            runs.durations.observe(seconds)
        return True

    def items(self) -> Iterator[tuple[Key, ItemRuns]]:
        return iter(list(self._runs.items()))

    def norms(self) -> Mapping[Key, Norm]:
        """The p95 of every key with a successful run (whether that is enough is the planner's rule)."""
        out = {}
        for key, runs in self._runs.items():
            p95 = runs.durations.quantile(0.95)
            if p95 is not None:
                out[key] = Norm(p95, runs.durations.total)
        return out
