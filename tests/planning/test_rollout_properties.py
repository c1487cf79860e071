"""Properties of the planner over random clusters driven through many plan/apply steps.

Each example builds a cluster (1-3 control machines, up to 6 workers, random indexes, random limits), lets
its agents report in at random steps and move at random speeds, and checks at every step that the rollout
keeps its promises: never more workers cordoned than ``maxWorkerUpgradeCount``, never two control machines
changing at once, no join before a manager is Ready, the first manager chosen by index then name. Then it
must converge to all Ready with nothing more to do, through an upgrade and a deletion too; and with an item
that keeps failing it must halt, say so, and start nothing new.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from planning_world import TICK, World, cluster_raw, machine_raw, plan_for, release

from agent.api.models import LCMMachine
from regional.planning.actions import Create, Patch, Plan, PlanInput
from regional.planning.machines import MachineView, order_key, view
from regional.planning.planner import plan

ITEMS = ["preflight", "docker-engine", "swarm-init", "swarm-join", "node-labels"]
RELEASES = (release(), release("swarm-1.1.0", "1.1.0", agent="0.2.0", upgrade_from=["swarm-1.0.0"]))


@dataclass(frozen=True)
class Scenario:
    world: World
    arrivals: dict[str, int]
    """Step at which each machine's agent reports its address."""
    rng: random.Random


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    controls = draw(st.integers(1, 3))
    workers = draw(st.integers(0, 6))
    names = [f"c{i}" for i in range(controls)] + [f"w{i}" for i in range(workers)]
    machines = [
        machine_raw(name, "control" if name[0] == "c" else "worker",
                    index=draw(st.one_of(st.none(), st.integers(0, 5))))
        for name in names
    ]
    spec = {
        "maxWorkerUpgradeCount": draw(st.integers(1, 3)),
        "maxWorkerPrepareCount": draw(st.integers(1, 4)),
        "maxWorkerDeployCount": draw(st.integers(1, 4)),
        "dedicatedControlPlane": draw(st.booleans()),
    }
    world = World.of(cluster_raw(**spec), machines, *RELEASES)
    arrivals = {name: draw(st.integers(0, 6)) for name in names}
    return Scenario(world, arrivals, random.Random(draw(st.integers(0, 2**32))))


def _arrive(s: Scenario, step: int) -> None:
    for n, (name, at) in enumerate(sorted(s.arrivals.items())):
        raw = s.world.machines.get(name)
        if at == step and raw is not None:
            raw["status"]["addresses"] = [{"type": "InternalIP", "address": f"10.0.0.{n + 1}"}]


def _control_changing(inp: PlanInput) -> list[str]:
    states = {state.spec.arg for state in inp.cluster_states}
    return [
        m.metadata.name or ""
        for m in inp.machines
        if m.spec.type == "control"
        and _view(m).released
        and (not _view(m).settled or m.metadata.name in states)
    ]


def _view(m: LCMMachine) -> MachineView:
    v = view(m)
    assert v is not None
    return v


def _check_step(s: Scenario, inp: PlanInput, result: Plan) -> None:
    """The promises, checked on the objects a plan saw and the actions it made."""
    limit = inp.cluster.spec.max_worker_upgrade_count
    assert plan(inp) == result, "planning twice on the same objects must give the same actions"
    by_name = {m.metadata.name: m for m in inp.machines}
    controls = sorted((m for m in inp.machines if m.spec.type == "control"), key=order_key)
    ready_managers = [m for m in controls if _view(m).settled and _view(m).swarm_done]
    for action in result.actions:
        if not isinstance(action, Patch) or action.resource != "lcmmachines" or "spec" not in action.patch:
            continue
        new = {i["name"] for i in action.patch["spec"].get("stateItems", [])}
        old = {i.name for i in by_name[action.name].spec.state_items}
        if "swarm-join" in new - old:
            assert ready_managers, f"{action.name} joins before any manager is Ready"
        if "swarm-init" in new - old:
            assert action.name == controls[0].metadata.name, "the first manager: lowest index, then name"
    s.world.apply(result)
    after = s.world.input()
    cordoned = [
        state for state in after.cluster_states
        if state.spec.type == "swarm-drain" and _type(after, state.spec.arg) != "control"
    ]
    assert len(cordoned) <= limit, f"{len(cordoned)} workers cordoned, limit {limit}"
    changing = _control_changing(after)
    assert len(changing) <= 1, f"control machines changing at once: {changing}"


