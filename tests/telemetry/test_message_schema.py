"""The version-1 message schema: what the builders make is valid, and a reader names what is wrong with
anything else."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from agent.api import telemetry as t

HOST = t.HostLoad(load=(0.5, 0.25, 0.1), memory_total=8 << 30, memory_available=6 << 30, disk_path="/var",
                  disk_total=100 << 30, disk_free=40 << 30, uptime=3600.4)
ITEM = t.CurrentItem(name="install-engine", phase="prepare", attempt=2, started=1700000000.123,
                     task="install docker", counts={"ok": 3, "changed": 1})


def _heartbeat(item: t.CurrentItem | None = ITEM) -> dict[str, Any]:
    return t.heartbeat_message(host=HOST, machine_state="Prepare", step="running", item=item, interval=10.0,
                               agent_uptime=42.0, dropped=3, buffered=0, ts=1700000001.5, seq=7)


VALID = {
    "status online": t.status_message(state="online", reason="connected", agent_version="0.1.0",
                                      heartbeat_interval=10.0, ts=1.0, seq=0),
    "status will": t.status_message(state="offline", reason="lost", agent_version="0.1.0",
                                    heartbeat_interval=10.0, ts=1.0, seq=0),
    "heartbeat running": _heartbeat(),
    "heartbeat idle": _heartbeat(None),
    "item started": t.event_message(type="item", event="started", item="a", ts=2, seq=1,
                                    data={"runner": "bash", "attempt": 1}),
    "task progress": t.event_message(type="item", event="task_ok", item="a", ts=2, seq=2,
                                     data={"task": "t", "host": "localhost", "counts": {"ok": 1}}),
    "hardware": t.event_message(type="hardware", event="added", ts=3, seq=3,
                                data={"subsystem": "net", "device": "eth1", "devpath": "/devices/x"}),
    "reconciler": t.event_message(type="reconciler", event="finished", ts=3, seq=4, data={"exitCode": 0}),
    "command answer": t.event_message(type="command", event="done", ts=3, seq=5,
                                      data={"command": "cancel", "id": "x", "detail": "cancelled a"}),
    "item finished": t.event_message(type="item", event="finished", item="a", ts=2, seq=3,
                                     data={"result": "success", "exit_code": 0, "version": "1",
                                           "seconds": 2.5}),
    "diagnostics": t.diagnostics_message(trigger="stuck", item="a", ts=5, seq=6,
                                         bundle={"item": "a", "attempt": 5, "truncated": False}),
    "wake": t.command_message(command="wake", ts=4, seq=0),
    "cancel one item": t.command_message(command="cancel", item="a", id="req-1", ts=4, seq=1),
}


@pytest.mark.parametrize("message", VALID.values(), ids=VALID.keys())
def test_built_messages_are_valid_and_survive_the_wire(message: dict[str, Any]) -> None:
    assert t.decode(t.encode(message)) == message
    assert message["v"] == 1


def test_heartbeat_carries_what_an_operator_reads() -> None:
    beat = _heartbeat()
    assert beat["host"]["load"] == [0.5, 0.25, 0.1]
    assert beat["host"]["memory"] == {"total": 8 << 30, "available": 6 << 30}
    assert beat["agent"]["item"] == {"name": "install-engine", "phase": "prepare", "attempt": 2,
                                     "startedAt": 1700000000.123, "task": "install docker",
                                     "counts": {"ok": 3, "changed": 1}}
    assert beat["telemetry"] == {"dropped": 3, "buffered": 0}


def _set(path: str, value: Any) -> Any:
    def change(message: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = message
        for key in parents:
            target = target[key]
        if value is KeyError:
            del target[last]
        else:
            target[last] = value
    return change


INVALID = [
    ("status online", _set("v", 2), "unsupported version 2"),
    ("status online", _set("kind", "gossip"), "unknown kind 'gossip'"),
    ("status online", _set("state", "sleeping"), "state: 'sleeping' is not one of offline, online"),
    ("status online", _set("ts", "yesterday"), "ts: invalid"),
    ("status online", _set("seq", -1), "seq: invalid"),
    ("status online", _set("heartbeatInterval", 0), "heartbeatInterval: invalid"),
    ("heartbeat running", _set("host.load", [1, 2]), "host.load: invalid"),
    ("heartbeat running", _set("host.memory.total", "8G"), "host.memory.total: invalid"),
    ("heartbeat running", _set("agent.step", "dancing"), "agent.step: 'dancing' is not one of"),
    ("heartbeat running", _set("agent.item.counts", {"ok": "many"}), "agent.item.counts: invalid"),
    ("heartbeat running", _set("telemetry.dropped", KeyError), "telemetry.dropped: invalid or missing"),
    ("item started", _set("item", ""), "item: invalid"),
    ("item started", _set("event", "exploded"), "event: 'exploded' is not one of"),
    ("task progress", _set("data.counts", {"ok": True}), "data.counts: invalid"),
    ("hardware", _set("data.subsystem", "usb"), "data.subsystem: 'usb' is not one of block, net"),
    ("hardware", _set("data.device", KeyError), "data.device: invalid or missing"),
    ("command answer", _set("data.command", "reboot"), "data.command: 'reboot' is not one of"),
    ("item finished", _set("data.seconds", -1), "data.seconds: invalid"),
    ("diagnostics", _set("bundle", "everything"), "bundle: invalid"),
    ("diagnostics", _set("bundle.truncated", KeyError), "bundle.truncated: invalid or missing"),
    ("diagnostics", _set("trigger", ""), "trigger: invalid"),
    ("wake", _set("command", "reboot"), "command: 'reboot' is not one of cancel, wake"),
    ("cancel one item", _set("item", 5), "item: invalid"),
]


@pytest.mark.parametrize(("name", "change", "error"), INVALID,
                         ids=[f"{name}: {error}" for name, _, error in INVALID])
def test_a_reader_names_what_is_wrong(name: str, change: Any, error: str) -> None:
    message = copy.deepcopy(VALID[name])
    change(message)
    with pytest.raises(t.TelemetryError, match=error.replace("(", r"\(").replace(")", r"\)")):
        t.decode(json.dumps(message).encode())


@pytest.mark.parametrize("payload", [b"", b"not json", b"[1, 2]", b'"online"', b"\xff\xfe"])
def test_payloads_that_are_not_messages_are_refused(payload: bytes) -> None:
    with pytest.raises(t.TelemetryError):
        t.decode(payload)


@pytest.mark.parametrize(("topic", "expected"), [
    ("lcm/ns/demo/node-1/heartbeat", (t.Subtree("ns", "demo", "node-1"), "heartbeat")),
    ("lcm/ns/_/node-1/status", (t.Subtree("ns", "_", "node-1"), "status")),
    ("lcm/ns/demo/node-1/cmd", (t.Subtree("ns", "demo", "node-1"), "cmd")),
    ("lcm/ns/demo/node-1/secrets", None),
    ("lcm/ns/demo/node-1/events/extra", None),
    ("lcm/ns//node-1/events", None),
    ("other/ns/demo/node-1/events", None),
    ("$SYS/broker/uptime", None),
])
def test_topics_are_parsed_back_to_the_machine(topic: str, expected: Any) -> None:
    assert t.parse_topic(topic) == expected


def test_a_machine_without_a_cluster_has_a_subtree_no_cluster_can_claim() -> None:
    assert t.Subtree("ns", "", "m").topic("status") == "lcm/ns/_/m/status"
    assert t.topic_filter("heartbeat", namespace="ns") == "lcm/ns/+/+/heartbeat"
