"""The wall time of each stage of one run, in the order they happened: what the demo reports at its end.

A single total hides where the time went: the first run builds the machine image (minutes, once per host),
every run boots machines and waits for their agents to register, then for the rollout. ``Stages.done``
closes the stage that ran since the previous one ended.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Stages:
    clock: Callable[[], float] = time.monotonic
    seconds: dict[str, float] = field(default_factory=dict)
    """Stage name → seconds, in order."""
    notes: dict[str, str] = field(default_factory=dict)
    """Stage name → a word on how it went (``cached``, ``built``), when there is one."""
    _last: float = -1.0

    def __post_init__(self) -> None:
        self._last = self.clock()

    def done(self, name: str, note: str = "") -> None:
        """The stage ``name`` ended now; it began at the previous mark."""
        now = self.clock()
        self.seconds[name] = now - self._last
        self._last = now
        if note:
            self.notes[name] = note

    def line(self) -> str:
        """``name 12s (cached) · name 0.4s · …``: tenths below ten seconds, where whole ones say nothing."""
        return " · ".join(f"{name} {seconds:.{1 if seconds < 10 else 0}f}s"
                          + (f" ({self.notes[name]})" if name in self.notes else "")
                          for name, seconds in self.seconds.items())
