"""``lcmctl watch``: a live terminal view of one cluster's rollout, from the API and the MQTT plane.

    lcmctl watch --namespace NS --cluster NAME [--kubeconfig K]
                 [--mqtt-url mqtts://broker:8883 --mqtt-username lcm_regional --mqtt-password-file F
                  --mqtt-ca-file CA] [--once]

The LCMMachines (re-listed every two seconds) give what is true: type, state, items done, the last error.
MQTT, when given, adds what is live: whether each agent is online, how old its last heartbeat is, the item
running and its Ansible task with counts. Without MQTT the view is the API's alone. ``--once`` prints one
table (after a moment to hear heartbeats) and exits, for scripts and bug reports.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from agent.adapters.kube import Kube, KubeError, Resource, connect
from agent.adapters.mqtt import MqttLink
from agent.api import telemetry as t
from agent.api.models import GROUP, VERSION
from regional.cli.broker_options import broker_settings

LCMMACHINES = Resource(GROUP, VERSION, "lcmmachines")
REFRESH = 2.0
"""Seconds between API re-lists: a rollout's steps take seconds to minutes."""
_STYLE = {"Ready": "green", "Prepare": "yellow", "Deploy": "yellow", "Reconfigure": "yellow",
          "Uninitialized": "dim", "Pending": "dim"}




@dataclass
class Heard:
    """What MQTT said last about one machine."""

    online: bool | None = None
    heard: float = 0.0
    heartbeat: dict[str, Any] = field(default_factory=dict)


class Board:
    """The machines of one cluster: API objects plus the live view; ``table()`` renders it."""

    def __init__(self, namespace: str, cluster: str) -> None:
        self.namespace, self.cluster = namespace, cluster
        self.machines: list[dict[str, Any]] = []
        self.live: dict[str, Heard] = {}
        self.error = ""

    def on_message(self, topic: str, payload: bytes) -> None:
        where = t.parse_topic(topic)
        if where is None or where[0].namespace != self.namespace or not payload:
            return
        try:
            message = t.decode(payload)
        except t.TelemetryError:
            return
        entry = self.live.setdefault(where[0].machine, Heard())
        if message["kind"] == "status":
            entry.online = message["state"] == "online"
        elif message["kind"] == "heartbeat":
            entry.online, entry.heard, entry.heartbeat = True, time.monotonic(), message

    def table(self, now: float) -> Table:
        title = f"{self.namespace}/{self.cluster}" + (f"  [red]{self.error}" if self.error else "")
        table = Table(title=title, expand=True)
        for column in ("MACHINE", "TYPE", "STATE", "ITEMS", "AGENT", "RUNNING", "LAST ERROR"):
            table.add_column(column, overflow="fold")
        for raw in sorted(self.machines, key=lambda m: str(m["metadata"]["name"])):
            name = str(raw["metadata"]["name"])
            status = raw.get("status") or {}
            state = str(status.get("state") or "Uninitialized")
            heard = self.live.get(name)
            table.add_row(name, str((raw.get("spec") or {}).get("type", "")),
                          f"[{_STYLE.get(state, 'red')}]{state}", str(status.get("progress", "")),
                          _agent(heard, now), _running(heard), _last_error(status))
        return table


def _agent(live: Heard | None, now: float) -> str:
    if live is None or live.online is None:
        return "[dim]—"
    if not live.online:
        return "[red]offline"
    if not live.heard:
        return "[green]online"
    age = now - live.heard
    interval = float(live.heartbeat.get("interval", 10.0))
    return f"[{'green' if age <= 1.5 * interval else 'yellow'}]online, beat {age:.0f}s ago"


def _running(live: Heard | None) -> str:
    item = (live.heartbeat.get("agent") or {}).get("item") if live is not None else None
    if not item:
        return ""
    counts = " ".join(f"{k}={v}" for k, v in sorted((item.get("counts") or {}).items()))
    task = f": {item['task']}" if item.get("task") else ""
    return f"{item['name']} #{item['attempt']}{task}" + (f" ({counts})" if counts else "")


def _last_error(status: Mapping[str, Any]) -> str:
    """The failing item's message (the API keeps the log tail there), shortened to one line."""
    failed = [(name, slot) for name, slot in (status.get("stateItemStatuses") or {}).items()
              if slot.get("exitCode") not in (None, 0, -1)]
    if not failed:
        return ""
    name, slot = max(failed, key=lambda pair: str(pair[1].get("finishedAt", "")))
    message = " ".join(str(slot.get("message", "")).split())
    return f"[red]{name}: {message[:160]}"


def watch(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 0


async def _run(args: argparse.Namespace) -> int:
    board = Board(args.namespace, args.cluster)
    stopping = asyncio.Event()
    tasks = []
    if args.mqtt_url:
        broker = broker_settings(args, f"lcmctl-watch-{id(board)}")
        topics = [(t.topic_filter(channel, args.namespace, args.cluster), 0)
                  for channel in ("status", "heartbeat")]
        tasks.append(asyncio.ensure_future(MqttLink(broker, subscriptions=topics,
                                                    on_message=board.on_message).run(stopping)))
    kube = await connect(kubeconfig=args.kubeconfig)
    try:
        async with kube:
            if args.once:
                await _refresh(kube, board)
                await asyncio.sleep(REFRESH)  # long enough for retained statuses and a heartbeat or so
                Console().print(board.table(time.monotonic()))
                return 1 if board.error else 0
            with Live(board.table(time.monotonic()), refresh_per_second=2, screen=False) as live:
                while True:
                    await _refresh(kube, board)
                    live.update(board.table(time.monotonic()))
                    await asyncio.sleep(REFRESH)
    finally:
        stopping.set()
        for task in tasks:
            with contextlib.suppress(Exception):
                await task


async def _refresh(kube: Kube, board: Board) -> None:
    try:
        listed = await kube.list_objects(LCMMACHINES, board.namespace)
    except KubeError as exc:
        board.error = f"API: {exc}"
        return
    board.error = ""
    board.machines = [m for m in listed.get("items", [])
                      if (m.get("spec") or {}).get("clusterName") == board.cluster]

