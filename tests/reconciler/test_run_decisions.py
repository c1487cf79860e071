"""When the agent may reconcile its node, and what a finished reconciler run tells the operator: tables."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from agent.api.desired import ComponentReport, ReconcileReport
from agent.api.models import LCMMachine, StateItem
from agent.decisions.hashing import item_hash
from agent.decisions.reconcile_runs import EXIT_CONVERGED, run_event, run_result, why_blocked
from agent.decisions.state import machine_state

AGENT = "1.0.0"
ITEM = {"runner": "ansible", "name": "engine", "version": "1.0.0", "phase": "deploy",
        "params": {"playbook": "deploy/engine.yml"}}


def machine(*, done: bool = True, **spec: Any) -> LCMMachine:
    digest = item_hash(StateItem.model_validate(ITEM), AGENT)
    status: dict[str, Any] = {
        "agentVersion": AGENT, "addresses": [{"type": "InternalIP", "address": "10.0.0.5"}],
        "stateItemStatuses": {"engine": {"hash": digest, "exitCode": 0 if done else 1}}}
    status |= spec.pop("status", {})
    return LCMMachine.from_raw({
        "metadata": {"name": "m1", "namespace": "ns", "uid": "u-1", "resourceVersion": "7"},
        "spec": {"type": "worker", "lcmType": "k0s", "release": "1.0.0", "stateItems": [ITEM], **spec},
        "status": status})


def test_the_ready_machine_of_these_tables_is_ready() -> None:
    assert machine_state(machine().spec, machine().status) == "Ready"


@pytest.mark.parametrize(("subject", "item_running", "reason"), [
    (machine(), False, ""),
    (None, False, "the LCMMachine is unknown"),
    (machine(done=False), False, "the machine is"),
    (machine(), True, "a state item is running"),
    (machine(haltAgent=True), False, "the agent is halted (spec.haltAgent)"),
    (machine(prepareDeletion=True), False, "the machine is being decommissioned (spec.prepareDeletion)"),
    (machine(status={"swarmCordonDrain": "cordondrained"}), False,
     "the node is cordondrained for maintenance"),
    # An operator's own work (os scope: reboot, package updates), e.g. on a manager that is never drained.
    (machine(maintenance=True), False, "the machine is in maintenance"),
    (machine(status={"maintenance": True}), False, "the machine is in maintenance"),
])
def test_the_node_is_reconciled_only_when_nothing_else_holds_it(
    subject: LCMMachine | None, item_running: bool, reason: str,
) -> None:
    said = why_blocked(subject, item_running=item_running)
    assert said.startswith(reason) if reason else said == ""


def report(*components: ComponentReport, converged: bool) -> ReconcileReport:
    return ReconcileReport(started="2026-01-01T00:00:00Z", finished="2026-01-01T00:00:05Z",
                           components=components, converged=converged)


FIXED = ComponentReport(name="engine", drift="stopped", action="start", outcome="converged")
OK = ComponentReport(name="config", outcome="ok")
FAILED = ComponentReport(name="membership", drift="left", action="join", outcome="failed", error="no token")


@pytest.mark.parametrize(("code", "the_report", "timed_out", "converged", "message"), [
    (EXIT_CONVERGED, report(FIXED, OK, converged=True), False, True, "converged engine"),
    (EXIT_CONVERGED, report(OK, converged=True), False, True, "no drift left"),
    (1, report(FIXED, FAILED, converged=False), False, False, "membership: no token"),
    (EXIT_CONVERGED, None, False, False, "the reconciler exited with 0: last line"),  # no report: its log
    (-9, None, False, False, "the reconciler exited with -9: last line"),
    (None, report(FIXED, converged=False), True, False, "timed out after 90s"),
])
def test_a_run_is_reported_from_its_exit_code_and_report(
    code: int | None, the_report: ReconcileReport | None, timed_out: bool, converged: bool, message: str,
) -> None:
    result = run_result(code, the_report, timed_out=timed_out, timeout=90.0, log_tail=lambda: "last line")
    assert (result.converged, result.message, result.report) == (converged, message, the_report)


@pytest.mark.parametrize(("converged", "reason", "kind"), [
    (True, "Reconciled", "Normal"), (False, "ReconcileFailed", "Warning")])
def test_each_run_is_an_event_on_the_machine(converged: bool, reason: str, kind: str) -> None:
    event = run_event(machine(), converged, "attempt 1: x", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "abc")
    assert (event["metadata"], event["reason"], event["type"], event["firstTimestamp"]) == (
        {"name": "m1.abc", "namespace": "ns"}, reason, kind, "2026-01-02T03:04:05Z")
    assert event["involvedObject"] == {"apiVersion": "lcm.mirantis.com/v1alpha1", "kind": "LCMMachine",
                                       "name": "m1", "namespace": "ns", "uid": "u-1", "resourceVersion": "7"}
