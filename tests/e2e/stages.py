"""The end-to-end scenario's stage clock: each stage's wall time, printed at once and in pytest's summary."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

STAGES: list[tuple[str, float]] = []


@contextmanager
def stage(name: str) -> Iterator[None]:
    began = time.monotonic()
    yield
    seconds = time.monotonic() - began
    STAGES.append((name, seconds))
    print(f"e2e stage {name}: {seconds:.1f}s", flush=True)
