"""The MQTT plane's contract: topics, message builders and validation, version 1 (``docs/telemetry.md``).

Pure values, no broker: the agent builds messages here, the regional side and ``lcmctl watch`` parse them
here, so both ends share one definition. Every payload is one UTF-8 JSON object with an envelope
``{"v": 1, "kind": ..., "ts": <unix seconds>, "seq": <per-agent counter>}``; ``seq`` lets a consumer see
gaps (messages dropped while the broker was away) and duplicates (QoS 1 resends after a reconnect).
Unknown fields are ignored by readers, so adding a field stays version 1; removing or re-typing one is a
new ``v``, which readers refuse rather than misread.

Topics: one subtree per machine, ``lcm/<namespace>/<cluster>/<machine>/<channel>``; the broker's ACL keeps
each node inside its own (``deploy/mqtt/acl``). A machine not yet in a cluster uses ``_``, which no
Kubernetes name can be.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

VERSION = 1
ROOT = "lcm"
UNASSIGNED_CLUSTER = "_"

Channel = Literal["status", "heartbeat", "events", "cmd", "diagnostics"]
CHANNELS: tuple[Channel, ...] = ("status", "heartbeat", "events", "cmd", "diagnostics")

QOS: Mapping[Channel, int] = {"status": 1, "heartbeat": 0, "events": 1, "cmd": 1, "diagnostics": 1}
"""Heartbeats are QoS 0: the next one supersedes a lost one within a period, and liveness is judged by
their absence anyway. Status, events and commands are QoS 1: each says something a later one does not."""
RETAINED: Mapping[Channel, bool] = {"status": True, "heartbeat": False, "events": False, "cmd": False,
                                    "diagnostics": True}
"""Status is retained so that a subscriber that connects later learns at once who is online or offline;
the newest diagnostics bundle is retained so that ``lcmctl diagnostics`` finds it whenever it asks (the
broker keeps one per machine: the bounded store)."""

ITEM_EVENTS = frozenset({"started", "finished"})
TASK_EVENTS = frozenset({"task_started", "task_ok", "task_changed", "task_failed", "task_ignored",
                         "task_skipped", "task_unreachable"})
EVENTS: Mapping[str, frozenset[str]] = {
    "item": ITEM_EVENTS | TASK_EVENTS,
    "reconciler": frozenset({"drift", "started", "finished"}),
    "hardware": frozenset({"added", "removed", "changed", "renamed"}),
    "command": frozenset({"done", "refused"}),
}
"""Event types and the events each carries; ``item`` events are the runners' ``ItemEvent`` kinds."""
COMMANDS = frozenset({"wake", "cancel"})
STATES = frozenset({"online", "offline"})
STEPS = frozenset({"starting", "idle", "running", "waiting", "reporting"})


class TelemetryError(ValueError):
    """A payload that is not a valid version-1 message; the text says which field is wrong."""


@dataclass(frozen=True)
class Subtree:
    """One machine's topics."""

    namespace: str
    cluster: str
    machine: str

    def topic(self, channel: Channel) -> str:
        return f"{ROOT}/{self.namespace}/{self.cluster or UNASSIGNED_CLUSTER}/{self.machine}/{channel}"


def topic_filter(channel: Channel, namespace: str = "+", cluster: str = "+", machine: str = "+") -> str:
    """A subscription filter: every machine's ``channel`` by default, narrowed by the names given."""
    return f"{ROOT}/{namespace}/{cluster}/{machine}/{channel}"


