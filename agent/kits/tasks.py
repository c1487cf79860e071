"""Asyncio task helpers: the first of several waits, a step that a stop request wins over, guarded roots.

Each was written by hand in many places, each copy with its own idea of who cancels what. The rule here is
one: a helper cancels and awaits what it created, and never what it was given. A coroutine handed to
``first_of`` becomes its task and is cancelled once another wait wins; a task or future handed to it stays
the caller's (a running item the caller supervises, a root task), so it is waited for but left running. When
a helper itself is cancelled (a forced stop), it cancels and awaits its own tasks, then re-raises.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)


class RootEndedError(RuntimeError):
    """A root task returned while the process was not stopping: a bug, since roots run until stopped."""


async def cancel_and_wait(*tasks: asyncio.Future[Any]) -> None:
    """Cancel the tasks that are not done and wait until all are; their outcomes stay on them (a
    cancellation of the caller itself still propagates, which ``suppress(CancelledError)`` would hide)."""
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks)


def raise_lost_cancel() -> None:
    """Raise the cancellation a library call swallowed. On Python 3.11 ``asyncio.wait_for`` returns the
    inner result when it completes just as the outer task is cancelled (CPython gh-86296, fixed in 3.12), so
    the task runs on while ``cancelling()``; a loop around such a call (aiomqtt's publish) calls this after
    it, or a stopping agent waits for ever on its next message."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def first_of(*waits: Awaitable[Any], seconds: float | None = None) -> None:
    """Return once the first of ``waits`` is done, or after ``seconds`` (a negative time: at once).

    Coroutines become tasks owned here: the ones still pending are then cancelled and awaited, and an
    exception one of them raised propagates. Tasks and futures stay the caller's: waited for, never
    cancelled, their result or exception left for the caller to collect.
    """
    owned = [asyncio.ensure_future(w) for w in waits if not asyncio.isfuture(w)]
    given = [w for w in waits if asyncio.isfuture(w)]
    try:
        done, _ = await asyncio.wait([*given, *owned], timeout=None if seconds is None else max(seconds, 0.0),
                                     return_when=asyncio.FIRST_COMPLETED)
    finally:
        await cancel_and_wait(*owned)
    for task in owned:
        if task in done and not task.cancelled() and (failure := task.exception()) is not None:
            raise failure


async def until_stopped(coro: Coroutine[Any, Any, T], stopping: asyncio.Event) -> T | None:
    """``coro``'s result (or its exception), or None when ``stopping`` was set first: then ``coro`` is
    cancelled and awaited, so it cleans up before the caller goes on."""
    task = asyncio.ensure_future(coro)
    try:
        await first_of(task, stopping.wait())
    finally:
        stopped = not task.done()
        await cancel_and_wait(task)
    if stopped and task.cancelled():
        return None
    result = task.result()
    return None if stopped else result


async def guarded(
    roots: Mapping[str, Coroutine[Any, Any, None]], stopping: asyncio.Event,
) -> BaseException | None:
    """Run a process's root tasks until ``stopping``; the first to fail, or to end while the process is not
    stopping, sets ``stopping`` and is returned as the failure (``RootEndedError`` for an unexpected
    return), once the others have finished.

    A root task that ends is logged and ends the process instead of leaving it half-alive. Stopping lets each
    root finish its own way (the agent's worker drains its running item); when this coroutine is cancelled
    (a forced stop) the roots are cancelled and still awaited, so none is left running behind the process.
    """
    tasks = {asyncio.create_task(coro, name=name): name for name, coro in roots.items()}
    failure: BaseException | None = None
    try:
        await first_of(*tasks)
        for task, name in tasks.items():
            if not task.done():
                continue
            if not task.cancelled() and (exc := task.exception()) is not None:
                log.error("root task %s failed", name, exc_info=exc)
                failure = failure or exc
            elif not stopping.is_set():
                log.error("root task %s ended unexpectedly", name)
                failure = failure or RootEndedError(f"root task {name} ended unexpectedly")
        stopping.set()
        await asyncio.wait(tasks)
    finally:
        await cancel_and_wait(*tasks)
    return failure
