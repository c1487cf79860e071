"""The demo in deploy/samples, planned: the sample cluster deploys from swarm-1.0.0, upgrades to swarm-1.1.0
re-running only the items that changed, and a worker leaves through the release's decommission items."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from planning_world import World, done

from agent.api.crds import load_crds
from agent.api.models import ClusterRelease
from agent.decisions.hashing import item_hash
from testbed.sim.schema import StructuralSchema

SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "samples"


def _samples() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(SAMPLES.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return docs


def _demo() -> World:
    docs = _samples()
    releases = [ClusterRelease.from_raw(d) for d in docs if d["kind"] == "ClusterRelease"]
    cluster = next(d for d in docs if d["kind"] == "LCMCluster")
    machines = [d for d in docs if d["kind"] == "LCMMachine"]
    for n, raw in enumerate(machines):
        raw["status"] = {"addresses": [{"type": "InternalIP", "address": f"10.10.0.{n + 1}"}]}
    return World.of(cluster, machines, *releases)


def _schema(kind: str) -> StructuralSchema:
    crd = next(c for c in load_crds() if c["spec"]["names"]["kind"] == kind)
    return StructuralSchema(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def _valid_objects(world: World) -> None:
    """What the plans wrote passes the CRDs, and nothing in it would be pruned by an API server."""
    objects = [world.cluster, *world.machines.values(), *world.states.values()]
    for raw in objects:
        schema = _schema(raw["kind"])
        assert schema.validate(raw) == [], raw["metadata"]["name"]
        name = raw["metadata"]["name"]
        assert _kept(raw, schema.default_and_prune(raw)), f"{name}: a field would be pruned"


def _kept(small: Any, big: Any) -> bool:
    if isinstance(small, dict):
        return isinstance(big, dict) and all(k in big and _kept(v, big[k]) for k, v in small.items())
    return bool(small == big)


def test_the_demo_deploys_upgrades_and_lets_a_worker_go() -> None:
    world = _demo()
    assert sorted(world.releases) == ["swarm-1.0.0", "swarm-1.1.0"]
    world.converge()
    assert {world.state(n) for n in world.machines} == {"Ready"}
    assert "swarm-init" in world.items("demo-control-0")
    assert world.cluster["status"]["progress"] == "ready 3/3"
    _valid_objects(world)

    before = {n: dict(world.machine(n).status.state_item_statuses) for n in world.machines}
    world.cluster["spec"]["release"] = "swarm-1.1.0"
    world.converge()
    assert world.cluster["status"]["release"] == "swarm-1.1.0"
    worker = world.machine("demo-worker-0")
    rerun = {
        name for name, entry in worker.status.state_item_statuses.items()
        if entry != before["demo-worker-0"].get(name)
    }
    changed = {
        i.name for i in worker.spec.state_items
        if item_hash(i, worker.spec.agent_config.version) != before["demo-worker-0"][i.name].hash
    }
    assert rerun == changed
    assert rerun < {i.name for i in worker.spec.state_items}  # an upgrade re-runs what changed, not all

    world.machines["demo-worker-1"]["spec"]["prepareDeletion"] = True
    for _ in range(3):
        world.step()
        _valid_objects(world)  # the drain and removal states included
    world.converge()
    assert world.machine("demo-worker-1").metadata.finalizers == ()
    assert world.items("demo-worker-1")[-1] == "swarm-leave"
    assert world.cluster["status"]["progress"] == "ready 2/2"


def test_the_demos_workers_configure_their_engine_while_the_control_plane_deploys() -> None:
    """The sample makes docker-engine a prepare item: workers held back until the control plane is done
    install and configure their engine meanwhile, so their own deploy is only the join."""
    world = _demo()
    workers = [n for n in world.machines if world.machine(n).spec.type == "worker"]
    engines_at = control_at = None
    for step in range(100):
        engines = all(done(world, w, "docker-engine") for w in workers)
        world.step()
        if engines_at is None and all(done(world, w, "docker-engine") for w in workers):
            engines_at = step
        if control_at is None and done(world, "demo-control-0", "swarm-init"):
            control_at = step
        if any("swarm-join" in world.items(w) for w in workers):
            assert engines, "a worker was given its join before its engine was configured"
            break
    else:
        raise AssertionError("the workers were never given their join")
    assert engines_at is not None
    assert control_at is not None
    assert engines_at < control_at  # the engines were done while the control machine was still deploying
