"""Drift as the agent, the reconciler and ``--dry-run`` see it: desired + observed → ordered drifts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent.api.desired import (
    DaemonConfig,
    DesiredState,
    EngineLabels,
    Membership,
    Observed,
    ObservedContainer,
    RequiredContainer,
)
from agent.decisions.drift import ORDER, config_action, drift, labels_in_config, unchecked

CONFIG = json.dumps({"labels": ["zone=a"], "log-level": "info"}, indent=2) + "\n"
PROXY = RequiredContainer(name="node-proxy", image="busybox:latest", command=("httpd", "-f"), version="1.0.0")
WORKER = Membership(role="worker", manager_addresses=("10.0.0.1:2377", "10.0.0.2:2377"),
                    advertise_address="10.0.0.3", join_token_secret="c-swarm-worker-token", version="1")
MANAGER = WORKER.model_copy(update={"role": "manager", "cluster_id": "swarm-a"})


def desired(**changes: Any) -> DesiredState:
    base = DesiredState(items_digest="d", release="1.0.0", recorded_at="2024-01-01T00:00:00Z",
                        config=DaemonConfig(content=CONFIG), membership=WORKER,
                        labels=EngineLabels(values={"zone": "a"}, version="1"), containers=(PROXY,))
    return base.model_copy(update=changes)


def healthy(**changes: Any) -> Observed:
    base = Observed(config_content=CONFIG, swarm_state="active", node_id="n3", node_addr="10.0.0.3",
                    manager=False, remote_managers=("10.0.0.1:2377",), labels={"zone": "a", "other": "x"},
                    containers=(ObservedContainer(name="node-proxy", image="busybox:latest", version="1.0.0",
                                                  state="running"),))
    return base.model_copy(update=changes)


def stopped_proxy(state: str = "exited") -> tuple[ObservedContainer, ...]:
    return (ObservedContainer(name="node-proxy", image="busybox:latest", version="1.0.0", state=state),)


@pytest.mark.parametrize(("want", "seen", "expected"), [
    pytest.param(desired(), healthy(), [], id="healthy"),
    pytest.param(desired(), healthy(engine_error="connection refused", config_content=CONFIG),
                 [("engine", "start-engine")], id="engine down: the rest is not checked"),
    pytest.param(desired(), healthy(engine_error="refused", config_content="{"),
                 [("engine", "restore-config-and-start"), ("config", "restore-config-restart")],
                 id="engine down with a broken daemon.json: the file first"),
    pytest.param(desired(), healthy(config_content=json.dumps({"labels": ["zone=b"], "log-level": "info"})),
                 [("config", "restore-config-reload")], id="reloadable key changed"),
    pytest.param(desired(), healthy(config_content=json.dumps({"labels": ["zone=a"], "log-level": "debug"})),
                 [("config", "restore-config-restart")], id="restart-only key changed"),
    pytest.param(desired(), healthy(config_content=None), [("config", "restore-config-restart")],
                 id="daemon.json deleted"),
    pytest.param(desired(config=None), healthy(config_content=None), [], id="no daemon.json recorded"),
    pytest.param(desired(), healthy(swarm_state="inactive", node_id="", remote_managers=()),
                 [("membership", "join")], id="left the swarm: role not checked"),
    pytest.param(desired(), healthy(swarm_state="pending"), [("membership", "leave-and-join")],
                 id="stuck joining"),
    pytest.param(desired(), healthy(remote_managers=("192.168.9.9:2377",)),
                 [("membership", "leave-and-join")], id="worker in another swarm"),
    pytest.param(desired(membership=MANAGER), healthy(manager=True, cluster_id="swarm-b"),
                 [("membership", "leave-and-join")], id="manager in another swarm"),
    pytest.param(desired(membership=MANAGER), healthy(manager=False), [("role", "rejoin-as-manager")],
                 id="demoted manager"),
    pytest.param(desired(), healthy(manager=True, cluster_id="swarm-a"), [("role", "demote")],
                 id="promoted worker"),
    pytest.param(desired(membership=None), healthy(swarm_state="inactive", remote_managers=()), [],
                 id="no membership desired"),
    pytest.param(desired(), healthy(labels={"zone": "b"}), [("labels", "reload-labels")], id="label changed"),
    pytest.param(desired(), healthy(labels={}), [("labels", "reload-labels")], id="label missing"),
    pytest.param(desired(), healthy(containers=()), [("containers", "recreate")], id="container removed"),
    pytest.param(desired(), healthy(containers=stopped_proxy()), [("containers", "recreate")],
                 id="container stopped"),
    pytest.param(desired(containers=(PROXY.model_copy(update={"version": "2.0.0"}),)), healthy(),
                 [("containers", "recreate")], id="container of an older version"),
    pytest.param(desired(), healthy(swarm_state="inactive", remote_managers=(), labels={}, containers=()),
                 [("membership", "join"), ("labels", "reload-labels"), ("containers", "recreate")],
                 id="several, in order"),
])
def test_drift_table(want: DesiredState, seen: Observed, expected: list[tuple[str, str]]) -> None:
    found = drift(want, seen)
    assert [(d.component, d.action) for d in found] == expected
    assert [ORDER.index(d.component) for d in found] == sorted(ORDER.index(d.component) for d in found)
    assert all(d.reason for d in found)


@pytest.mark.parametrize(("seen", "reason"), [
    (healthy(engine_error="Cannot connect"), "not running (Cannot connect)"),
    (healthy(config_content=json.dumps({"labels": ["zone=a"], "log-level": "debug"})),
     "daemon.json differs from the recorded one (changed: log-level)"),
    (healthy(config_content="{"), "daemon.json differs from the recorded one (not a JSON object)"),
    (healthy(config_content=None), "daemon.json is missing"),
    (healthy(swarm_state="inactive", remote_managers=()), "not in a swarm"),
    (healthy(labels={"zone": "b"}), "zone=b, want zone=a"),
    (healthy(labels={}), "zone missing (want zone=a)"),
    (healthy(containers=()), "node-proxy: missing"),
    (healthy(containers=stopped_proxy()), "node-proxy: exited, not running"),
])
def test_reasons_say_what_an_operator_needs(seen: Observed, reason: str) -> None:
    assert drift(desired(), seen)[0].reason == reason


def test_a_container_of_another_image_is_recreated_by_name() -> None:
    seen = healthy(containers=(ObservedContainer(name="node-proxy", image="nginx", version="1.0.0",
                                                 state="running"),))
    (found,) = drift(desired(), seen)
    assert found.containers == ("node-proxy",)
    assert found.reason == "node-proxy: image nginx, want busybox:latest"


def test_skipped_components_are_named_for_the_dry_run() -> None:
    found = drift(desired(), healthy(engine_error="refused"))
    assert unchecked(found) == ("membership", "role", "labels", "containers")
    assert unchecked(drift(desired(), healthy(swarm_state="inactive"))) == ("role",)


@pytest.mark.parametrize(("current", "recorded", "action"), [
    ('{"debug": true}', "{}", "restore-config-reload"),
    ('{"labels": ["a=b"], "registry-mirrors": ["x"]}', '{"labels": []}', "restore-config-reload"),
    ('{"data-root": "/x"}', "{}", "restore-config-restart"),
    (None, '{"labels": ["a=b"]}', "restore-config-reload"),
    ("not json", "{}", "restore-config-restart"),
    ("[1]", "{}", "restore-config-restart"),
])
def test_config_action(current: str | None, recorded: str, action: str) -> None:
    assert config_action(current, recorded) == action


@pytest.mark.parametrize(("content", "labels", "expected"), [
    (None, {"zone": "a"}, ["zone=a"]),
    ('{"labels": ["zone=b", "keep=1"]}', {"zone": "a"}, ["keep=1", "zone=a"]),
    ('{"labels": ["zone=a"], "debug": true}', {"zone": "a", "rack": "r1"}, ["rack=r1", "zone=a"]),
])
def test_labels_in_config_keeps_other_settings(content: str | None, labels: dict[str, str],
                                               expected: list[str]) -> None:
    merged = json.loads(labels_in_config(content, labels))
    assert merged["labels"] == expected
    if content and "debug" in content:
        assert merged["debug"] is True


def test_labels_in_a_broken_config_are_refused() -> None:
    with pytest.raises(ValueError, match="not a JSON object"):
        labels_in_config("{", {"zone": "a"})
