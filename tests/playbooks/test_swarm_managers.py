"""Three managers (no workers): the first initialises, the others join one at a time as managers, each drained
as a dedicated control plane is; re-running changes nothing; one manager is decommissioned and the swarm
keeps its quorum."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Cluster, build_cluster
from swarm_harness import engine, swarm_nodes

from testbed.lab.leaks import files_containing

CONTROLS = ["mgr-1", "mgr-2", "mgr-3"]


@pytest.fixture(scope="module")
def managers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Rerun: the swarm items only; the others are the same items as in test_swarm_lifecycle."""
    yield from build_cluster((CONTROLS, []), tmp_path_factory.mktemp("work"), availability="drain",
                             swarm_only=True)


def test_every_control_machine_is_a_manager_of_one_swarm(managers: Cluster) -> None:
    seen = swarm_nodes(managers.manager)
    expected = dict.fromkeys(CONTROLS, ("manager", "ready", "drain"))
    assert {n: (s.role, s.state, s.availability) for n, s in seen.items()} == expected
    clusters = {engine(n).info()["Swarm"]["Cluster"]["ID"] for n in managers.nodes}
    assert len(clusters) == 1
    leaders = [n for n in engine(managers.manager).nodes.list() if n.attrs["ManagerStatus"].get("Leader")]
    assert len(leaders) == 1


def test_a_second_run_of_the_swarm_items_changes_nothing(managers: Cluster) -> None:
    assert sorted(r.item for r in managers.second) == ["swarm-init", "swarm-join", "swarm-join"]
    assert [(r.node, r.item, r.changed) for r in managers.second if r.changed] == []
    assert all(r.ok for r in managers.second)


def test_join_tokens_appear_nowhere(managers: Cluster) -> None:
    manager_token = managers.tokens[0].encode()
    work: Path = managers.release.work_root
    assert files_containing(work, manager_token) == []
    assert [line for line in managers.command_lines if manager_token in line] == []
    assert [line for line in managers.log_lines if managers.tokens[0] in line] == []


async def test_a_manager_is_decommissioned_and_the_swarm_keeps_its_quorum(managers: Cluster) -> None:
    leaving = managers.controls[2]
    release = managers.release
    leave = await release.must(leaving, "decommission/swarm-leave.yml", phase="decommission")
    assert leave.changed == 1  # it demoted itself first, then left
    remove = await release.must(managers.manager, "maintenance/swarm-remove.yml",
                                {"node_address": leaving.address})
    assert remove.changed == 1
    seen = swarm_nodes(managers.manager)
    assert sorted(seen) == CONTROLS[:2]
    assert {s.role for s in seen.values()} == {"manager"}
    reachable = [n.attrs["ManagerStatus"]["Reachability"] for n in engine(managers.manager).nodes.list()]
    assert reachable == ["reachable", "reachable"]
