"""Evidence on failure: a diagnostics bundle when the machine's item failed for good or is flagged stuck.

A root task of the daemon. The scheduler's planner decides when an item is beyond the agent's own retries:
it failed ``max_item_attempts`` times, or it has run well past what the fleet takes for it (or past the
fixed limit). It says so on the machine's own LCMMachine, ``status.lcmOperationStuck``, which this agent
follows anyway (``OwnMachine``): so the agent learns its item is stuck with no channel of its own. When
the flag turns on, the agent gathers once (``agent.adapters.evidence``, off the event loop): the troubled
item's last Ansible task and output tail, ``docker info``, its own journal tail, free disk and memory;
makes the bundle (``agent.decisions.evidence``: redacted with the secret registry, capped); keeps it as
``<state_dir>/diagnostics/latest.json`` (0600 in a 0700 directory, replaced atomically) and publishes it
retained on the machine's ``diagnostics`` topic, where ``lcmctl diagnostics`` reads it (docs/telemetry.md).

Once per trouble: the same item and attempt is not gathered again (after a restart either: the kept
bundle says which it was), and the flag must clear and come back for a new one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.adapters import evidence
from agent.adapters.atomic import read_json, write_json
from agent.api.models import LCMMachine
from agent.daemon.own_machine import OwnMachine
from agent.decisions.evidence import BUNDLE_LIMIT, bundle, troubled_item
from agent.kits.logs import SecretRegistry

log = logging.getLogger(__name__)

BUNDLE_FILE = "latest.json"
TRIGGER = "stuck"
"""Why a bundle was gathered: the machine's ``status.lcmOperationStuck`` (a failure for good or a run too
long; the LCMCluster's ``OperationStuck`` condition says which)."""

Publish = Callable[[str, Mapping[str, Any]], None]
"""Sends a bundle for an item (``Telemetry.on_diagnostics``); must not block."""


@dataclass(frozen=True)
class EvidenceSources:
    """Where the evidence is on this machine."""

    state_dir: Path
    work_dir: Path
    """The item runs' artifacts (``WorkerSettings.work_dir``)."""
    docker_host: str
    limit: int = BUNDLE_LIMIT


def gather(item: str, attempt: int, sources: EvidenceSources, secrets: SecretRegistry) -> dict[str, Any]:
    """The bundle for ``item`` (blocking: run it in a thread)."""
    run_dir = evidence.telling_attempt(sources.work_dir, item)
    parts: dict[str, Any] = {
        "item": item, "attempt": attempt, "gatheredAt": round(time.time(), 3),
        "evidenceAttempt": int(run_dir.name) if run_dir else None,
        "task": evidence.last_task(run_dir) if run_dir else {"error": "the item left no artifacts"},
        "outputTail": evidence.output_tail(run_dir) if run_dir else "",
        "docker": evidence.docker_summary(sources.docker_host),
        "journal": evidence.journal_tail(),
        "host": evidence.host_resources(sources.state_dir),
    }
    return bundle(parts, secrets.redact, sources.limit)


class Diagnostics:
    """Follows the machine's stuck flag; ``latest`` is the newest bundle gathered."""

    def __init__(self, own: OwnMachine, sources: EvidenceSources, secrets: SecretRegistry,
                 publish: Publish | None = None) -> None:
        self.own, self.sources, self.secrets, self.publish = own, sources, secrets, publish
        self.directory = sources.state_dir / "diagnostics"
        self.latest: dict[str, Any] | None = self._load()

    def _load(self) -> dict[str, Any] | None:
        try:
            kept = read_json(self.directory / BUNDLE_FILE)
        except (OSError, ValueError):
            return None
        return kept if isinstance(kept, dict) else None

    async def run(self, stopping: asyncio.Event) -> None:
        flagged = False
        while not stopping.is_set():
            seen = self.own.version
            machine = self.own.latest
            stuck = machine is not None and machine.status.lcm_operation_stuck
            if stuck and not flagged and machine is not None:
                await self.on_stuck(machine)
            flagged = stuck
            await self.own.wait(seen, stopping, None)

    async def on_stuck(self, machine: LCMMachine) -> None:
        trouble = troubled_item(machine)
        if trouble is None:
            log.info("flagged stuck, but no item is failing or running: nothing to gather",
                     extra=self.own.fields)
            return
        item, attempt = trouble
        latest = self.latest or {}
        if (latest.get("item"), latest.get("attempt")) == (item, attempt):
            return  # gathered for this very run already (before a restart, or a flag that flapped)
        fields = {**self.own.fields, "item": item, "attempt": attempt}
        log.warning("the item is flagged stuck: gathering diagnostics", extra=fields)
        gathered = await asyncio.to_thread(gather, item, attempt, self.sources, self.secrets)
        try:
            await asyncio.to_thread(self._keep, gathered)
        except OSError as exc:
            log.error("cannot keep the diagnostics bundle: %s", exc, extra=fields)
        self.latest = gathered
        if self.publish is not None:
            self.publish(item, gathered)
        log.info("diagnostics bundle kept%s", " and sent" if self.publish else "",
                 extra={**fields, "truncated": gathered["truncated"]})

    def _keep(self, gathered: Mapping[str, Any]) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        write_json(self.directory / BUNDLE_FILE, gathered, mode=0o600)
