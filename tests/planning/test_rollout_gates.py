"""An upgrade's gates (spec.rollout): the canary wave, the failure budget, the maintenance windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from planning_world import World, cluster_raw, machine_raw, plan_for, release

from agent.api.models import LCMMachine, StateItem
from agent.decisions.hashing import item_hash
from regional.planning.machines import view
from regional.planning.settings import PlanSettings
from regional.planning.waves import allowance, failed

V1 = release()
V2 = release("swarm-1.1.0", "1.1.0", agent="0.2.0", upgrade_from=["swarm-1.0.0"])
MONDAY = datetime(2026, 12, 7, 12, tzinfo=UTC)


def _cluster(workers: int = 4, **rollout: Any) -> World:
    spec: dict[str, Any] = {"maxWorkerUpgradeCount": workers}
    raws = [machine_raw("c0", "control", ip="10.0.0.1")]
    raws += [machine_raw(f"w{n}", "worker", ip=f"10.0.1.{n + 1}") for n in range(workers)]
    world = World.of(cluster_raw(**spec), raws, V1, V2)
    world.now = MONDAY
    world.converge()
    world.cluster["spec"]["rollout"] = rollout
    return world


def _upgrade(world: World) -> None:
    world.cluster["spec"]["release"] = "swarm-1.1.0"
    world.cluster["metadata"]["generation"] += 1


def _release(world: World, name: str) -> str:
    return str(world.machines[name]["spec"]["release"])


def _waiting(world: World, name: str) -> str | None:
    waiting = world.machines[name]["status"].get("waiting")
    return None if waiting is None else str(waiting["reason"])


def _condition(world: World, kind: str) -> dict[str, Any]:
    return next(c for c in world.cluster["status"]["conditions"] if c["type"] == kind)


def _drained(world: World) -> set[str]:
    return {s["spec"]["arg"] for s in world.states.values() if s["spec"]["value"] == "true"}


def _steps(world: World, n: int) -> None:
    for _ in range(n):
        world.step()


def _until(world: World, check: Any, limit: int = 100) -> None:
    """Steps until ``check()`` holds; fails after ``limit``."""
    for _ in range(limit):
        if check():
            return
        world.step()
    raise AssertionError(f"not reached in {limit} steps")


# --- canary wave


def test_the_canary_workers_go_first_and_the_rest_wait_until_they_are_done() -> None:
    world = _cluster(canaryWorkers=1)
    _upgrade(world)
    _until(world, lambda: world.states)  # c0 upgraded (no drain: a dedicated control plane), then a drain
    assert _drained(world) == {"w0"}
    world.step()
    assert {_waiting(world, f"w{n}") for n in (1, 2, 3)} == {"Canary"}
    _until(world, lambda: _release(world, "w0") == "swarm-1.1.0" and world.state("w0") == "Ready")
    _steps(world, 3)
    assert _drained(world) == {"w1", "w2", "w3"}  # the wave passed: the budget of 4 drains is used at once
    assert {_waiting(world, f"w{n}") for n in (1, 2, 3)} == {None}
    world.converge()
    assert {_release(world, n) for n in world.machines} == {"swarm-1.1.0"}


def test_without_canaries_the_workers_start_together() -> None:
    world = _cluster()
    _upgrade(world)
    _until(world, lambda: world.states)
    assert _drained(world) == {"w0", "w1", "w2", "w3"}


def test_a_first_deploy_has_no_canary_wave() -> None:
    raws = [machine_raw("c0", "control", ip="10.0.0.1")] + [
        machine_raw(f"w{n}", "worker", ip=f"10.0.1.{n + 1}") for n in range(3)]
    world = World.of(cluster_raw(rollout={"canaryWorkers": 1, "maxFailures": 0}), raws, V1)
    world.converge()
    assert {world.state(n) for n in world.machines} == {"Ready"}
    assert not any(_waiting(world, n) for n in world.machines)


# --- failure budget


def test_a_failing_canary_pauses_the_upgrade_and_accepting_it_resumes() -> None:
    world = _cluster(canaryWorkers=1, maxFailures=0)
    world.settings = PlanSettings(max_item_attempts=1000)  # never stuck: only the budget stops it
    world.broken = {("w0", "docker-engine")}
    _upgrade(world)
    _until(world, lambda: world.cluster["status"]["progress"].startswith("failure budget spent"))
    _steps(world, 3)
    spent = _condition(world, "FailureBudgetSpent")
    assert (spent["status"], spent["reason"]) == ("True", "TooManyFailures")
    assert "1 of 2 machines the upgrade to swarm-1.1.0 touched failed (w0)" in spent["message"]
    assert world.cluster["status"]["progress"].startswith("failure budget spent, ")
    for name in ("w1", "w2", "w3"):  # untouched: the old spec, never drained
        assert _release(world, name) == "swarm-1.0.0"
        assert _waiting(world, name) == "FailureBudgetSpent"
    assert _drained(world) == {"w0"}
    # The operator accepts the canary's failure (it stays broken): the others go on.
    world.cluster["spec"]["rollout"]["acceptedFailures"] = {"release": "swarm-1.1.0", "count": 1}
    _steps(world, 2)
    assert _drained(world) == {"w0", "w1", "w2", "w3"}
    assert _condition(world, "FailureBudgetSpent")["status"] == "False"


def test_an_acceptance_for_another_release_does_not_count() -> None:
    world = _cluster(maxFailures=0, acceptedFailures={"release": "swarm-0.9.0", "count": 5})
    world.broken = {("w0", "docker-engine")}
    _upgrade(world)
    _steps(world, 30)
    assert _condition(world, "FailureBudgetSpent")["status"] == "True"


def test_failures_within_a_percentage_budget_do_not_pause() -> None:
    world = _cluster(maxFailures="50%")  # of 5 touched machines: 2
    world.broken = {("w0", "docker-engine")}
    _upgrade(world)
    _until(world, lambda: all(_release(world, n) == "swarm-1.1.0" and world.state(n) == "Ready"
                              for n in ("w1", "w2", "w3")))
    within = _condition(world, "FailureBudgetSpent")
    assert (within["status"], within["reason"]) == ("False", "WithinBudget")
    assert {_release(world, n) for n in ("w1", "w2", "w3")} == {"swarm-1.1.0"}


def test_a_fixed_retry_still_counts_as_failed_until_accepted() -> None:
    world = _cluster(canaryWorkers=1, maxFailures=0)
    world.broken = {("w0", "docker-engine")}
    _upgrade(world)
    _until(world, lambda: world.cluster["status"]["progress"].startswith("failure budget spent"))
    world.broken = set()  # the next attempt succeeds: w0 is done, after a failure
    _until(world, lambda: world.state("w0") == "Ready")
    _steps(world, 3)
    assert _condition(world, "FailureBudgetSpent")["status"] == "True"
    assert _release(world, "w1") == "swarm-1.0.0"


@pytest.mark.parametrize(("max_failures", "touched", "tolerated"), [
    (0, 10, 0), (3, 1, 3), ("10%", 9, 0), ("10%", 10, 1), ("10%", 25, 2), ("100%", 3, 3), ("0%", 50, 0),
])
def test_the_budget_is_a_count_or_a_percentage_of_the_touched_rounded_down(
        max_failures: int | str, touched: int, tolerated: int) -> None:
    assert allowance(max_failures, touched) == tolerated


def _machine_with(entry: dict[str, Any]) -> LCMMachine:
    item = {"runner": "bash", "name": "x", "version": "1", "phase": "deploy"}
    digest = item_hash(StateItem.model_validate(item), "0.1.0")
    return LCMMachine.from_raw({
        "apiVersion": "lcm.mirantis.com/v1alpha1", "kind": "LCMMachine", "metadata": {"name": "m"},
        "spec": {"type": "worker", "stateItems": [item], "agentConfig": {"version": "0.1.0"}},
        "status": {"stateItemStatuses": {"x": {"hash": digest, **entry}}}})


@pytest.mark.parametrize(("entry", "is_failed"), [
    ({"exitCode": 0, "attempt": 1}, False),
    ({"exitCode": -1, "attempt": 1}, False),  # the first run, running
    ({"exitCode": 2, "attempt": 1}, True),
    ({"exitCode": -1, "attempt": 2}, True),  # a retry running
    ({"exitCode": 0, "attempt": 3}, True),  # done, after failures
    ({"exitCode": 2, "attempt": 1, "hash": "old"}, False),  # a failure of another version of the item
])
def test_a_machine_failed_when_an_item_of_its_spec_failed_or_needed_another_run(
        entry: dict[str, Any], is_failed: bool) -> None:
    v = view(_machine_with(entry))
    assert v is not None
    assert failed(v) is is_failed


# --- maintenance windows


def _saturday_night(world: World) -> None:
    world.cluster["spec"]["rollout"] = {
        "timeZone": "Europe/Berlin", "windows": [{"days": ["Sat"], "start": "22:00", "end": "04:00"}]}


def test_outside_the_windows_no_upgrade_starts_and_the_plan_comes_back_at_the_opening() -> None:
    world = _cluster()
    _saturday_night(world)
    _upgrade(world)
    plan = plan_for(world)
    world.apply(plan)
    assert _waiting(world, "c0") == "WindowClosed"
    assert {_waiting(world, f"w{n}") for n in range(4)} == {"WaitingForControlPlane"}  # behind c0
    message = world.machines["c0"]["status"]["waiting"]["message"]
    assert message == "outside the maintenance windows; the next opens at 2026-12-12T22:00+01:00"
    opening = datetime(2026, 12, 12, 21, tzinfo=UTC)
    assert plan.requeue_after == (opening - world.now).total_seconds()
    _steps(world, 5)
    assert {_release(world, n) for n in world.machines} == {"swarm-1.0.0"}
    assert not world.states
    world.now = opening  # the injected clock reaches the window
    world.step()  # other controllers are asked first (maintenance of the cluster, then of c0), then c0 moves
    _until(world, lambda: _release(world, "c0") == "swarm-1.1.0")
    _until(world, lambda: world.states)
    assert _drained(world) == {"w0", "w1", "w2", "w3"}


def test_what_started_inside_a_window_finishes_after_it_closes() -> None:
    world = _cluster(workers=2)
    world.cluster["spec"]["maxWorkerUpgradeCount"] = 1
    _saturday_night(world)
    _upgrade(world)
    world.now = datetime(2026, 12, 13, 2, 50, tzinfo=UTC)  # Sunday 03:50 in Berlin: ten minutes left
    _until(world, lambda: world.states)
    assert _drained(world) == {"w0"}
    world.now = datetime(2026, 12, 13, 3, 0, tzinfo=UTC)  # closed
    _steps(world, 15)
    assert _release(world, "w0") == "swarm-1.1.0"
    assert world.state("w0") == "Ready"
    assert not world.states  # undrained and done
    assert _release(world, "w1") == "swarm-1.0.0"
    assert _waiting(world, "w1") == "WindowClosed"


@pytest.mark.parametrize("rollout", [
    {"windows": [{"days": [], "start": "01:00", "end": "02:00"}]},
    {"windows": [{"days": ["Mon"], "start": "01:00", "end": "01:00"}]},
    {"timeZone": "Europe/Nowhere", "windows": [{"days": ["Mon"], "start": "01:00", "end": "02:00"}]},
])
def test_windows_that_never_open_say_the_rollout_cannot_start(rollout: dict[str, Any]) -> None:
    world = _cluster()
    world.cluster["spec"]["rollout"] = rollout
    _upgrade(world)
    plan = plan_for(world)
    world.apply(plan)
    condition = _condition(world, "MaintenanceWindows")
    assert (condition["status"], condition["reason"]) == ("False", "NeverOpens")
    assert "no upgrade or reboot can start" in condition["message"]
    assert _waiting(world, "c0") == "WindowClosed"
    assert plan.requeue_after is None
    _steps(world, 4)
    assert {_release(world, n) for n in world.machines} == {"swarm-1.0.0"}


def test_valid_windows_are_named_in_a_condition() -> None:
    world = _cluster()
    _saturday_night(world)
    world.apply(plan_for(world))
    condition = _condition(world, "MaintenanceWindows")
    assert condition["status"] == "True"
    assert condition["message"] == "upgrades and reboots start only inside Sat 22:00-04:00 (Europe/Berlin)"


def test_once_upgraded_the_cluster_waits_for_nothing_and_writes_nothing() -> None:
    world = _cluster(canaryWorkers=1, maxFailures=0)
    _upgrade(world)
    world.converge()
    world.now += timedelta(days=1)
    assert plan_for(world).actions == ()
    assert not any(_waiting(world, n) for n in world.machines)
