"""Running a step of the daemon so that a stop request wins over it.

Registration and a self-upgrade attempt can take long (an API that is down, a hung download); a SIGTERM
must not wait for them. The step is cancelled and awaited, so it cleans up before the daemon goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def until_stopped(coro: Coroutine[Any, Any, T], stopping: asyncio.Event) -> T | None:
    """``coro``'s result, or None when ``stopping`` was set first (then ``coro`` is cancelled and awaited)."""
    task = asyncio.ensure_future(coro)
    stop = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait([task, stop], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None