def _type(inp: PlanInput, name: str) -> str:
    return next((m.spec.type for m in inp.machines if m.metadata.name == name), "gone")


def _run(s: Scenario, steps: int, start: int = 0) -> None:
    for step in range(start, start + steps):
        _arrive(s, step)
        inp = s.world.input()
        _check_step(s, inp, plan(inp))
        for name in list(s.world.machines):
            if s.rng.random() < 0.7:
                s.world.run_agent(name)
        s.world.run_executor()
        s.world.now += TICK


def _settle(s: Scenario, start: int, limit: int = 300) -> None:
    """Drive to quiescence: every machine moves each step; fails if the plan never runs out of actions."""
    _run(s, 8, start)
    for _ in range(limit):
        inp = s.world.input()
        result = plan(inp)
        if not result.actions and all(_view(m).ready for m in inp.machines if not m.spec.prepare_deletion):
            return
        _check_step(s, inp, result)
        for name in list(s.world.machines):
            s.world.run_agent(name)
        s.world.run_executor()
    raise AssertionError("no convergence")


PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(scenarios())
def test_a_cluster_deploys_upgrades_and_loses_a_machine_keeping_every_promise(s: Scenario) -> None:
    _settle(s, 0)
    status = s.world.cluster["status"]
    assert (status["readyNodes"], status["release"]) == (len(s.world.machines), "swarm-1.0.0")
    assert plan_for(s.world).actions == ()

    s.world.cluster["spec"]["release"] = "swarm-1.1.0"
    s.world.cluster["metadata"]["generation"] = 2
    _settle(s, 100)
    assert {s.world.machine(n).spec.release for n in s.world.machines} == {"swarm-1.1.0"}
    assert s.world.cluster["status"]["release"] == "swarm-1.1.0"

    leaving = s.rng.choice(sorted(s.world.machines))
    s.world.machines[leaving]["spec"]["prepareDeletion"] = True
    _settle(s, 200)
    assert s.world.machine(leaving).metadata.finalizers == ()
    assert s.world.states == {}


@PROPERTY
@given(scenarios(), st.sampled_from(ITEMS))
def test_an_item_that_keeps_failing_halts_the_rollout(s: Scenario, broken_item: str) -> None:
    order = sorted((LCMMachine.from_raw(raw) for raw in s.world.machines.values()), key=order_key)
    first = next(m.metadata.name for m in order if m.spec.type == "control")
    candidates = {"swarm-init": [first], "swarm-join": [n for n in s.world.machines if n != first]}
    victims = sorted(candidates.get(broken_item, s.world.machines))
    assume(victims)
    victim = s.rng.choice(victims)
    s.world.broken = {(victim, broken_item)}
    _run(s, 80)
    machines = {m.metadata.name: m for m in s.world.input().machines}
    assert broken_item in s.world.items(victim)
    assert s.world.cluster["status"]["lcmOperationStuck"] is True
    assert machines[victim].status.lcm_operation_stuck is True
    stuck = next(c for c in s.world.cluster["status"]["conditions"] if c["type"] == "OperationStuck")
    assert victim in stuck["message"]
    assert broken_item in stuck["message"]
    released = {n for n, m in machines.items() if _view(m).released}
    for _step in range(80, 110):
        inp = s.world.input()
        result = plan(inp)
        assert not any(isinstance(a, Create) and a.body["spec"]["value"] == "true" for a in result.actions)
        s.world.apply(result)
        for name in s.world.machines:
            s.world.run_agent(name)
        s.world.run_executor()
        now_released = {m.metadata.name for m in s.world.input().machines if _view(m).released}
        assert now_released <= released, f"released while halted: {now_released - released}"