def parse_topic(topic: str) -> tuple[Subtree, Channel] | None:
    """The machine and channel of a topic of this plane; None for any other topic."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != ROOT or not all(parts[1:4]):
        return None
    channel = parts[4]
    for known in CHANNELS:
        if channel == known:
            return Subtree(parts[1], parts[2], parts[3]), known
    return None


def received(topic: str, payload: bytes) -> tuple[Subtree, Channel, dict[str, Any]] | None:
    """A message of this plane as a subscriber takes it: the machine, the channel and the validated
    message; None for another topic or an empty payload (a cleared retained message: the machine's topics
    moved). Raises TelemetryError for an invalid one."""
    where = parse_topic(topic)
    if where is None or not payload:
        return None
    return (*where, decode(payload))


def _envelope(kind: str, ts: float, seq: int) -> dict[str, Any]:
    return {"v": VERSION, "kind": kind, "ts": round(ts, 3), "seq": seq}


def status_message(*, state: str, reason: str, agent_version: str, heartbeat_interval: float, ts: float,
                   seq: int, connection: float = 0.0) -> dict[str, Any]:
    """The retained presence of a machine. ``reason``: ``connected``; ``stopped`` (a clean shutdown);
    ``lost`` (the last will: the broker saw the connection die). ``connection`` (unix seconds, when the
    agent opened the connection the message belongs to) is the same in a connection's will and its
    ``online``: a will of an older connection than the latest ``online`` is stale (a broker that was hung
    delivers it late) and says nothing about the node."""
    message = {**_envelope("status", ts, seq), "state": state, "reason": reason,
               "agentVersion": agent_version, "heartbeatInterval": heartbeat_interval}
    if connection:
        message["connection"] = round(connection, 3)
    return message


def probe_topic(client_id: str) -> str:
    """Where a regional subscriber sends itself probes and reads them back: a round trip proves its own
    connection works. Four levels, so never a machine's topic; only the regional user may write there
    (``deploy/mqtt/acl``)."""
    return f"{ROOT}/_regional/{re.sub(r'[/+#]', '_', client_id) or '_'}/probe"


@dataclass(frozen=True)
class CurrentItem:
    """The item running now, with the newest Ansible task and totals (empty for other runners)."""

    name: str
    phase: str
    attempt: int
    started: float
    task: str = ""
    counts: Mapping[str, int] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "phase": self.phase, "attempt": self.attempt,
                "startedAt": round(self.started, 3), "task": self.task, "counts": dict(self.counts or {})}


@dataclass(frozen=True)
class HostLoad:
    """What the heartbeat says about the host; bytes and seconds."""

    load: tuple[float, float, float]
    memory_total: int
    memory_available: int
    disk_path: str
    disk_total: int
    disk_free: int
    uptime: float


def heartbeat_message(*, host: HostLoad, machine_state: str, step: str, item: CurrentItem | None,
                      interval: float, agent_uptime: float, dropped: int, buffered: int, ts: float,
                      seq: int, connection: float = 0.0) -> dict[str, Any]:
    """The periodic sign of life. ``dropped`` counts every message this agent dropped since it started
    (a counter, so a lost heartbeat loses no information); ``buffered`` is what waits for the broker.
    ``connection`` is the status messages' (the connection open when the heartbeat was built)."""
    message = {
        **_envelope("heartbeat", ts, seq), "interval": interval,
        "host": {"load": [round(v, 2) for v in host.load], "uptime": round(host.uptime),
                 "memory": {"total": host.memory_total, "available": host.memory_available},
                 "disk": {"path": host.disk_path, "total": host.disk_total, "free": host.disk_free}},
        "agent": {"state": machine_state, "step": step, "item": item.to_json() if item else None,
                  "uptime": round(agent_uptime)},
        "telemetry": {"dropped": dropped, "buffered": buffered},
    }
    if connection:
        message["connection"] = round(connection, 3)
    return message


def event_message(*, type: str, event: str, data: Mapping[str, Any], ts: float, seq: int,
                  item: str = "") -> dict[str, Any]:
    """One event; ``item`` names the state item for ``item`` events (empty otherwise)."""
    body = {**_envelope("event", ts, seq), "type": type, "event": event, "data": dict(data)}
    if item:
        body["item"] = item
    return body


def command_message(*, command: str, ts: float, seq: int, item: str = "", id: str = "") -> dict[str, Any]:
    """A request to a node: ``wake`` (re-read the LCMMachine now) or ``cancel`` (abort the running item's
    attempt; with ``item``, only if that item is the one running). ``id`` comes back in the node's
    ``command`` event."""
    body = {**_envelope("cmd", ts, seq), "command": command}
    if item:
        body["item"] = item
    if id:
        body["id"] = id
    return body


def diagnostics_message(*, trigger: str, item: str, bundle: Mapping[str, Any], ts: float,
                        seq: int) -> dict[str, Any]:
    """The evidence an agent gathered when ``item`` failed for good or was flagged stuck (``trigger``:
    ``stuck``, the machine's ``status.lcmOperationStuck``). ``bundle`` is already redacted and capped
    (``agent.decisions.evidence``)."""
    return {**_envelope("diagnostics", ts, seq), "trigger": trigger, "item": item, "bundle": dict(bundle)}


