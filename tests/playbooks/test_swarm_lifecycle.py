"""A swarm of one control machine and two workers, built from nothing by the release's playbooks through the
agent's runner on lab nodes (real dockerd, real Ansible), then reconfigured, drained and decommissioned.

The tests share one cluster (a deploy takes tens of seconds) and run in file order: the later ones change it.
"""

from __future__ import annotations

import json
from pathlib import Path

import docker
from conftest import ENGINE, Cluster
from swarm_harness import Release, engine, eventually, swarm_nodes

from testbed.lab.leaks import files_containing
from testbed.lab.netns import dockerd
from testbed.lab.netns.node import LabNode


def _daemon_json(node: LabNode) -> dict[str, object]:
    loaded: dict[str, object] = json.loads(node.config_path.read_text())
    return loaded


def test_every_node_is_in_the_swarm_with_its_role(cluster: Cluster) -> None:
    seen = swarm_nodes(cluster.manager)
    assert sorted(seen) == sorted(n.name for n in cluster.nodes)
    assert {n: (s.role, s.state, s.availability) for n, s in seen.items()} == {
        "ctl-1": ("manager", "ready", "active"),
        "wrk-1": ("worker", "ready", "active"),
        "wrk-2": ("worker", "ready", "active"),
    }
    assert {n: s.address for n, s in seen.items()} == {n.name: n.address for n in cluster.nodes}


async def test_the_managers_see_every_nodes_labels(cluster: Cluster) -> None:
    wanted = {n.name: json.loads(cluster.labels[n.name]) for n in cluster.nodes}

    def labels() -> dict[str, dict[str, str]] | None:
        seen = {n: dict(s.labels) for n, s in swarm_nodes(cluster.manager).items()}
        return seen if seen == wanted else None

    assert await eventually(labels, within=60) == wanted


def test_engine_settings_come_from_the_release_and_node_settings_stay(cluster: Cluster) -> None:
    for node in cluster.nodes:
        config = _daemon_json(node)
        assert config["log-driver"] == "json-file"
        assert config["log-opts"] == json.loads(ENGINE["logOpts"])
        assert config["registry-mirrors"] == ["http://10.77.255.1:5000"]
        assert config["data-root"] == str(node.data_root)  # the node's own key, kept
        info = engine(node).info()
        assert info["LoggingDriver"] == "json-file"
        assert info["RegistryConfig"]["Mirrors"] == ["http://10.77.255.1:5000/"]


def test_a_second_run_of_every_item_changes_nothing(cluster: Cluster) -> None:
    assert {(r.node, r.item) for r in cluster.second} == {(r.node, r.item) for r in cluster.first}
    assert [(r.node, r.item, r.changed) for r in cluster.second if r.changed] == []
    assert all(r.ok for r in cluster.second)
    first = {(r.node, r.item): r.changed for r in cluster.first}
    assert first[("ctl-1", "swarm-init")] == 1
    assert first[("wrk-1", "swarm-join")] == 1


def test_join_tokens_appear_nowhere(cluster: Cluster) -> None:
    assert cluster.samples > 10  # the process list was really watched during the joins
    runs = cluster.release.runs
    for token in cluster.tokens:
        needle = token.encode()
        assert files_containing(cluster.release.work_root, needle) == []
        assert [line for line in cluster.command_lines if needle in line] == []
        assert [line for line in cluster.log_lines if token in line] == []
        assert [r.item for r in runs if token in r.result.message or token in r.result.log_tail] == []
        assert [e for e in cluster.release.events if token in repr(e.data)] == []
        for node in cluster.nodes:
            assert needle not in node.log_file.read_bytes()
    artifacts = list(cluster.release.work_root.rglob("artifacts/swarm-join/*/stdout"))
    assert artifacts  # the joins did leave their logs there


