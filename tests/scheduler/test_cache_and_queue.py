"""The scheduler's memory: a cache never goes back to a version older than one it has seen (its own writes
included), and the work queue runs a cluster once however often it is asked, never twice at once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from agent.adapters.followed import FollowedObjects
from agent.adapters.watching import Change, Snapshot
from agent.api.models import LCMMachine
from regional.scheduler.controller import cluster_of
from regional.scheduler.queueing import WorkQueue, serve


def machine(name: str, rv: int, cluster: str = "demo", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "lcm.mirantis.com/v1alpha1", "kind": "LCMMachine",
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": str(rv)},
            "spec": {"clusterName": cluster, "type": "worker", **spec}}


def cache() -> tuple[FollowedObjects[LCMMachine], list[tuple[str | None, str | None]]]:
    changes: list[tuple[str | None, str | None]] = []

    def changed(old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        versions = [raw and raw["metadata"]["resourceVersion"] for raw in (old, new)]
        changes.append((versions[0], versions[1]))

    return FollowedObjects(LCMMachine, index=cluster_of, on_change=changed), changes


def test_an_event_older_than_our_own_write_is_ignored() -> None:
    objects, changes = cache()
    objects.feed(Snapshot([machine("m", 5)], "5"))
    objects.answered(machine("m", 9, release="r1"))  # our patch's answer
    objects.feed(Change("MODIFIED", machine("m", 7)))  # an agent's write from before ours, arriving late
    objects.feed(Change("MODIFIED", machine("m", 9, release="r1")))  # our own write's event
    entry = objects.entry("ns", "m")
    assert entry is not None
    assert entry.rv == 9
    assert changes == [(None, "5"), ("5", "9")]


def test_a_relist_keeps_what_is_newer_than_the_list_and_drops_what_is_gone() -> None:
    objects, _ = cache()
    objects.feed(Snapshot([machine("a", 3), machine("b", 4)], "4"))
    objects.answered(machine("c", 12))  # we created it after the list below was taken
    objects.feed(Snapshot([machine("a", 10)], "10"))
    assert sorted(m.metadata.name or "" for m in objects.models()) == ["a", "c"]


def test_a_deleted_object_does_not_come_back_from_a_late_event() -> None:
    objects, _ = cache()
    objects.feed(Snapshot([machine("m", 3)], "3"))
    objects.feed(Change("DELETED", machine("m", 6)))
    objects.feed(Change("MODIFIED", machine("m", 5)))
    assert objects.entry("ns", "m") is None
    objects.feed(Change("ADDED", machine("m", 8)))  # re-created
    assert objects.entry("ns", "m") is not None


def test_members_are_indexed_by_cluster_and_follow_a_move() -> None:
    objects, _ = cache()
    objects.feed(Snapshot([machine("a", 1), machine("b", 2, cluster="other")], "2"))
    objects.feed(Change("MODIFIED", machine("a", 3, cluster="other")))
    assert objects.models(("ns", "demo")) == []
    assert [m.metadata.name for m in objects.models(("ns", "other"))] == ["a", "b"]


def test_a_malformed_object_is_left_out_and_its_reason_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    objects, _ = cache()
    bad = machine("bad", 2, type="master")
    objects.feed(Snapshot([machine("good", 1), bad], "2"))
    with caplog.at_level(logging.WARNING, logger="agent.adapters.followed"):
        for _ in range(3):
            assert [m.metadata.name for m in objects.models(("ns", "demo"))] == ["good"]
    reasons = [r.getMessage() for r in caplog.records]
    assert len(reasons) == 1
    assert "bad" in reasons[0]
    assert "spec.type" in reasons[0]


async def test_a_cluster_asked_for_many_times_runs_once_and_never_twice_at_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    runs: list[str] = []
    running: set[str] = set()
    release = asyncio.Event()
    changed = asyncio.Event()

    async def handle(key: str) -> None:
        assert key not in running, f"{key} ran twice at once"
        running.add(key)
        runs.append(key)
        changed.set()
        if key != "marker":
            await release.wait()
        running.discard(key)
        changed.set()

    for _ in range(5):
        queue.add("a")
    queue.add("b")
    workers = asyncio.create_task(serve(queue, handle, workers=4))
    await _until(changed, lambda: running == {"a", "b"})
    assert sorted(runs) == ["a", "b"]  # concurrently, once each
    for _ in range(5):
        queue.add("a")  # while it runs: once more, after it
    release.set()
    await _until(changed, lambda: runs.count("a") == 2 and not running)
    # Any further run of "a" would have been queued when its second run ended, so ahead of this marker:
    queue.add("marker")
    await _until(changed, lambda: "marker" in runs and not running)
    workers.cancel()
    await asyncio.gather(workers, return_exceptions=True)
    assert sorted(runs) == ["a", "a", "b", "marker"]


async def _until(changed: asyncio.Event, check: Callable[[], bool]) -> None:
    """Until ``check`` holds, looked at after each change the handler signals (the timeout: a safety net)."""
    async with asyncio.timeout(20):
        while not check():
            changed.clear()
            await changed.wait()


async def test_a_delayed_run_keeps_the_earliest_request_and_a_failing_cluster_backs_off() -> None:
    """Counted per trigger on the loop's clock: timers fire in the order they are due, so what a marker due
    later has seen tells how often a key ran, however late a loaded host lets the loop run them."""
    queue: WorkQueue[str] = WorkQueue(uniform=lambda low, high: high)  # backoff 0.5 s, then 1 s
    runs: list[tuple[str, float]] = []
    loop = asyncio.get_running_loop()
    start = loop.time()
    at_marker: dict[str, list[str]] = {}
    changed = asyncio.Event()

    async def handle(key: str) -> None:
        runs.append((key, loop.time() - start))
        if key in ("probe", "end"):
            at_marker[key] = [k for k, _ in runs]
            changed.set()
        if key == "failing":
            raise RuntimeError("planner bug")

    queue.add_after("later", 0.3)
    queue.add_after("later", 0.1)
    queue.add_after("later", 0.5)
    queue.add_after("probe", 0.2)  # after the earliest request, before the others
    queue.add_after("end", 1.2)  # after the failing cluster's first backoff (0.5 s), before its second (1 s)
    queue.add("failing")
    workers = asyncio.create_task(serve(queue, handle, workers=2))
    await _until(changed, lambda: "end" in at_marker)
    workers.cancel()
    await asyncio.gather(workers, return_exceptions=True)
    assert at_marker["probe"].count("later") == 1  # the earliest request (0.1 s) ran it...
    assert at_marker["end"].count("later") == 1  # ...and the later ones (0.3 s, 0.5 s) were folded into it
    assert next(t for key, t in runs if key == "later") >= 0.1
    assert at_marker["end"].count("failing") == 2  # at once, then after the first backoff, not in a loop
    failing = [t for key, t in runs if key == "failing"]
    assert failing[1] - failing[0] >= 0.5


async def test_a_held_cluster_runs_once_after_the_hold_however_often_it_is_asked_for() -> None:
    queue: WorkQueue[str] = WorkQueue()
    loop = asyncio.get_running_loop()
    runs: list[float] = []
    at_marker: list[int] = []
    changed = asyncio.Event()

    async def handle(key: str) -> None:
        if key == "end":
            at_marker.append(len(runs))
        else:
            runs.append(loop.time())
            queue.hold(key, 0.3)
        changed.set()

    queue.add("big")
    workers = asyncio.create_task(serve(queue, handle, workers=2))
    await _until(changed, lambda: len(runs) == 1)
    for _ in range(10):
        queue.add("big")  # changes keep coming while it is held
        await asyncio.sleep(0)
    queue.add_after("end", 0.4)  # due after the hold (0.3 s from the first run): what it let through is ahead
    await _until(changed, lambda: bool(at_marker))
    workers.cancel()
    await asyncio.gather(workers, return_exceptions=True)
    assert at_marker == [2]
    assert runs[1] - runs[0] >= 0.29
