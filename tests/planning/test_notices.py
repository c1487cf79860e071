"""Which changes of an LCMMachine or LCMCluster are worth an Event, and that a retry loop is one Event."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from regional.planning.notices import Notice, cluster_notices, machine_notices


def _machine(**status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "w0", "namespace": "ns"}, "status": status}


def _slot(code: int, attempt: int, message: str = "", hash_: str = "h1") -> dict[str, Any]:
    return {"hash": hash_, "exitCode": code, "attempt": attempt, "message": message}


def _reconciled(status: str, message: str) -> list[dict[str, Any]]:
    return [{"type": "Reconciled", "status": status, "reason": "x", "message": message}]


FAILED = Notice("ItemFailed", "item engine failed: apt: boom", "Warning")
RETRIED = Notice("ItemRetried", "item engine is run again after a failure")


@pytest.mark.parametrize(("before", "after", "notices"), [
    # An item's life: started, failed, retried, failed the same way, retried, done.
    ({}, {"engine": _slot(-1, 1)}, []),
    ({"engine": _slot(-1, 1)}, {"engine": _slot(1, 1, "apt: boom")}, [FAILED]),
    ({"engine": _slot(1, 1, "apt: boom")}, {"engine": _slot(-1, 2)}, [RETRIED]),
    ({"engine": _slot(-1, 2)}, {"engine": _slot(1, 2, "apt: boom")}, [FAILED]),
    ({"engine": _slot(-1, 3)}, {"engine": _slot(0, 3)}, []),
    # The same failure rewritten (another field of the slot): no news.
    ({"engine": _slot(1, 2, "apt: boom")}, {"engine": {**_slot(1, 2, "apt: boom"), "finishedAt": "t"}}, []),
    # A failure without a message says its exit code.
    ({"engine": _slot(-1, 1)}, {"engine": _slot(124, 1)},
     [Notice("ItemFailed", "item engine failed: exit code 124", "Warning")]),
    # A first attempt of a new hash is not a retry.
    ({"engine": _slot(0, 3)}, {"engine": _slot(-1, 1, hash_="h2")}, []),
])
def test_item_failures_and_retries_are_worth_an_event_without_the_attempt_in_it(
    before: dict[str, Any], after: dict[str, Any], notices: list[Notice],
) -> None:
    assert machine_notices(_machine(stateItemStatuses=before), _machine(stateItemStatuses=after)) == notices


def test_a_retry_loop_says_the_same_thing_every_time_so_the_recorder_can_count_it() -> None:
    said = []
    slot = _slot(-1, 1)
    for attempt in range(1, 6):
        running, failed = _slot(-1, attempt), _slot(1, attempt, "apt: boom")
        said += machine_notices(_machine(stateItemStatuses={"engine": slot}),
                                _machine(stateItemStatuses={"engine": running}))
        said += machine_notices(_machine(stateItemStatuses={"engine": running}),
                                _machine(stateItemStatuses={"engine": failed}))
        slot = failed
    assert set(said) == {FAILED, RETRIED}
    assert said.count(FAILED) == 5
    assert said.count(RETRIED) == 4


@pytest.mark.parametrize(("before", "after", "notices"), [
    ({}, {"swarmCordonDrain": "cordondrained"},
     [Notice("Drained", "the node is cordoned and drained for maintenance")]),
    ({"swarmCordonDrain": "cordondrained"}, {},
     [Notice("Undrained", "the node is back in service after maintenance")]),
    ({"swarmCordonDrain": "cordondrained"}, {"swarmCordonDrain": "cordondrained"}, []),
    ({"conditions": _reconciled("True", "no drift")}, {"conditions": _reconciled("True", "converged engine")},
     [Notice("Repaired", "the reconciler repaired drift: converged engine")]),
    ({"conditions": _reconciled("True", "no drift")}, {"conditions": _reconciled("False", "engine: boom")},
     [Notice("RepairFailed", "the reconciler could not repair drift: engine: boom", "Warning")]),
    ({"conditions": _reconciled("False", "engine: boom")},
     {"conditions": _reconciled("True", "no drift")}, []),
    ({"conditions": _reconciled("True", "converged engine")},
     {"conditions": _reconciled("True", "converged engine")}, []),
])
def test_drains_and_repairs_are_worth_an_event(
    before: dict[str, Any], after: dict[str, Any], notices: list[Notice],
) -> None:
    assert machine_notices(_machine(**before), _machine(**after)) == notices


def _cluster(paused: bool = False, stuck: bool = False, message: str = "") -> dict[str, Any]:
    annotations = {"lcm.mirantis.com/paused": "true"} if paused else {}
    conditions = [{"type": "OperationStuck", "status": str(stuck), "message": message}]
    return {"metadata": {"name": "c", "namespace": "ns", "annotations": annotations},
            "status": {"lcmOperationStuck": stuck, "conditions": conditions}}


@pytest.mark.parametrize(("before", "after", "reasons"), [
    (_cluster(), _cluster(paused=True), ["RolloutPaused"]),
    (_cluster(paused=True), _cluster(), ["RolloutResumed"]),
    (_cluster(), _cluster(stuck=True, message="w0: item x failed 5 times or more"), ["RolloutHalted"]),
    (_cluster(stuck=True), _cluster(), ["RolloutResumed"]),
    (_cluster(stuck=True, message="a"), _cluster(stuck=True, message="b"), []),
    (_cluster(), _cluster(), []),
])
def test_a_rollout_pausing_halting_and_resuming_is_worth_an_event(
    before: dict[str, Any], after: dict[str, Any], reasons: list[str],
) -> None:
    assert [n.reason for n in cluster_notices(before, after)] == reasons


def test_a_halt_names_what_is_stuck_and_is_a_warning() -> None:
    stuck = _cluster(stuck=True, message="w0: item x has run for more than 300s")
    halted = cluster_notices(_cluster(), stuck)
    assert halted == [Notice("RolloutHalted", "the rollout stopped: w0: item x has run for more than 300s",
                             "Warning")]


def test_an_object_first_seen_or_deleted_is_no_change() -> None:
    failed = _machine(stateItemStatuses={"engine": _slot(1, 5, "boom")})
    assert machine_notices(None, failed) == []
    assert machine_notices(failed, None) == []
    assert cluster_notices(None, _cluster(stuck=True)) == []


def test_a_malformed_object_is_read_as_far_as_it_goes() -> None:
    broken = _machine(stateItemStatuses={"engine": "not a slot", "other": _slot(1, 1, "boom")})
    previous = copy.deepcopy(broken)
    previous["status"]["stateItemStatuses"]["other"] = _slot(-1, 1)
    assert [n.reason for n in machine_notices(previous, broken)] == ["ItemFailed"]
    assert machine_notices(_machine(stateItemStatuses=[1]), _machine(conditions="x")) == []
