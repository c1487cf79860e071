"""The desired state the agent records: derived from the done items' params, kept as JSON across restarts,
and a report the agent can read back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent.api.desired import DaemonConfig, DesiredState, DesiredStateError, ReconcileReport
from agent.api.models import LCMMachine
from agent.decisions.desired_state import derive_desired, items_digest

NOW = "2024-05-01T12:00:00Z"
JOIN = {"name": "swarm-join", "params": {"playbook": "deploy/swarm-join.yml"}}
LABELS = {"name": "node-labels", "params": {"playbook": "deploy/node-labels.yml"}}
PROXY = {"name": "node-proxy", "version": "1.2.0",
         "params": {"playbook": "deploy/node-proxy.yml", "container": "node-proxy", "image": "busybox:latest",
                    "command": '["httpd", "-f", "-p", "8080"]'}}
INIT = {"name": "swarm-init", "params": {"playbook": "deploy/swarm-init.yml"}}


def machine(*items: dict[str, Any], overwrites: dict[str, dict[str, str]] | None = None) -> LCMMachine:
    spec_items = [{"runner": "ansible", "version": "1.0.0", "phase": "deploy", **item} for item in items]
    statuses = {item["name"]: {"hash": f"h-{item['name']}", "exitCode": 0} for item in items}
    return LCMMachine.from_raw({
        "metadata": {"name": "m1", "namespace": "ns"},
        "spec": {"type": "worker", "release": "1.0.0", "stateItems": spec_items,
                 "stateItemsOverwrites": overwrites or {}},
        "status": {"stateItemStatuses": statuses},
    })


WORKER_JOIN = {"swarm-join": {"role": "worker", "managerAddresses": "10.0.0.1:2377, 10.0.0.2:2377",
                              "joinTokenSecret": "c-swarm-worker-token", "advertiseAddress": "10.0.0.3"},
               "node-labels": {"labels": '{"zone": "a", "rack": "r1"}'}}


def test_a_worker_gets_membership_labels_and_containers_from_its_items() -> None:
    m = machine(JOIN, LABELS, PROXY, overwrites=WORKER_JOIN)
    want = derive_desired(m, DaemonConfig(content="{}\n"), cluster_id="ignored-on-workers", recorded_at=NOW)
    assert want is not None
    assert want.membership is not None
    assert want.membership.role == "worker"
    assert want.membership.manager_addresses == ("10.0.0.1:2377", "10.0.0.2:2377")
    assert want.membership.join_token_secret == "c-swarm-worker-token"
    assert want.membership.cluster_id == ""  # a worker cannot see the swarm's ID
    assert want.labels is not None
    assert dict(want.labels.values) == {"zone": "a", "rack": "r1"}
    (proxy,) = want.containers
    assert (proxy.name, proxy.image, proxy.command, proxy.version) == (
        "node-proxy", "busybox:latest", ("httpd", "-f", "-p", "8080"), "1.2.0")
    assert proxy.labels == {"lcm.mirantis.com/required": "node-proxy", "lcm.mirantis.com/version": "1.2.0"}
    assert want.release == "1.0.0"
    assert want.items_digest == items_digest(m)


def test_the_first_manager_rejoins_through_itself_with_the_manager_token() -> None:
    init = {"swarm-init": {"advertiseAddress": "10.0.0.1", "managerTokenSecret": "c-swarm-manager-token",
                           "workerTokenSecret": "c-swarm-worker-token"}}
    want = derive_desired(machine(INIT, overwrites=init), None, cluster_id="swarm-a", recorded_at=NOW)
    assert want is not None
    assert want.membership is not None
    assert want.membership.role == "manager"
    assert want.membership.manager_addresses == ("10.0.0.1:2377",)
    assert want.membership.join_token_secret == "c-swarm-manager-token"
    assert want.membership.cluster_id == "swarm-a"


def test_a_machine_without_engine_items_has_no_desired_state() -> None:
    bash = {"name": "hello", "runner": "bash", "params": {"script": "true"}}
    assert derive_desired(machine(bash), DaemonConfig(content="{}"), cluster_id="", recorded_at=NOW) is None


@pytest.mark.parametrize(("overwrites", "message"), [
    ({"node-labels": {"labels": "zone=a"}}, "labels are not JSON"),
    ({"node-labels": {"labels": '{"zone": 1}'}}, "JSON object of strings"),
    ({"node-proxy": {"command": "httpd -f"}}, "command is not a JSON list"),
    ({"node-proxy": {"image": ""}}, "node-proxy"),
    ({"swarm-join": {"joinTokenSecret": "s", "role": "boss"}}, "neither manager nor worker"),
])
def test_params_the_contract_does_not_allow_are_refused(overwrites: dict[str, dict[str, str]],
                                                       message: str) -> None:
    with pytest.raises(DesiredStateError, match=message):
        derive_desired(machine(JOIN, LABELS, PROXY, overwrites=overwrites), None, cluster_id="",
                       recorded_at=NOW)


def test_items_digest_moves_with_any_item_hash() -> None:
    before = machine(JOIN, PROXY)
    raw = before.to_raw()
    raw["status"]["stateItemStatuses"]["node-proxy"]["hash"] = "h-new"
    assert items_digest(LCMMachine.from_raw(raw)) != items_digest(before)
    assert items_digest(machine(PROXY, JOIN)) == items_digest(before)  # order does not matter


def test_the_record_survives_a_json_round_trip() -> None:
    want = derive_desired(machine(JOIN, LABELS, PROXY, overwrites=WORKER_JOIN),
                          DaemonConfig(content='{"a": 1}'), cluster_id="", recorded_at=NOW)
    assert want is not None
    text = json.dumps(want.to_json())
    again = DesiredState.from_json(json.loads(text))
    assert again == want
    assert again.config is not None
    assert again.config.digest == want.config.digest
    assert "managerAddresses" in text
    assert "itemsDigest" in text


@pytest.mark.parametrize("raw", [
    {},
    {"itemsDigest": "d", "release": "1", "recordedAt": NOW, "config": None, "surprise": 1},
    {"itemsDigest": "d", "release": "1", "recordedAt": NOW, "config": {"content": 3}},
    [],
])
def test_a_record_of_another_shape_is_refused(raw: Any) -> None:
    with pytest.raises(DesiredStateError):
        DesiredState.from_json(raw)


def test_a_report_names_its_first_error() -> None:
    report = ReconcileReport.from_json({
        "started": NOW, "finished": NOW, "converged": False,
        "components": [{"name": "engine", "outcome": "ok"},
                       {"name": "membership", "drift": "not in a swarm", "action": "join",
                        "outcome": "failed", "error": "cannot join the swarm: timeout"},
                       {"name": "role", "outcome": "not-run"}]})
    assert report.first_error == "membership: cannot join the swarm: timeout"
