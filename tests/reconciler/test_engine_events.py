"""Which engine events make the agent check at once (the rest wait for the timer)."""

from __future__ import annotations

from typing import Any

import pytest

from agent.adapters.engine_access import EngineAccess
from agent.adapters.engine_checks import interesting

REQUIRED = {"lcm.mirantis.com/required": "node-proxy", "name": "node-proxy"}


def container(action: str, attributes: dict[str, str]) -> dict[str, Any]:
    return {"Type": "container", "Action": action, "Actor": {"ID": "c1", "Attributes": attributes}}


@pytest.mark.parametrize(("event", "expected"), [
    (container("die", REQUIRED), True),
    (container("destroy", REQUIRED), True),
    (container("kill", REQUIRED), True),
    (container("oom", REQUIRED), True),
    (container("exec_start: sh", REQUIRED), False),
    (container("start", REQUIRED), False),
    (container("die", {"name": "a-task"}), False),  # not required: a swarm task dying is the swarm's job
    ({"Type": "daemon", "Action": "reload"}, True),
    ({"Type": "node", "Action": "update"}, True),
    ({"Type": "network", "Action": "connect"}, False),
    ({}, False),
])
def test_interesting_events(event: dict[str, Any], expected: bool) -> None:
    assert interesting(event) is expected


def test_engine_access_follows_the_playbook_vars() -> None:
    lab = EngineAccess.from_vars("unix:///n1/docker.sock", {
        "lcm_docker_config": "/n1/daemon.json", "lcm_service_manager": "command",
        "lcm_docker_service": "/n1/dockerd-ctl", "lcm_etc_dir": "/n1/etc"})
    assert lab == EngineAccess(host="unix:///n1/docker.sock", config_path="/n1/daemon.json",
                               service_manager="command", docker_service="/n1/dockerd-ctl")
    assert EngineAccess.from_vars("unix:///var/run/docker.sock", {}) == EngineAccess()
