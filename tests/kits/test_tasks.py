"""The task kits: who gets cancelled, what propagates, and what a forced stop leaves behind (nothing)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from agent.kits.tasks import RootEndedError, cancel_and_wait, first_of, guarded, until_stopped


class Probe:
    """A wait that records how it ended: "done", "cancelled" (its cleanup ran) or still running ("")."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.ended = ""

    async def wait(self, fail: BaseException | None = None) -> str:
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.ended = "cancelled"
            raise
        if fail is not None:
            self.ended = "failed"
            raise fail
        self.ended = "done"
        return "result"


async def forever() -> None:
    await asyncio.Event().wait()


@pytest.mark.parametrize(("finisher", "ends"), [
    (0, ("done", "cancelled", "cancelled")),
    (1, ("cancelled", "done", "cancelled")),
    (2, ("cancelled", "cancelled", "done")),
])
async def test_the_first_wait_to_finish_cancels_the_rest(finisher: int, ends: tuple[str, ...]) -> None:
    probes = [Probe(), Probe(), Probe()]
    probes[finisher].release.set()
    await first_of(*(p.wait() for p in probes))
    # Returned only after the losers' cleanup ran: nothing of first_of is left running.
    assert tuple(p.ended for p in probes) == ends


async def test_a_given_task_is_waited_for_but_stays_the_callers() -> None:
    mine, theirs = Probe(), Probe()
    task = asyncio.ensure_future(theirs.wait())
    mine.release.set()
    await first_of(task, mine.wait())
    assert (mine.ended, task.done()) == ("done", False)
    theirs.release.set()
    await first_of(task)  # a given task that finishes ends the wait too
    assert task.result() == "result"


async def test_an_exception_of_an_owned_wait_propagates_and_the_rest_are_cancelled() -> None:
    failing, other = Probe(), Probe()
    failing.release.set()
    with pytest.raises(LookupError, match="gone"):
        await first_of(failing.wait(LookupError("gone")), other.wait())
    assert other.ended == "cancelled"


async def test_an_exception_of_a_given_task_is_left_on_the_task() -> None:
    probe = Probe()
    probe.release.set()
    task = asyncio.ensure_future(probe.wait(LookupError("gone")))
    await first_of(task, forever())
    with pytest.raises(LookupError):
        task.result()


@pytest.mark.parametrize("seconds", [0.0, -5.0])
async def test_no_time_left_returns_at_once_and_cancels_every_owned_wait(seconds: float) -> None:
    probes = [Probe(), Probe()]
    await first_of(*(p.wait() for p in probes), seconds=seconds)
    assert [p.ended for p in probes] == ["cancelled", "cancelled"]


async def test_a_cancelled_first_of_cancels_its_own_waits_keeps_given_tasks_and_reraises() -> None:
    mine, theirs = Probe(), Probe()
    task = asyncio.ensure_future(theirs.wait())
    waiter = asyncio.ensure_future(first_of(task, mine.wait()))
    await mine.started.wait()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert (mine.ended, task.done()) == ("cancelled", False)
    await cancel_and_wait(task)
    assert theirs.ended == "cancelled"


async def test_cancel_and_wait_leaves_each_outcome_on_its_task() -> None:
    running, finished = Probe(), Probe()
    finished.release.set()
    done = asyncio.ensure_future(finished.wait())
    await first_of(done)
    pending = asyncio.ensure_future(running.wait())
    await running.started.wait()
    await cancel_and_wait(done, pending)
    assert (done.result(), pending.cancelled(), running.ended) == ("result", True, "cancelled")


Scenario = Callable[[Probe, asyncio.Event], None]


@pytest.mark.parametrize(("scenario", "expected", "ended"), [
    (lambda probe, stopping: probe.release.set(), "result", "done"),
    (lambda probe, stopping: stopping.set(), None, "cancelled"),
])
async def test_until_stopped_returns_the_result_or_none_once_stopped(
    scenario: Scenario, expected: str | None, ended: str,
) -> None:
    probe, stopping = Probe(), asyncio.Event()
    scenario(probe, stopping)
    assert await until_stopped(probe.wait(), stopping) == expected
    assert probe.ended == ended


async def test_until_stopped_raises_what_the_step_raised() -> None:
    probe = Probe()
    probe.release.set()
    with pytest.raises(LookupError):
        await until_stopped(probe.wait(LookupError("gone")), asyncio.Event())


async def test_a_cancelled_until_stopped_cancels_its_step_and_reraises() -> None:
    probe = Probe()
    waiter = asyncio.ensure_future(until_stopped(probe.wait(), asyncio.Event()))
    await probe.started.wait()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert probe.ended == "cancelled"


class Root(Probe):
    """A root task that runs until stopping, or ends early when released."""

    def __init__(self, stopping: asyncio.Event) -> None:
        super().__init__()
        self.stopping = stopping

    async def run(self, fail: BaseException | None = None) -> None:
        self.started.set()
        try:
            await first_of(self.stopping.wait(), self.release.wait())
        except asyncio.CancelledError:
            self.ended = "cancelled"
            raise
        if fail is not None and self.release.is_set():
            self.ended = "failed"
            raise fail
        self.ended = "stopped" if self.stopping.is_set() else "returned"


@pytest.mark.parametrize(("fail", "failure", "message"), [
    (LookupError("broken"), LookupError, "broken"),
    (None, RootEndedError, "root task a ended unexpectedly"),
])
async def test_a_root_that_fails_or_ends_stops_the_others_and_is_the_failure(
    fail: BaseException | None, failure: type[BaseException], message: str,
) -> None:
    stopping = asyncio.Event()
    a, b = Root(stopping), Root(stopping)
    a.release.set()
    result = await guarded({"a": a.run(fail), "b": b.run()}, stopping)
    assert isinstance(result, failure)
    assert str(result) == message
    # The others were asked to stop (not cancelled), and finished before guarded returned.
    assert (stopping.is_set(), b.ended) == (True, "stopped")


async def test_roots_that_stop_when_asked_are_no_failure() -> None:
    stopping = asyncio.Event()
    a, b = Root(stopping), Root(stopping)
    stopping.set()
    assert await guarded({"a": a.run(), "b": b.run()}, stopping) is None
    assert (a.ended, b.ended) == ("stopped", "stopped")


async def test_a_forced_stop_cancels_every_root_and_waits_for_them() -> None:
    stopping = asyncio.Event()
    a, b = Root(stopping), Root(stopping)
    runner = asyncio.ensure_future(guarded({"a": a.run(), "b": b.run()}, stopping))
    await a.started.wait()
    await b.started.wait()
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert (a.ended, b.ended) == ("cancelled", "cancelled")
