"""The executor's rules before a drain, a demotion or a removal: disruption budgets (labels, the default,
bad labels, global services, two drains at once, the rebalancing of a service swarm left on one node) and
the quorum guard, as tables over swarm snapshots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.api.models import LCMClusterState
from agent.api.swarm_snapshot import SwarmNode, SwarmService, SwarmSnapshot, SwarmTask
from agent.decisions.disruption import budget, check_drain, lost_quorum, quorum_refusal
from agent.decisions.swarm_operations import MIN_DRAIN_WAIT, drain_wait

W1, W2, W3 = "10.0.1.1", "10.0.1.2", "10.0.1.3"
MIN, MAX = "lcm.mirantis.com/min-available", "lcm.mirantis.com/max-unavailable"


def node(address: str, availability: str = "active", state: str = "ready", role: str = "worker",
         reachability: str = "") -> SwarmNode:
    return SwarmNode(id=f"n-{address}", address=address, role=role, availability=availability, state=state,
                     reachability=reachability)


def web(replicas: int = 2, *, mode: str = "replicated", parallelism: int = 1, order: str = "stop-first",
        updating: bool = False, **labels: str) -> SwarmService:
    return SwarmService(id="s-web", name="web", mode=mode, replicas=replicas, labels=labels,
                        update_parallelism=parallelism, update_order=order, updating=updating)


def tasks(*placed: str, running: bool = True) -> tuple[SwarmTask, ...]:
    return tuple(SwarmTask("s-web", f"n-{address}", running) for address in placed)


def swarm(service: SwarmService, placed: tuple[SwarmTask, ...], *nodes: SwarmNode) -> SwarmSnapshot:
    return SwarmSnapshot(nodes or (node(W1), node(W2), node(W3)), (service,), placed)


@pytest.mark.parametrize(("labels", "replicas", "floor", "warned"), [
    ({}, 3, 1, False),  # the default: never the last running replica
    ({}, 1, 0, False),  # a single replica has no default budget (it must stop somewhere to move)
    ({MIN: "2"}, 3, 2, False),
    ({MAX: "1"}, 3, 2, False),
    ({MAX: "0"}, 2, 2, False),
    ({MIN: "1", MAX: "0"}, 3, 3, False),  # both: the stricter
    ({MIN: "1"}, 1, 1, False),  # the operator protects a single replica: drains wait
    ({MIN: "two"}, 3, 1, True),
    ({MIN: "-1"}, 3, 1, True),
    ({MIN: " 1"}, 3, 1, True),
    ({MAX: "4"}, 3, 1, True),  # larger than the replicas
    ({MIN: "5", MAX: "1"}, 3, 2, True),  # the good label still counts
])
def test_a_service_budget_from_its_labels(labels: dict[str, str], replicas: int, floor: int,
                                          warned: bool) -> None:
    found = budget(web(replicas, **labels))
    assert found.min_available == floor
    assert bool(found.warnings) is warned
    for warning in found.warnings:
        assert warning.startswith("service web: label lcm.mirantis.com/")
        assert "the default applies" in warning


@pytest.mark.parametrize(("service", "placed", "allowed"), [
    (web(2), tasks(W1, W2), True),  # one moves, one keeps running
    (web(2), tasks(W1, W1), False),  # both on the node: the classic trap after an earlier drain
    (web(2), tasks(W1) + tasks(W2, running=False), False),  # the rescheduled task is not running yet
    (web(3, **{MIN: "2"}), tasks(W1, W1, W2), False),
    (web(3, **{MAX: "2"}), tasks(W1, W1, W2), True),
    (web(1), tasks(W1), True),  # no default budget for a single replica
    (web(1, **{MIN: "1"}), tasks(W1), False),
    (web(2, mode="global"), tasks(W1, W2), True),  # global services are exempt
    (web(2), tasks(W2, W3), True),  # nothing of it on the node
    (web(2, **{MIN: "x"}), tasks(W1, W1), False),  # a bad label: the default still protects
])
def test_a_drain_keeps_every_service_within_its_budget(service: SwarmService, placed: tuple[SwarmTask, ...],
                                                       allowed: bool) -> None:
    check = check_drain(swarm(service, placed), W1)
    assert check.allowed is allowed
    assert ("service web" in check.message) is not allowed


def test_tasks_on_a_node_that_drains_too_do_not_count() -> None:
    view = swarm(web(2), tasks(W1, W2), node(W1), node(W2, availability="drain"), node(W3))
    check = check_drain(view, W1)
    assert not check.allowed
    assert check.message == ("disruption budget: service web: draining would stop 1 running task(s) and "
                             "leave 0, below its budget (min-available 1 (the default))")


def test_a_bad_label_is_named_and_the_drain_still_goes_when_the_default_allows_it() -> None:
    check = check_drain(swarm(web(2, **{MAX: "3"}), tasks(W1, W2)), W1)
    assert check.allowed
    assert check.warnings == ("service web: label lcm.mirantis.com/max-unavailable='3' is not an integer "
                              "from 0 to its 2 replicas; the default applies (min-available 1)",)


@pytest.mark.parametrize(("service", "placed", "nodes", "rebalanced", "rebalance"), [
    (web(2), tasks(W1, W1), (node(W1), node(W2)), (), True),
    (web(2), tasks(W1, W1), (node(W1), node(W2)), ("s-web",), False),  # once per drain
    (web(2, order="start-first", parallelism=0), tasks(W1, W1), (node(W1), node(W2)), (), True),
    (web(2, parallelism=0), tasks(W1, W1), (node(W1), node(W2)), (), False),  # all at once: an outage
    (web(2, parallelism=2), tasks(W1, W1), (node(W1), node(W2)), (), False),
    (web(2, updating=True), tasks(W1, W1), (node(W1), node(W2)), (), False),  # swarm is moving it already
    (web(2), tasks(W1) + tasks(W2, running=False), (node(W1), node(W2)), (), False),  # a task on its way
    (web(2), tasks(W1, W1), (node(W1), node(W2, availability="pause")), (), False),  # nowhere to go
])
def test_a_service_left_on_one_node_is_rebalanced_only_within_its_budget(
    service: SwarmService, placed: tuple[SwarmTask, ...], nodes: tuple[SwarmNode, ...],
    rebalanced: tuple[str, ...], rebalance: bool,
) -> None:
    check = check_drain(swarm(service, placed, *nodes), W1, rebalanced=rebalanced)
    assert [b.rebalance for b in check.blockers] == [rebalance]
    assert ("rebalancing it" in check.message) is rebalance


def manager(address: str, reachability: str = "reachable") -> SwarmNode:
    return node(address, availability="drain", role="manager", reachability=reachability)


C1, C2, C3, C4, C5 = (f"10.0.0.{n}" for n in range(1, 6))


@pytest.mark.parametrize(("managers", "target", "removal", "refused"), [
    ((manager(C1), manager(C2), manager(C3)), C1, False, False),  # 2 of 3 stay: quorum kept
    ((manager(C1), manager(C2), manager(C3, "unreachable")), C1, False, True),  # the 3-with-one-stopped case
    ((manager(C1), manager(C2), manager(C3, "unreachable")), C1, True, True),
    ((manager(C1), manager(C2), manager(C3, "unreachable")), C3, True, False),  # removing the dead one mends
    ((manager(C1), manager(C2), manager(C3, "unreachable")), C3, False, False),
    ((manager(C1),), C1, False, False),  # one manager: no safer moment to wait for
    ((manager(C1), manager(C2)), C1, False, False),  # two: no fault tolerance either
    ((manager(C1), manager(C2, "unreachable")), C1, True, True),  # would leave only the dead one
    ((manager(C1), manager(C2), manager(C3), manager(C4, "unreachable")), C1, False, True),
    ((manager(C1), manager(C2), manager(C3), manager(C4, "unreachable")), C1, True, False),
    ((*(manager(a) for a in (C1, C2, C3, C4)), manager(C5, "unreachable")), C1, False, False),
    ((manager(C1), manager(C2), manager(C3, "unreachable")), W1, False, False),  # a worker: no quorum
])
def test_the_quorum_guard(managers: tuple[SwarmNode, ...], target: str, removal: bool, refused: bool) -> None:
    view = SwarmSnapshot((*managers, node(W1)))
    refusal = quorum_refusal(view, target, removal=removal)
    assert bool(refusal) is refused
    if refused:
        assert refusal.startswith("quorum guard: ")
        assert "below the Raft quorum" in refusal


def test_the_quorum_guard_names_the_unreachable_managers() -> None:
    view = SwarmSnapshot((manager(C1), manager(C2), manager(C3, "unreachable")))
    assert quorum_refusal(view, C1, removal=False) == (
        "quorum guard: taking out the manager at 10.0.0.1 would leave 1 of 3 managers reachable, below the "
        "Raft quorum of 2 (unreachable: 10.0.0.3)")


@pytest.mark.parametrize(("managers", "others", "removal", "quorum"), [
    (3, 2, False, None), (3, 1, False, 2), (3, 1, True, 2), (5, 2, False, 3), (5, 2, True, 3),
    (5, 3, True, None), (4, 2, True, None), (4, 2, False, 3),
    (1, 0, False, None), (2, 0, False, None), (2, 0, True, 1),
])
def test_the_quorum_arithmetic(managers: int, others: int, removal: bool, quorum: int | None) -> None:
    assert lost_quorum(managers, others, removal=removal) == quorum


T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("annotation", "elapsed", "wait"), [
    ("600", 0, 600.0),
    ("600", 100, 500.0),
    ("600", 590, MIN_DRAIN_WAIT),  # past (or near) the deadline: a retry still looks
    (None, 0, 1800.0),  # an object of an older scheduler: the default
    ("soon", 0, 1800.0),
])
def test_a_drain_waits_as_long_as_is_left_of_its_timeout(annotation: str | None, elapsed: int,
                                                          wait: float) -> None:
    meta = {"name": "sd-w1", "creationTimestamp": "2026-01-01T00:00:00Z"}
    if annotation is not None:
        meta["annotations"] = {"lcm.mirantis.com/drain-timeout-seconds": annotation}  # type: ignore[assignment]
    state = LCMClusterState.from_raw({
        "apiVersion": "lcm.mirantis.com/v1alpha1", "kind": "LCMClusterState", "metadata": meta,
        "spec": {"clusterName": "demo", "type": "swarm-drain", "arg": "w1", "value": "true"}})
    assert drain_wait(state, T0 + timedelta(seconds=elapsed)) == wait
