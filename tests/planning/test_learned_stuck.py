"""Stuck detection learned from the fleet: the fleet's run durations (the book) and the planner's limit."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from planning_world import World, cluster_raw, machine_raw, plan_for, release

from agent.api.models import StateItem
from agent.decisions.hashing import item_hash
from regional.planning.durations import BUCKETS, DurationBook, Histogram, Norm
from regional.planning.item_norms import time_limit
from regional.planning.settings import PlanSettings

SETTINGS = PlanSettings(item_time_limit=3600, norm_factor=3, norm_floor=300, norm_samples=20)
ITEM = StateItem.model_validate({"runner": "ansible", "name": "install-engine", "version": "1.0.0"})
KEY = ("install-engine", "1.0.0")


@pytest.mark.parametrize(("norms", "limit", "learned"), [
    ({}, 3600, False),  # the fleet never ran it: the fixed limit
    ({KEY: Norm(p95=200, samples=19)}, 3600, False),  # too few runs to trust
    ({("install-engine", "0.9.0"): Norm(p95=200, samples=500)}, 3600, False),  # another version's figure
    ({("other", "1.0.0"): Norm(p95=200, samples=500)}, 3600, False),  # another item's
    ({KEY: Norm(p95=200, samples=20)}, 600, True),  # 3 x p95
    ({KEY: Norm(p95=20, samples=500)}, 300, True),  # never below the floor
    ({KEY: Norm(p95=1500, samples=500)}, 3600, False),  # never above the fixed limit
])
def test_the_limit_of_a_run_is_learned_once_the_fleet_has_run_the_item_often_enough(
    norms: dict[tuple[str, str], Norm], limit: float, learned: bool,
) -> None:
    got = time_limit(ITEM, SETTINGS, norms)
    assert got.seconds == pytest.approx(limit)
    assert (got.norm is not None) == learned


def _running(world: World, machine: str) -> StateItem:
    """The machine's first item, marked running since ``world.now``."""
    m = world.machine(machine)
    first = m.spec.state_items[0]
    world.machines[machine]["status"]["stateItemStatuses"][first.name] = {
        "hash": item_hash(first, m.spec.agent_config.version), "exitCode": -1, "attempt": 1,
        "startedAt": world.now.strftime("%Y-%m-%dT%H:%M:%SZ")}
    return first


def _stuck(world: World) -> tuple[bool, str]:
    condition = next(c for c in world.cluster["status"]["conditions"] if c["type"] == "OperationStuck")
    return world.cluster["status"]["lcmOperationStuck"], condition["message"]


def test_a_run_well_past_the_fleets_p95_is_flagged_naming_item_machine_and_the_fleets_figure() -> None:
    v1, v2 = release(), release("swarm-1.1.0", "1.1.0", agent="0.2.0", upgrade_from=["swarm-1.0.0"])
    world = World.of(cluster_raw(), [machine_raw("c0", "control", ip="10.0.0.1")], v1, v2)
    world.settings = SETTINGS
    world.converge()
    world.cluster["spec"]["release"] = "swarm-1.1.0"
    world.cluster["metadata"]["generation"] += 1
    while world.machine("c0").spec.release != "swarm-1.1.0":  # other controllers are asked first
        world.step(movers=[])
    item = _running(world, "c0")
    world.item_norms = {(item.name, item.version): Norm(p95=150.4, samples=40)}
    started = world.now
    assert plan_for(world).requeue_after == pytest.approx(451.2)  # woken for the verdict, no event needed
    world.now = started + timedelta(seconds=451)
    world.apply(plan_for(world))
    assert _stuck(world) == (False, "")
    world.now = started + timedelta(seconds=452)
    world.apply(plan_for(world))
    assert _stuck(world) == (True, f"c0: item {item.name} has run for more than 451s; the fleet's p95 for "
                                   f"{item.name} {item.version} is 150s")
    assert world.machine("c0").status.lcm_operation_stuck is True
    # Planned again a minute later, the verdict says the same: nothing is rewritten.
    world.now += timedelta(seconds=60)
    assert [a.resource for a in plan_for(world).actions if a.resource == "lcmclusters"] == []


def test_a_histogram_estimates_quantiles_as_prometheus_does() -> None:
    h = Histogram()
    assert h.quantile(0.95) is None
    for seconds in [0.5] * 10 + [45] * 80 + [100] * 10:
        h.observe(seconds)
    # 95th of 100 runs: rank 95 lies in the (60, 120] bucket holding runs 91..100, halfway in.
    assert h.quantile(0.95) == pytest.approx(90)
    assert h.quantile(0.5) == pytest.approx(30 + 30 * (50 - 10) / 80)
    assert h.total == 100
    assert h.sum == pytest.approx(5 + 3600 + 1000)
    assert h.cumulative()[-1] == (math.inf, 100)
    late = Histogram()
    late.observe(10_000)
    assert late.quantile(0.95) == BUCKETS[-2]  # beyond the last finite bound: that bound


def test_the_book_keeps_success_durations_and_outcomes_per_item_and_version_and_stays_bounded() -> None:
    book = DurationBook(capacity=2)
    for _ in range(20):
        assert book.record("install-engine", "1.0.0", "success", 40)
    assert book.record("install-engine", "1.0.0", "failed", 3)
    assert book.record("install-engine", "1.1.0", "timeout", 3600)
    norms = book.norms()
    assert set(norms) == {KEY}  # no successful run of 1.1.0 yet: no figure
    assert norms[KEY].samples == 20
    assert 30 < norms[KEY].p95 <= 60
    runs = dict(book.items())
    assert runs[KEY].outcomes == {"success": 20, "failed": 1, "cancelled": 0, "timeout": 0}
    # A third key: the least recently heard goes, the book never holds more than its capacity.
    assert book.record("swarm-join", "1.0.0", "success", 5)
    assert len(book) == 2
    assert book.evicted == 1
    assert KEY not in dict(book.items())


@pytest.mark.parametrize(("item", "outcome", "seconds"), [
    ("", "success", 1.0), ("x", "exploded", 1.0), ("x", "success", -1.0), ("x", "success", math.nan),
    ("x", "success", math.inf),
])
def test_the_book_refuses_what_no_runner_reports(item: str, outcome: str, seconds: float) -> None:
    book = DurationBook()
    assert not book.record(item, "1", outcome, seconds)
    assert len(book) == 0
