"""Client-side rate limits: a token bucket (client-go's flowcontrol), shared by a process's writes.

The API server is shared with the whole fleet's agents (the simulator here takes about 640 writes/s on two
cores); a scheduler that wrote as fast as it plans would starve the agents' status writes and so slow the
very rollout it drives. ``burst`` tokens let one plan's writes through at once, ``qps`` holds the long-run
rate. Tokens are reserved, not polled: each caller learns at once how long to wait, so waiters are served in
arrival order without a lock and a cancelled waiter costs nothing but its token.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


class TokenBucket:
    """The pure part: ``reserve(now)`` takes a token and says how many seconds to wait before using it."""

    def __init__(self, qps: float, burst: int, now: float) -> None:
        if qps > 0 and burst < 1:
            raise ValueError(f"burst must be >= 1 when qps is limited, got {burst}")
        self.qps = qps
        """Tokens per second; 0 or less means unlimited."""
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = now

    def reserve(self, now: float) -> float:
        if self.qps <= 0:
            return 0.0
        elapsed = max(now - self.stamp, 0.0)
        self.tokens = min(float(self.burst), self.tokens + elapsed * self.qps)
        self.stamp = max(now, self.stamp)
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / self.qps


class RateLimiter:
    """Awaits the bucket; ``waited`` adds up the seconds callers spent throttled (for logs and benchmarks)."""

    def __init__(
        self, qps: float, burst: int, *, clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.bucket = TokenBucket(qps, burst, clock())
        self.clock, self.sleep = clock, sleep
        self.waited = 0.0

    async def acquire(self) -> None:
        delay = self.bucket.reserve(self.clock())
        if delay > 0:
            self.waited += delay
            await self.sleep(delay)
