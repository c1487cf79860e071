"""State-item runners: one typed entry point, ``run_item``, in front of ansible, bash and downloader.

The executor passes values and gets values back; whatever goes wrong inside a run (an unknown runner, a
refused param, a crash of ansible-runner) comes back as a failed ``ItemResult`` with a clear message,
never as an exception that would take the daemon down.

Cancellation: cancelling the task that awaits ``run_item`` stops the run (SIGTERM to the child's process
group, ``RunnerSettings.grace`` seconds, SIGKILL), waits until every child is gone, and then *returns* an
``ItemResult`` with result "cancelled" (exit code 130) and the log tail, instead of re-raising
``CancelledError``. So the executor can still record how the item ended. A caller that was itself being
cancelled (daemon shutdown) sees ``asyncio.current_task().cancelling() > 0`` afterwards and should stop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from agent.adapters.runners import ansible, bash, downloader
from agent.adapters.runners.redaction import Redactor
from agent.adapters.runners.settings import RunnerSettings
from agent.api.execution import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_INVALID,
    EventSink,
    ItemEvent,
    ItemInput,
    ItemResult,
)

__all__ = ["RunnerSettings", "run_item"]

log = logging.getLogger(__name__)

Runner = Callable[[ItemInput, EventSink, RunnerSettings], Awaitable[ItemResult]]
RUNNERS: Mapping[str, Runner] = {"ansible": ansible.run, "bash": bash.run, "downloader": downloader.run}


async def run_item(
    item: ItemInput, on_event: EventSink, *, settings: RunnerSettings | None = None
) -> ItemResult:
    """Run one state item to its end and say how it ended (see the module docstring for cancellation)."""
    runner = RUNNERS.get(item.runner)
    if runner is None:
        known = ", ".join(sorted(RUNNERS))
        return ItemResult(EXIT_INVALID, "failed", f"unknown runner {item.runner!r} (known: {known})", "")
    fields = {"machine": item.machine, "item": item.name, "attempt": item.attempt, "runner": item.runner}
    _emit(on_event, ItemEvent(item.name, "started", {"runner": item.runner, "attempt": item.attempt}))
    began = time.monotonic()
    try:
        result = await runner(item, on_event, settings or RunnerSettings())
    except asyncio.CancelledError:
        # Cancelled outside a child's lifetime (e.g. while it was being spawned, which asyncio cleans up).
        result = ItemResult(EXIT_CANCELLED, "cancelled", "cancelled", "")
    except Exception as exc:
        log.exception("runner crashed", extra=fields)
        message = Redactor(item.secrets.values()).text(f"internal error in the {item.runner} runner: {exc!r}")
        result = ItemResult(EXIT_FAILED, "failed", message, "")
    log.info("item finished: %s", result.result, extra={**fields, "exit_code": result.exit_code})
    # The item's version and the run's length let the region learn how long the fleet takes for each
    # item and version (docs/telemetry.md, the scheduler's item durations).
    ended = {"result": result.result, "exit_code": result.exit_code, "version": item.version,
             "seconds": round(time.monotonic() - began, 3)}
    _emit(on_event, ItemEvent(item.name, "finished", ended))
    return result


def _emit(sink: EventSink, event: ItemEvent) -> None:
    try:
        sink(event)
    except Exception:
        log.exception("item event sink failed", extra={"item": event.item, "kind": event.kind})
