"""``lcmctl diagnostics``'s handler: fetch the newest diagnostics bundle of a machine from the broker.

Its usage is in ``regional.cli.commands``. An agent publishes its bundle retained on its own
``diagnostics`` topic: the broker keeps the newest one per machine, so this only subscribes to it.
Whether the broker has one is known without waiting on a timer: after subscribing, the command sends
itself a probe on its own topic (``lcm/_regional/<client>/probe``); the broker delivers a retained message
right after the subscription, before anything published later on the same connection, so once the probe
is back, no bundle means there is none.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from agent.adapters.mqtt import MqttLink, Outbox, Outgoing
from agent.api import telemetry as t
from regional.cli.broker_options import broker_settings

CONNECT_WITHIN = 20.0
"""Seconds to reach the broker and have the probe back before giving up (exit 2)."""
EXIT_FOUND, EXIT_NONE, EXIT_UNREACHABLE = 0, 1, 2


class Fetch:
    """One retained bundle and the probe that proves the broker had its chance to deliver it."""

    def __init__(self, args: argparse.Namespace) -> None:
        client_id = f"lcmctl-diagnostics-{os.getpid()}"
        self.probe = t.probe_topic(client_id)
        self.topic = t.topic_filter("diagnostics", args.namespace, "+", args.machine)
        self.found: dict[str, Any] | None = None
        self.invalid = ""
        self.done = asyncio.Event()
        outbox = Outbox(1)
        outbox.put(Outgoing(self.probe, b"probe", 0, False))  # sent once subscribed, after the retained
        self.link = MqttLink(broker_settings(args, client_id), outbox=outbox, on_message=self.on_message,
                             subscriptions=[(self.topic, t.QOS["diagnostics"]), (self.probe, 0)])

    def on_message(self, topic: str, payload: bytes) -> None:
        if topic == self.probe:
            self.done.set()
        elif payload:
            try:
                message = t.decode(payload)
            except t.TelemetryError as exc:
                self.invalid = f"the retained message on {topic} is not a bundle: {exc}"
                return
            if message["kind"] == "diagnostics":
                self.found = message

    async def run(self) -> bool:
        """True once the probe came back (``found`` then says whether there is a bundle)."""
        stopping = asyncio.Event()
        link = asyncio.ensure_future(self.link.run(stopping))
        try:
            await asyncio.wait_for(self.done.wait(), CONNECT_WITHIN)
        except TimeoutError:
            return False
        finally:
            stopping.set()
            await link
        return True


def diagnostics(args: argparse.Namespace) -> int:
    """The command's handler (``regional.cli.commands.add_diagnostics_commands``)."""
    fetch = Fetch(args)
    if not asyncio.run(fetch.run()):
        print(f"lcmctl diagnostics: the broker at {args.mqtt_url} did not answer within {CONNECT_WITHIN:g}s "
              "(is the URL right, and the password?)", file=sys.stderr)
        return EXIT_UNREACHABLE
    if fetch.found is None:
        print(fetch.invalid or f"lcmctl diagnostics: no bundle retained for {args.namespace}/{args.machine} "
              "(none gathered: its items were never flagged stuck, or the broker lost its store)",
              file=sys.stderr)
        return EXIT_NONE
    text = json.dumps(fetch.found, indent=2, ensure_ascii=False) + "\n"
    if args.output is None:
        sys.stdout.write(text)
    else:
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
    return EXIT_FOUND