def encode(message: Mapping[str, Any]) -> bytes:
    """Compact JSON; ``validate`` first where the message comes from code that could be wrong."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode()


def decode(payload: bytes) -> dict[str, Any]:
    """A validated message from a payload; raises TelemetryError."""
    try:
        message = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TelemetryError(f"not JSON: {exc}") from None
    validate(message)
    assert isinstance(message, dict)
    return message


def validate(message: Any) -> None:
    """Raise TelemetryError unless ``message`` is a valid version-1 message of its kind."""
    if not isinstance(message, dict):
        raise TelemetryError("a message is a JSON object")
    if message.get("v") != VERSION:
        raise TelemetryError(f"unsupported version {message.get('v')!r} (this reader knows v{VERSION})")
    kind = message.get("kind")
    check = _CHECKS.get(kind) if isinstance(kind, str) else None
    if check is None:
        raise TelemetryError(f"unknown kind {kind!r}")
    _field(message, "ts", _number)
    _field(message, "seq", _count)
    check(message)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _mapping(value: Any) -> bool:
    return isinstance(value, dict)


def _field(obj: Mapping[str, Any], name: str, ok: Any, where: str = "") -> Any:
    value = obj.get(name)
    if not ok(value):
        raise TelemetryError(f"{where}{name}: invalid or missing ({value!r})")
    return value


def _one_of(obj: Mapping[str, Any], name: str, allowed: frozenset[str], where: str = "") -> str:
    value = _field(obj, name, _text, where)
    if value not in allowed:
        raise TelemetryError(f"{where}{name}: {value!r} is not one of {', '.join(sorted(allowed))}")
    return str(value)


def _check_status(m: Mapping[str, Any]) -> None:
    _one_of(m, "state", STATES)
    _field(m, "reason", _text)
    _field(m, "agentVersion", _text)
    _field(m, "heartbeatInterval", lambda v: _number(v) and v > 0)
    if "connection" in m:
        _field(m, "connection", _number)


def _check_heartbeat(m: Mapping[str, Any]) -> None:
    _field(m, "interval", lambda v: _number(v) and v > 0)
    if "connection" in m:
        _field(m, "connection", _number)
    host = _field(m, "host", _mapping)
    _field(host, "load", lambda v: isinstance(v, list) and len(v) == 3 and all(map(_number, v)), "host.")
    _field(host, "uptime", _number, "host.")
    for part, keys in (("memory", ("total", "available")), ("disk", ("total", "free"))):
        section = _field(host, part, _mapping, "host.")
        for key in keys:
            _field(section, key, _count, f"host.{part}.")
    agent = _field(m, "agent", _mapping)
    _field(agent, "state", _text, "agent.")
    _one_of(agent, "step", STEPS, "agent.")
    item = agent.get("item")
    if item is not None:
        _field(agent, "item", _mapping, "agent.")
        _field(item, "name", _text, "agent.item.")
        _field(item, "attempt", _count, "agent.item.")
        _field(item, "counts", lambda v: _mapping(v) and all(map(_count, v.values())), "agent.item.")
    counters = _field(m, "telemetry", _mapping)
    for key in ("dropped", "buffered"):
        _field(counters, key, _count, "telemetry.")


def _check_event(m: Mapping[str, Any]) -> None:
    kind = _one_of(m, "type", frozenset(EVENTS))
    _one_of(m, "event", EVENTS[kind])
    data = _field(m, "data", _mapping)
    if kind == "item":
        _field(m, "item", lambda v: _text(v) and v, "")
        if "seconds" in data:
            _field(data, "seconds", lambda v: _number(v) and v >= 0, "data.")
        if "counts" in data:
            _field(data, "counts", lambda v: _mapping(v) and all(map(_count, v.values())), "data.")
    elif kind == "hardware":
        _one_of(data, "subsystem", frozenset({"block", "net"}), "data.")
        _field(data, "device", lambda v: _text(v) and v, "data.")
    elif kind == "command":
        _one_of(data, "command", COMMANDS, "data.")


def _check_command(m: Mapping[str, Any]) -> None:
    _one_of(m, "command", COMMANDS)
    for optional in ("item", "id"):
        if optional in m:
            _field(m, optional, _text)


def _check_diagnostics(m: Mapping[str, Any]) -> None:
    _field(m, "trigger", lambda v: _text(v) and v)
    _field(m, "item", _text)
    bundle = _field(m, "bundle", _mapping)
    _field(bundle, "truncated", lambda v: isinstance(v, bool), "bundle.")


_CHECKS = {"status": _check_status, "heartbeat": _check_heartbeat, "event": _check_event,
           "cmd": _check_command, "diagnostics": _check_diagnostics}
