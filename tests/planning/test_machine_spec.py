"""How a machine's spec is rendered: templates, the cluster's overrides, swarm params, labels, overwrites,
and the first control machine."""

from __future__ import annotations

from typing import Any

import pytest
from planning_world import cluster_raw, item, machine_raw, release

from agent.api.models import LCMCluster, LCMMachine, StateItem
from regional.planning.machines import MachineView, view
from regional.planning.ordering import first_control
from regional.planning.rendering import (
    Swarm,
    Target,
    Templates,
    engine_labels,
    machine_patch,
    operator_overwrites,
    planned_params,
    swarm_item_for,
    target,
)


def _view(name: str, kind: str = "worker", items: list[str] = (), **raw: Any) -> MachineView:  # type: ignore[assignment]
    body = machine_raw(name, kind, ip=raw.pop("ip", "10.0.0.5"), index=raw.pop("index", None),
                       labels=raw.pop("labels", None))
    body["spec"]["stateItems"] = [item(n, "deploy") for n in items]
    body["spec"].update(raw.pop("spec", {}))
    body["metadata"].update(raw)
    v = view(LCMMachine.from_raw(body))
    assert v is not None
    return v


def _names(items: tuple[StateItem, ...]) -> list[str]:
    return [i.name for i in items]


@pytest.mark.parametrize(
    ("machines", "first"),
    [
        ([("c-b", 0, []), ("c-a", 1, [])], "c-b"),  # lowest index
        ([("c-a", None, []), ("c-z", 5, [])], "c-z"),  # indexed machines before the others
        ([("c-b", None, []), ("c-a", None, [])], "c-a"),  # then by name
        ([("c-b", "x", []), ("c-a", None, [])], "c-a"),  # a bad index counts as none
        ([("c-0", 0, []), ("c-a", 1, ["swarm-init"])], "c-a"),  # the initialiser stays first
        ([("c-0", 0, []), ("c-a", 1, ["swarm-join"])], "c-a"),  # a member manager beats a newcomer
        ([("w-a", None, ["swarm-join"])], None),  # workers in a swarm without managers: nobody
        ([], None),
    ],
    ids=["index", "indexed-first", "name", "bad-index", "sticky-init", "member", "no-manager", "empty"],
)
def test_first_control_machine(machines: list[tuple[str, Any, list[str]]], first: str | None) -> None:
    views = sorted(
        (_view(name, "worker" if name.startswith("w") else "control", items,
               annotations={} if index is None else {"lcm.mirantis.com/index": str(index)})
         for name, index, items in machines),
        key=lambda v: v.order,
    )
    chosen = first_control(views)
    assert (chosen.name if chosen else None) == first


def test_a_leaving_initialiser_is_not_first() -> None:
    leaving = _view("c-0", "control", ["swarm-init"], spec={"prepareDeletion": True})
    other = _view("c-1", "control", ["swarm-join"])
    assert first_control([leaving, other]) is other


def _swarm(first: MachineView | None, dedicated: bool = True) -> Swarm:
    return Swarm("demo", first, "10.0.0.1:2377,10.0.0.2:2377", dedicated)


@pytest.mark.parametrize(
    ("kind", "is_first", "dedicated", "expected"),
    [
        ("control", True, True, {"swarm-init": {
            "advertiseAddress": "10.0.0.5", "managerTokenSecret": "demo-swarm-manager-token",
            "workerTokenSecret": "demo-swarm-worker-token", "availability": "drain"}}),
        ("control", False, True, {"swarm-join": {
            "role": "manager", "managerAddresses": "10.0.0.1:2377,10.0.0.2:2377",
            "joinTokenSecret": "demo-swarm-manager-token", "advertiseAddress": "10.0.0.5",
            "availability": "drain"}}),
        ("control", False, False, {"swarm-join": {
            "role": "manager", "managerAddresses": "10.0.0.1:2377,10.0.0.2:2377",
            "joinTokenSecret": "demo-swarm-manager-token", "advertiseAddress": "10.0.0.5",
            "availability": "active"}}),
        ("worker", False, True, {"swarm-join": {
            "role": "worker", "managerAddresses": "10.0.0.1:2377,10.0.0.2:2377",
            "joinTokenSecret": "demo-swarm-worker-token", "advertiseAddress": "10.0.0.5"}}),
    ],
    ids=["first-control", "other-control", "control-with-workloads", "worker"],
)
def test_swarm_params(
    kind: str, is_first: bool, dedicated: bool, expected: dict[str, dict[str, str]]
) -> None:
    v = _view("m", kind)
    swarm = _swarm(v if is_first else None, dedicated)
    chosen = swarm_item_for(v, swarm)
    templates = Templates(release(), LCMCluster.from_raw(cluster_raw()))
    items = templates.full(v.type, chosen)
    params = planned_params(v, items, swarm)
    assert {k: val for k, val in params.items() if k != "node-labels"} == expected


def test_manager_addresses_are_written_once() -> None:
    v = _view("w", "worker", ["swarm-join"],
              spec={"stateItemsOverwrites": {"swarm-join": {"managerAddresses": "10.0.0.1:2377"}}})
    params = planned_params(v, v.spec.state_items, _swarm(None))
    assert params["swarm-join"]["managerAddresses"] == "10.0.0.1:2377"


