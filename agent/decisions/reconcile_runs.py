"""The agent's decisions around reconciler runs: whether the node may be reconciled now, what a finished run
says, and the Event that records it.

Pure: the agent's side (``agent.daemon.drift_watch``) reads the machine, the report file and the log, and
writes the condition and the Event; these functions only map values to values, so the rules (never while
an item runs, a drain holds the node, the agent is halted...) are tested as a table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent.api.desired import DesiredState, ReconcileReport
from agent.api.models import API_VERSION, LCMMachine
from agent.decisions.state import machine_state
from agent.kits.timestamps import rfc3339

EXIT_CONVERGED = 0
"""The reconciler process' exit code when the node converged (``agent.reconciler.converge`` exits with it)."""


@dataclass(frozen=True)
class RunResult:
    """How one reconciler run ended, as the agent reports it."""

    converged: bool
    message: str
    report: ReconcileReport | None


def why_blocked(machine: LCMMachine | None, *, item_running: bool) -> str:
    """Why the node must not be reconciled (or its state recorded) now; "" when it may."""
    if machine is None:
        return "the LCMMachine is unknown"
    spec, status = machine.spec, machine.status
    state = machine_state(spec, status)
    if state != "Ready":
        return f"the machine is {state}"
    if item_running:
        return "a state item is running"
    if spec.halt_agent:
        return "the agent is halted (spec.haltAgent)"
    if spec.prepare_deletion:
        return "the machine is being decommissioned (spec.prepareDeletion)"
    if status.swarm_cordon_drain is not None:
        return f"the node is {status.swarm_cordon_drain} for maintenance"
    if spec.maintenance or status.maintenance:
        return "the machine is in maintenance: an operator may be working on it"
    return ""


def run_result(
    code: int | None, report: ReconcileReport | None, *, timed_out: bool, timeout: float,
    log_tail: Callable[[], str],
) -> RunResult:
    """A run's outcome from its exit code and report; ``log_tail`` is read only when neither says why."""
    if timed_out:
        return RunResult(False, f"timed out after {timeout:g}s", report)
    if code == EXIT_CONVERGED and report is not None and report.converged:
        fixed = [c.name for c in report.components if c.outcome == "converged"]
        return RunResult(True, f"converged {', '.join(fixed)}" if fixed else "no drift left", report)
    if report is not None and report.first_error:
        return RunResult(False, report.first_error, report)
    return RunResult(False, f"the reconciler exited with {code}: {log_tail()}", report)


def run_event(
    machine: LCMMachine, converged: bool, message: str, now: datetime, suffix: str,
) -> dict[str, Any]:
    """A core/v1 Event about one reconciler run, on the LCMMachine (``kubectl describe`` shows it); ``suffix``
    makes its name unique (random outside tests)."""
    meta = machine.metadata
    name = meta.name or ""
    stamp = rfc3339(now)
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{name}.{suffix}", "namespace": meta.namespace},
        "involvedObject": {"apiVersion": API_VERSION, "kind": "LCMMachine", "name": name,
                           "namespace": meta.namespace, "uid": meta.uid,
                           "resourceVersion": meta.resource_version},
        "reason": "Reconciled" if converged else "ReconcileFailed",
        "message": message, "type": "Normal" if converged else "Warning",
        "source": {"component": "lcm-agent", "host": name},
        "reportingComponent": "lcm-agent", "reportingInstance": name,
        "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
    }


def components(desired: DesiredState) -> list[str]:
    """The components a desired state covers, in the reconciler's order (for logs)."""
    names = ["engine", *(["config"] if desired.config else [])]
    names += ["membership", "role"] if desired.membership else []
    names += ["labels"] if desired.labels else []
    return [*names, *(f"container {c.name}" for c in desired.containers)]
