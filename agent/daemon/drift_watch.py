"""The agent's side of the reconciler: record the desired state, check it cheaply, start the reconciler
process on drift, and report every run.

A root task of the daemon. It reads and writes the machine through the agent's one ``OwnMachine`` handle
(its ``Reconciled`` condition, best effort, rewritten when it next changes) and never edits
the item worker: when the machine is Ready and its done items differ from those the record was derived
from, it records a new desired state (``agent.decisions.desired_state``) in the state dir. From then on it
checks the engine (``engine_checks.observe``, off the event loop) every ``reconcile.check_period`` and
shortly after an engine event (``EngineEvents``: a required container dying, the engine restarting, a
node change).

On drift it starts ``lcm-agent reconcile`` as a process of its own session with a time limit, handing it
the join token on stdin; one at a time (the loop awaits it), never while a state item runs, the machine
is not Ready, drained for maintenance (``status.swarmCordonDrain``), halted or being decommissioned: a run
under way is killed (its whole process tree) when any of these starts, and when the agent stops. Failed
runs back off (``reconcile.backoff_*``). Each run gives a core/v1 Event on the LCMMachine and the
telemetry events ``drift``/``started``/``finished``; the ``Reconciled`` condition is written only when it
changes. A healthy node has no reconciler process, and costs one cheap check per period.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from agent.adapters.atomic import read_json, write_json
from agent.adapters.engine_access import EngineAccess
from agent.adapters.engine_checks import EngineEvents, observe
from agent.adapters.journal import Journal
from agent.adapters.kube import Kube, KubeError, Resource
from agent.adapters.runners.supervision import finish, stop_process_group
from agent.api.desired import DaemonConfig, DesiredState, DesiredStateError, ReconcileReport
from agent.api.models import LCMMachine
from agent.daemon.config import ReconcileSettings
from agent.daemon.own_machine import OwnMachine
from agent.decisions.desired_state import derive_desired, items_digest
from agent.decisions.drift import Drift, drift
from agent.decisions.reconcile_runs import RunResult, components, run_event, run_result, why_blocked
from agent.decisions.reporting import clip, find_condition
from agent.kits.tasks import first_of
from agent.kits.timestamps import rfc3339
from agent.reconciler.arguments import DESIRED_FILE

log = logging.getLogger(__name__)

CONDITION = "Reconciled"
REPORT_FILE = "reconcile-report.json"
LOG_FILE = "reconcile.log"
EVENTS = Resource("", "v1", "events")
EVENT_SETTLE = 1.0
"""Seconds between an engine event and the check: a burst (a restart's many events) becomes one check,
and a restart by hand or by systemd gets a moment to complete before it is taken for drift."""
STOP_GRACE = 10.0
"""Seconds a reconciler gets between SIGTERM and SIGKILL when it is stopped."""
MESSAGE_LIMIT = 1024
RECONCILER = (sys.executable, "-m", "agent.reconciler.converge")
"""``lcm-agent reconcile`` without the daemon's imports (see ``agent.reconciler.converge``)."""


class ReconcileSink(Protocol):
    """Telemetry of the checks and reconciler runs: ``checked`` (each check: ``result`` clean, drifted or
    skipped, and why it was skipped), ``drift``, ``started``, ``finished``. Called on the event loop; must not
    block."""

    def __call__(self, event: str, data: Mapping[str, Any], /) -> None: ...


ReadToken = Callable[[str], Awaitable[str]]
"""Reads the join token from the Secret it names; raises an exception whose text says why it cannot."""


class Reconciling:
    """Records, checks, reconciles; ``run`` is a root task of the daemon."""

    def __init__(
        self, kube: Kube, own: OwnMachine, journal: Journal, *, state_dir: Path,
        access: EngineAccess, settings: ReconcileSettings, read_token: ReadToken, busy: Callable[[], bool],
        on_event: ReconcileSink,
    ) -> None:
        self.kube, self.own, self.journal = kube, own, journal
        self.state_dir, self.access, self.settings = state_dir, access, settings
        self.read_token, self.busy, self.on_event = read_token, busy, on_event
        self.desired = load_desired(state_dir / DESIRED_FILE)
        self._derived_from = self.desired.items_digest if self.desired is not None else ""
        self.failures = 0
        self._retry_at = 0.0
        self._blocked = ""
        self._poked = asyncio.Event()
        self._fields = own.fields

    async def run(self, stopping: asyncio.Event) -> None:
        events: EngineEvents | None = None
        try:
            while not stopping.is_set():
                seen = self.own.version
                machine = self.own.latest
                if machine is not None:
                    await self._record(machine)
                if self.desired is None:
                    if events is not None:
                        await asyncio.to_thread(events.stop)
                        events = None
                    # Bounded: recording is skipped while the worker is still in its last item's step,
                    # and that write's answer (which woke us) may be the machine's last change for long.
                    await self.own.wait(seen, stopping, self.settings.check_period)
                    continue
                events = events or self._follow_engine()
                await self._check(machine, stopping)
                await self._wait(seen, stopping)
        finally:
            if events is not None:
                await asyncio.to_thread(events.stop)

    # Desired state

    async def _record(self, machine: LCMMachine) -> None:
        """A new desired state once the machine is Ready with items other than those last recorded."""
        if self._why_blocked(machine) or items_digest(machine) == self._derived_from:
            return
        now = rfc3339(datetime.now(UTC))
        try:
            if derive_desired(machine, None, cluster_id="", recorded_at=now) is None:
                desired = None
            else:  # the engine's facts, read only for a release that deploys something of the engine's
                observed = await asyncio.to_thread(observe, self.access)
                content = observed.config_content
                config = DaemonConfig(content=content) if content is not None else None
                desired = derive_desired(machine, config, cluster_id=observed.cluster_id, recorded_at=now)
        except DesiredStateError as exc:
            log.error("cannot derive the desired state, not reconciling: %s", exc, extra=self._fields)
            desired = None
        self._derived_from = items_digest(machine)
        path = self.state_dir / DESIRED_FILE
        if desired is None:
            path.unlink(missing_ok=True)
        else:
            write_json(path, desired.to_json())
            log.info("recorded the desired state", extra={**self._fields, "components": components(desired)})
        self.desired, self.failures, self._retry_at = desired, 0, 0.0

    # Checking

    def _follow_engine(self) -> EngineEvents:
        loop = asyncio.get_running_loop()

        def notify(reason: str) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed while the thread was stopping
                loop.call_soon_threadsafe(self._poke, reason)

        events = EngineEvents(self.access.host, notify)
        events.start()
        return events

    def _poke(self, reason: str) -> None:
        log.debug("check requested: %s", reason, extra=self._fields)
        self._poked.set()

    async def _wait(self, seen: int, stopping: asyncio.Event) -> None:
        """Until the period ends, the backoff expires, the machine moves, or an engine event settles."""
        period = self.settings.check_period
        if self._retry_at:
            period = min(period, max(self._retry_at - time.monotonic(), 0.0))
        await first_of(self._poked.wait(), self.own.wait(seen, stopping, period))
        if self._poked.is_set() and not stopping.is_set():
            await asyncio.sleep(EVENT_SETTLE)
            self._poked.clear()

    def _why_blocked(self, machine: LCMMachine | None) -> str:
        """Why the node must not be reconciled (or its state recorded) now; "" when it may."""
        return why_blocked(machine, item_running=self.journal.in_progress is not None or self.busy())

    async def _check(self, machine: LCMMachine | None, stopping: asyncio.Event) -> None:
        blocked = self._why_blocked(machine)
        if blocked != self._blocked:
            log.info("reconciling %s", f"paused: {blocked}" if blocked else "resumed", extra=self._fields)
            self._blocked = blocked
        if blocked or machine is None or self.desired is None or time.monotonic() < self._retry_at:
            why = blocked or "backing off after a failed run"
            log.debug("check skipped: %s", why, extra=self._fields)
            self.on_event("checked", {"result": "skipped", "reason": why})
            return
        observed = await asyncio.to_thread(observe, self.access)
        drifts = drift(self.desired, observed)
        self.on_event("checked", {"result": "drifted" if drifts else "clean"})
        if not drifts:
            log.debug("checked: no drift", extra=self._fields)
            self.failures, self._retry_at = 0, 0.0
            current = find_condition(machine, CONDITION)
            if current is None or current.get("status") != "True":
                await self._report_condition(machine, "True", "Converged", "no drift")
            return
        await self._reconcile(machine, drifts, stopping)

    # Running the reconciler

    async def _reconcile(
        self, machine: LCMMachine, drifts: tuple[Drift, ...], stopping: asyncio.Event,
    ) -> None:
        summary = "; ".join(f"{d.component}: {d.reason}" for d in drifts)
        log.warning("drift: %s", summary, extra=self._fields)
        self.on_event("drift", {"components": [
            {"component": d.component, "reason": d.reason, "action": d.action} for d in drifts]})
        attempt = self.failures + 1
        self.on_event("started", {"attempt": attempt})
        began = time.monotonic()
        result = await self._spawn(await self._secrets(), stopping)
        if result is None:
            return
        data = {"attempt": attempt, "converged": result.converged, "message": result.message,
                "seconds": round(time.monotonic() - began, 3),
                "components": [c.to_json() for c in result.report.components] if result.report else []}
        self.on_event("finished", data)
        newest = self.own.latest or machine
        if result.converged:
            self.failures, self._retry_at = 0, 0.0
            log.info("reconciled: %s", result.message, extra=self._fields)
            await self._report_condition(newest, "True", "Converged", result.message)
        else:
            self.failures += 1
            delay = self.settings.backoff.delay(self.failures - 1, random.uniform)
            self._retry_at = time.monotonic() + delay
            log.error("reconciler failed (attempt %d): %s; next attempt in %.0fs", attempt, result.message,
                      delay, extra=self._fields)
            await self._report_condition(newest, "False", "ReconcileFailed", result.message)
        await self._report_event(newest, result, attempt)

    async def _secrets(self) -> bytes:
        """The reconciler's stdin: the join token of the desired role, or why there is none."""
        membership = self.desired.membership if self.desired is not None else None
        if membership is None:
            return b"{}"
        try:
            body = {"joinToken": await self.read_token(membership.join_token_secret)}
        except Exception as exc:
            body = {"joinTokenError": str(exc)}
        return json.dumps(body).encode()

    async def _spawn(self, stdin: bytes, stopping: asyncio.Event) -> RunResult | None:
        """Run the reconciler to its end; None when it was stopped because it must not run now."""
        report_path = self.state_dir / REPORT_FILE
        report_path.unlink(missing_ok=True)
        argv = [*RECONCILER, "--stdin-secrets",
                "--desired", str(self.state_dir / DESIRED_FILE), "--report", str(report_path),
                "--docker-host", self.access.host,
                "--docker-config", self.access.config_path, "--service-manager", self.access.service_manager,
                "--docker-service", self.access.docker_service, "--docker-unit", self.access.docker_unit]
        read_end, write_end = os.pipe()
        os.write(write_end, stdin)  # a few hundred bytes: far below the pipe's buffer, never blocks
        os.close(write_end)
        output = os.open(self.state_dir / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, stdin=read_end, stdout=output, stderr=output, start_new_session=True)
        finally:
            os.close(read_end)
            os.close(output)
        stopped = await self._supervise(process, stopping)
        if stopped == "must not run":
            return None
        return self._result(process.returncode, stopped, report_path)

    async def _supervise(self, process: asyncio.subprocess.Process, stopping: asyncio.Event) -> str:
        """Wait for the process; kill its tree on timeout, on stop, or when reconciling becomes blocked.
        Returns "" when it ended by itself, else why it was stopped."""
        done = asyncio.ensure_future(process.wait())
        deadline = time.monotonic() + self.settings.timeout
        reason = ""
        try:
            while not done.done() and not reason:
                seen = self.own.version
                await first_of(done, self.own.wait(seen, stopping, deadline - time.monotonic()))
                if done.done():
                    break
                if time.monotonic() >= deadline:
                    reason = "timeout"
                elif stopping.is_set() or self._why_blocked(self.own.latest):
                    reason = "must not run"
            if reason:
                log.warning("stopping the reconciler: %s (%s)", reason,
                            self._why_blocked(self.own.latest) or "agent stopping", extra=self._fields)
                await stop_process_group(process, STOP_GRACE)
        except asyncio.CancelledError:
            await finish(stop_process_group(process, STOP_GRACE))
            raise
        return reason

    def _result(self, code: int | None, stopped: str, report_path: Path) -> RunResult:
        try:
            report: ReconcileReport | None = ReconcileReport.from_json(read_json(report_path))
        except (OSError, ValueError):  # DesiredStateError is a ValueError
            report = None
        return run_result(code, report, timed_out=stopped == "timeout", timeout=self.settings.timeout,
                          log_tail=self._log_tail)

    def _log_tail(self) -> str:
        try:
            lines = (self.state_dir / LOG_FILE).read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no output"
        return " | ".join(lines[-3:]) or "no output"

    # Reporting

    async def _report_condition(self, machine: LCMMachine, status: str, reason: str, message: str) -> None:
        await self.own.write_condition(machine, CONDITION, status, reason, clip(message, MESSAGE_LIMIT))

    async def _report_event(self, machine: LCMMachine, result: RunResult, attempt: int) -> None:
        message = f"attempt {attempt}: {clip(result.message, MESSAGE_LIMIT)}"
        body = run_event(machine, result.converged, message, datetime.now(UTC), uuid.uuid4().hex[:16])
        try:
            await self.kube.create(EVENTS, self.own.namespace, body)
        except KubeError as exc:
            log.warning("cannot record the reconciler run as an Event: %s", exc, extra=self._fields)


def load_desired(path: Path) -> DesiredState | None:
    """The record kept across restarts; one that cannot be read is re-derived at the next Ready."""
    try:
        return DesiredState.from_json(read_json(path))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring the desired-state record %s: %s", path, exc)
        return None
