"""``lcm-agent reconcile`` on real lab nodes: drift injected by hand the way an operator or a crash would,
then converged by the reconciler process, which reports what it did and exits 0 only when converged."""

from __future__ import annotations

import json
import time

from reconciler_lab import IMAGE, SwarmLab, access, docker

from agent.adapters.engine_checks import observe
from agent.api.desired import ReconcileReport
from testbed.lab.netns import dockerd


def outcomes(report: ReconcileReport | None) -> dict[str, str]:
    assert report is not None
    return {c.name: c.outcome for c in report.components}


def test_a_healthy_node_needs_nothing(swarm_lab: SwarmLab) -> None:
    desired = swarm_lab.record("w1")
    code, report, output = swarm_lab.reconcile("w1", desired)
    assert code == 0, output
    assert set(outcomes(report).values()) == {"ok"}
    code, _, printed = swarm_lab.reconcile("w1", desired, dry_run=True)
    assert (code, printed.splitlines()[0]) == (0, "no drift: the node matches its desired state")


def test_a_stopped_engine_is_started_again(swarm_lab: SwarmLab) -> None:
    node = swarm_lab.node("w1")
    desired = swarm_lab.record("w1")
    dockerd.stop(node)
    code, _, printed = swarm_lab.reconcile("w1", desired, dry_run=True)
    assert code == 1
    assert printed.startswith("engine: not running (")
    code, report, output = swarm_lab.reconcile("w1", desired)
    assert code == 0, output
    assert outcomes(report)["engine"] == "converged"
    assert dockerd.ping(node)
    assert docker(node, "info", "--format", "{{.Swarm.LocalNodeState}}") == "active"


def test_a_daemon_json_changed_by_hand_is_restored(swarm_lab: SwarmLab) -> None:
    node = swarm_lab.node("m2")
    desired = swarm_lab.record("m2")
    recorded = node.config_path.read_text()
    hacked = {**json.loads(recorded), "labels": ["zone=hacked"], "debug": True}
    node.config_path.write_text(json.dumps(hacked))
    dockerd.reload(node)
    deadline = time.monotonic() + 30
    while observe(access(node)).labels != {"zone": "hacked"}:  # the hand edit took effect: the wrong label
        assert time.monotonic() < deadline, "the engine never showed the hand-edited label"
        time.sleep(0.1)
    code, report, output = swarm_lab.reconcile("m2", desired)
    assert code == 0, output
    assert report is not None
    config = next(c for c in report.components if c.name == "config")
    assert (config.outcome, config.action) == ("converged", "restore-config-reload")
    assert "changed: debug, labels" in config.drift
    assert node.config_path.read_text() == recorded
    assert observe(access(node)).labels == {"zone": "z-m2"}


def test_a_worker_that_left_the_swarm_rejoins_as_a_worker(swarm_lab: SwarmLab) -> None:
    node, m1 = swarm_lab.node("w1"), swarm_lab.node("m1")
    desired = swarm_lab.record("w1")
    docker(node, "swarm", "leave")
    code, report, output = swarm_lab.reconcile("w1", desired)
    assert code == 0, output
    assert outcomes(report)["membership"] == "converged"
    seen = observe(access(node))
    assert (seen.swarm_state, seen.manager) == ("active", False)
    roles = docker(m1, "node", "ls", "--filter", "role=worker", "--format", "{{.Hostname}} {{.Status}}")
    assert "w1 Ready" in roles.splitlines()


def test_a_demoted_manager_is_promoted_back(swarm_lab: SwarmLab) -> None:
    node, m1 = swarm_lab.node("m2"), swarm_lab.node("m1")
    desired = swarm_lab.record("m2")
    docker(m1, "node", "demote", "m2")
    deadline = time.monotonic() + 30
    while observe(access(node)).manager and time.monotonic() < deadline:
        time.sleep(0.2)
    code, report, output = swarm_lab.reconcile("m2", desired)
    assert code == 0, output
    assert report is not None
    role = next(c for c in report.components if c.name == "role")
    assert (role.outcome, role.drift) == ("converged", "a worker, should be a manager")
    assert "removed stale node entries" in role.action
    assert observe(access(node)).manager
    listed = docker(m1, "node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}} {{.Status}}").splitlines()
    assert [line for line in listed if line.startswith("m2 ")] == ["m2 Reachable Ready"]  # no stale entry


def test_a_removed_required_container_is_recreated(swarm_lab: SwarmLab) -> None:
    node = swarm_lab.node("m2")
    desired = swarm_lab.record("m2")
    docker(node, "rm", "--force", "node-proxy")
    code, report, output = swarm_lab.reconcile("m2", desired)
    assert code == 0, output
    assert outcomes(report)["containers"] == "converged"
    shown = docker(node, "inspect", "--format",
                   '{{.State.Running}} {{.Config.Image}} {{index .Config.Labels "lcm.mirantis.com/version"}}',
                   "node-proxy")
    assert shown == f"true {IMAGE} 1.0.0"


def test_a_node_that_cannot_converge_says_why_and_exits_non_zero(swarm_lab: SwarmLab) -> None:
    node = swarm_lab.node("w1")
    unreachable = f"{node.address.rsplit('.', 1)[0]}.250:2377"  # in the lab's subnet, nobody there
    desired = swarm_lab.record("w1", manager_addresses=unreachable)
    docker(node, "swarm", "leave")
    try:
        code, report, output = swarm_lab.reconcile("w1", desired)
        assert code == 1, output
        assert report is not None
        assert not report.converged
        assert outcomes(report) == {"engine": "ok", "config": "ok", "membership": "failed", "role": "not-run",
                                    "labels": "not-run", "containers": "not-run"}
        assert report.first_error.startswith("membership: cannot join the swarm: ")
        assert swarm_lab.tokens["worker"] not in output + json.dumps(report.to_json())
    finally:  # back into the real swarm, by the reconciler with the right record
        code, _, output = swarm_lab.reconcile("w1", swarm_lab.record("w1"))
        assert code == 0, output
    assert observe(access(node)).swarm_state == "active"


def test_without_a_token_the_join_fails_with_the_agents_reason(swarm_lab: SwarmLab) -> None:
    node = swarm_lab.node("w1")
    desired = swarm_lab.record("w1")
    docker(node, "swarm", "leave")
    try:
        code, report, _ = swarm_lab.reconcile("w1", desired, token="")
        assert code == 1
        assert report is not None
        assert report.first_error == "membership: cannot join: the agent gave no join token"
    finally:
        code, _, output = swarm_lab.reconcile("w1", desired)
        assert code == 0, output
