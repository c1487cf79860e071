"""Retry delays grow exponentially, never beyond the cap, and are spread by full jitter."""

import random

import pytest

from agent.kits.backoff import Backoff


@pytest.mark.parametrize(
    ("base", "cap", "attempt", "window"),
    [
        (1.0, 300.0, 0, 1.0),
        (1.0, 300.0, 1, 2.0),
        (1.0, 300.0, 5, 32.0),
        (1.0, 300.0, 9, 300.0),  # 512 capped
        (0.5, 30.0, 3, 4.0),
        (0.5, 30.0, 10_000, 30.0),  # absurd attempt counts neither overflow nor exceed the cap
    ],
)
def test_window_doubles_until_cap(base: float, cap: float, attempt: int, window: float) -> None:
    assert Backoff(base, cap).window(attempt) == window


def test_negative_attempt_is_refused() -> None:
    with pytest.raises(ValueError, match="attempt"):
        Backoff().window(-1)


def test_delays_spread_over_the_upper_half_of_the_window() -> None:
    rng = random.Random(7)
    policy = Backoff(base=1.0, cap=8.0)
    delays = [policy.delay(3, rng.uniform) for _ in range(2000)]
    # Never a near-immediate retry after a failure...
    assert all(4.0 <= d <= 8.0 for d in delays)
    # ...yet a fleet's retries spread out instead of bunching at one moment.
    assert min(delays) < 4.2
    assert max(delays) > 7.8