async def test_reconfigure_changes_one_node_only(cluster: Cluster) -> None:
    target = cluster.workers[0]
    others = [n for n in cluster.nodes if n is not target]
    before = {n.name: (n.config_path.read_text(), dockerd.pid(n)) for n in others}
    node_id = engine(target).info()["Swarm"]["NodeID"]
    pid = dockerd.pid(target)

    run = await cluster.release.labels(target, '{"zone": "z9", "rack": "r1"}')
    assert run.changed > 0
    assert dockerd.pid(target) == pid  # labels are applied by a reload
    assert await eventually(lambda: swarm_nodes(cluster.manager)[target.name].labels == {"zone": "z9",
                                                                                         "rack": "r1"})

    opts = {**ENGINE, "logOpts": '{"max-size": "20m", "max-file": "3"}'}
    run = await cluster.release.must(target, "reconfigure/daemon-config.yml", opts, phase="reconfigure")
    assert run.changed > 0
    assert dockerd.pid(target) != pid  # log options need a restart
    assert _daemon_json(target)["log-opts"] == {"max-size": "20m", "max-file": "3"}
    assert engine(target).info()["Swarm"]["NodeID"] == node_id  # the same node: it never left the swarm
    assert await eventually(lambda: swarm_nodes(cluster.manager)[target.name].state == "ready")

    assert {n.name: (n.config_path.read_text(), dockerd.pid(n)) for n in others} == before
    again = await cluster.release.must(target, "reconfigure/daemon-config.yml", opts, phase="reconfigure")
    assert again.changed == 0


async def test_drain_empties_a_node_and_undrain_brings_it_back(cluster: Cluster, tmp_path: Path) -> None:
    rootfs = dockerd.busybox_rootfs(tmp_path / "rootfs.tar")
    for node in cluster.nodes:
        dockerd.import_image(node, rootfs, "busybox:lab")
    target = cluster.workers[1]
    client = engine(cluster.manager)
    service = client.services.create(
        "busybox:lab", ["sleep", "3600"], name="sleepers", mode=docker.types.ServiceMode("replicated", 4),
        constraints=["node.role == worker"])
    try:
        def running_on(node: LabNode) -> int:
            node_id = swarm_nodes_ids(cluster)[node.name]
            return sum(1 for t in service.tasks({"desired-state": "running", "node": node_id})
                       if t["Status"]["State"] == "running")

        assert await eventually(lambda: running_on(target) > 0, within=60)
        drain = {"node_address": target.address, "availability": "drain"}
        run = await cluster.release.must(cluster.manager, "maintenance/swarm-drain.yml", drain)
        assert run.changed == 1
        assert running_on(target) == 0  # the playbook returned only once the node ran nothing
        assert swarm_nodes(cluster.manager)[target.name].availability == "drain"
        again = await cluster.release.must(cluster.manager, "maintenance/swarm-drain.yml", drain)
        assert again.changed == 0

        active = {"node_address": target.address, "availability": "active"}
        run = await cluster.release.must(cluster.manager, "maintenance/swarm-drain.yml", active)
        assert run.changed == 1
        assert swarm_nodes(cluster.manager)[target.name].availability == "active"
    finally:
        service.remove()


def swarm_nodes_ids(cluster: Cluster) -> dict[str, str]:
    return {n.attrs["Description"]["Hostname"]: n.attrs["ID"] for n in engine(cluster.manager).nodes.list()}


async def test_decommission_removes_a_node_cleanly(cluster: Cluster) -> None:
    release: Release = cluster.release
    target = cluster.workers[1]
    drain = {"node_address": target.address, "availability": "drain"}
    await release.must(cluster.manager, "maintenance/swarm-drain.yml", drain)
    leave = await release.must(target, "decommission/swarm-leave.yml", phase="decommission")
    assert leave.changed == 1
    assert engine(target).info()["Swarm"]["LocalNodeState"] == "inactive"
    remove = {"node_address": target.address}
    run = await release.must(cluster.manager, "maintenance/swarm-remove.yml", remove)
    assert run.changed == 1
    assert sorted(swarm_nodes(cluster.manager)) == ["ctl-1", "wrk-1"]

    assert (await release.must(target, "decommission/swarm-leave.yml", phase="decommission")).changed == 0
    assert (await release.must(cluster.manager, "maintenance/swarm-remove.yml", remove)).changed == 0