@pytest.mark.parametrize(
    ("labels", "param"),
    [
        ({}, "{}"),
        ({"team": "a"}, "{}"),
        ({"swarm.lcm.mirantis.com/zone": "a", "swarm.lcm.mirantis.com/disk": "ssd", "x/y": "z"},
         '{"disk":"ssd","zone":"a"}'),
    ],
)
def test_engine_labels_come_from_prefixed_machine_labels(labels: dict[str, str], param: str) -> None:
    assert engine_labels(labels) == param


def test_operator_overwrites_are_kept_and_the_planners_keys_dropped() -> None:
    existing = {
        "swarm-join": {"role": "manager", "extra": "mine"},
        "daemon-config": {"log-level": "debug"},
        "node-labels": {"labels": "{\"old\":\"1\"}"},
    }
    assert operator_overwrites(existing) == {
        "swarm-join": {"extra": "mine"},
        "daemon-config": {"log-level": "debug"},
    }


def test_machine_specific_params_and_overwrites_are_rendered_into_the_items() -> None:
    """Where Mirantis' hash sees them: a changed address or overwrite re-runs the item on both systems."""
    templates = Templates(release(), LCMCluster.from_raw(cluster_raw()))
    v = _view("w", "worker", spec={"stateItemsOverwrites": {"swarm-join": {"extra": "mine", "role": "x"}}})
    swarm = _swarm(None)
    want = target(v, templates.full("worker", "swarm-join"), templates, swarm)
    join = next(i for i in want.items if i.name == "swarm-join")
    planned = planned_params(v, templates.full("worker", "swarm-join"), swarm)["swarm-join"]
    assert join.params == {**next(i for i in templates.full("worker", "swarm-join")
                                  if i.name == "swarm-join").params, **planned, "extra": "mine"}
    assert want.overwrites == {"swarm-join": {"extra": "mine"}}
    assert (want.lcm_type, want.ucp_version) == ("ucp", release().spec.version)
    untouched = [i for i in want.items if i.name not in planned_params(v, want.items, swarm)]
    assert all(any(i is t for t in templates.full("worker", "swarm-join")) for i in untouched)


def test_the_cluster_overrides_release_items_by_name_and_adds_its_own() -> None:
    own = [{**item("packages", "prepare", "2.0.0"), "params": {"mirror": "http://local"}},
           item("extra", "reconfigure")]
    cluster = LCMCluster.from_raw(cluster_raw(machineTypes={"worker": own}))
    templates = Templates(release(), cluster)
    worker = templates.full("worker", "swarm-join")
    assert _names(worker) == ["preflight", "packages", "docker-engine", "swarm-join", "node-labels", "extra"]
    packages = worker[1]
    assert (packages.version, dict(packages.params)) == (
        "2.0.0", {"playbook": "prepare/packages.yml", "mirror": "http://local"}
    )
    assert templates.full("control", "swarm-init")[1].version == "1.0.0"


def test_decommission_items_are_not_given_in_normal_operation() -> None:
    templates = Templates(release(), LCMCluster.from_raw(cluster_raw()))
    assert "swarm-leave" not in _names(templates.full("worker", "swarm-join"))
    assert [(i.name, i.phase) for i in templates.decommission("worker")] == [("swarm-leave", "reconfigure")]


def test_the_first_control_machine_inits_the_others_join() -> None:
    templates = Templates(release(), LCMCluster.from_raw(cluster_raw()))
    assert "swarm-join" not in _names(templates.full("control", "swarm-init"))
    assert "swarm-init" not in _names(templates.full("control", "swarm-join"))


def test_a_release_listing_swarm_join_only_for_workers_lends_it_to_control_machines() -> None:
    types = {
        "control": [
            item("docker-engine", "deploy"), item("swarm-init", "deploy"), item("node-labels", "reconfigure")
        ],
        "worker": [item("docker-engine", "deploy"), item("swarm-join", "deploy")],
    }
    templates = Templates(release(machine_types=types), LCMCluster.from_raw(cluster_raw()))
    assert _names(templates.full("control", "swarm-join")) == ["docker-engine", "swarm-join", "node-labels"]


def test_a_patch_holds_only_what_differs() -> None:
    templates = Templates(release(), LCMCluster.from_raw(cluster_raw()))
    v = _view("w", "worker")
    items = templates.full("worker", "swarm-join")
    want = Target(items, {"swarm-join": {"role": "worker"}}, "swarm-1.0.0", templates.agent_config, ())
    patch = machine_patch(v.machine, want, templates)
    assert patch is not None
    assert set(patch["spec"]) == {"stateItems", "stateItemsOverwrites", "release", "lcmType",
                                                         "agentConfig"}
    raw = v.machine.to_raw()
    done = LCMMachine.from_raw({**raw, "spec": {**raw["spec"], **patch["spec"]}})
    assert machine_patch(done, want, templates) is None
    fewer = Target(items, {}, "swarm-1.0.0", templates.agent_config, ())
    assert machine_patch(done, fewer, templates) == {"spec": {"stateItemsOverwrites": {"swarm-join": None}}}
