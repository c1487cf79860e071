"""Retry delays: capped exponential backoff with equal jitter.

One policy for everything that retries (watch reconnects, failed items, self-upgrades, reconciler runs), so a
fleet of agents that lost the API server at the same moment does not come back in lockstep: the delay is
spread over the upper half of the window (the AWS architecture blog's "equal jitter"). Not full jitter: a
delay near zero would let a failing item retry at once, and the API's timestamps have one-second precision,
so such a retry can even look like no backoff at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Delay policy; ``base`` and ``cap`` are seconds."""

    base: float = 1.0
    """The first window: attempt 0 waits up to this long."""
    cap: float = 300.0
    """No window grows beyond this, however many attempts failed."""

    def window(self, attempt: int) -> float:
        """The upper bound of the delay before retry number ``attempt`` (0-based)."""
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, got {attempt}")
        # 2**attempt overflows floats for absurd attempts; the cap is reached long before.
        return min(self.cap, self.base * 2.0 ** min(attempt, 64))

    def delay(self, attempt: int, uniform: Callable[[float, float], float]) -> float:
        """A jittered delay in ``[window/2, window]``; ``uniform`` is ``random.uniform`` outside tests."""
        window = self.window(attempt)
        return uniform(window / 2, window)
