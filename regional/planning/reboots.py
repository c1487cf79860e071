"""Reboots: a machine that needs one is drained, rebooted by its agent and undrained, in the upgrade budgets.

A machine needs a reboot when its OS says so (``status.hostInfo.rebootRequired``) or the cluster's
GracefulRebootRequest names it (``requests.py``). The rule takes it through one reboot, one step per plan,
and keeps where it is in the machine itself (Mirantis' annotation ``lcm.mirantis.com/graceful-reboot``), so
a restarted scheduler goes on where the last one was:

1. start, when there is room: the annotation, and ``sd-<machine>`` true when its node may run workloads (a
   worker, or a control machine of a shared control plane). Control machines one at a time (the plan's
   ``control_busy``) and only while every other manager is settled and in the swarm; workers after the
   control machines, at most ``maxWorkerUpgradeCount`` drained at once (``cordoned``, shared with upgrades
   and leaving machines). Only a settled machine with the spec the planner wants starts: a change first;
2. drained: ``spec.rebootRequired: true`` and when it was asked (``lcm.mirantis.com/reboot-requested-at``);
   the agent marks its journal, reboots, and after the boot writes ``status.reboot.completed`` once its
   engine is back in its desired state;
3. back (completed, items done, swarm item done): ``sd-`` false; once undone the state goes, and
4. the request is cleared: ``spec.rebootRequired`` and both annotations removed (the agent then clears
   ``status.reboot``, and a new reboot can start only once it has).

A reboot starts only inside the cluster's maintenance windows (``spec.rollout.windows``, as upgrades) and
once the node's NodeMaintenanceRequest (the scheduler's own, scope ``os``, unless an operator's names it)
has told other controllers, and while no workload lock of theirs on the node or the cluster forbids
disrupting it (``maintenance_requests.ready_to_disrupt``, ``locks.py``); the machine keeps its slot
meanwhile;
one under way finishes regardless. A machine not back ``reboot_time_limit`` after step 2, or whose agent
reports the reboot failed (``status.reboot.errorMessage``), is a Trouble: the rollout halts, nothing new
starts, the machine stays drained. A machine leaving the cluster is the deletion rule's (deletion wins), one
in maintenance the maintenance rule's; the other rules leave a machine in a reboot alone
(``fleet.rebooting``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from agent.api.models import LCMCluster
from agent.decisions.reporting import clip
from agent.kits.timestamps import parse_time, rfc3339
from regional.planning.contract import GRACEFUL_REBOOT_ANNOTATION, REBOOT_REQUESTED_ANNOTATION
from regional.planning.failures import REASON_LIMIT, Trouble
from regional.planning.fleet import Fleet
from regional.planning.machines import MachineView
from regional.planning.maintenance_requests import ready_to_disrupt
from regional.planning.quorum import REASON as QUORUM_GUARD
from regional.planning.quorum import quorum_refusal
from regional.planning.settings import PlanSettings


def in_reboot(v: MachineView) -> bool:
    """The planner is taking the machine through a reboot (step 1 done, step 4 not yet)."""
    return v.machine.metadata.annotations.get(GRACEFUL_REBOOT_ANNOTATION) == "true"


def _completed(v: MachineView) -> bool:
    return v.status.reboot is not None and v.status.reboot.completed


def _back(v: MachineView) -> bool:
    """Rebooted and in service again: the agent says the reboot completed (it writes that after the boot,
    once its engine passes the desired-state checks), every item is done and the node is in the swarm."""
    return v.spec.reboot_required and _completed(v) and v.settled and (v.swarm_item is None or v.swarm_done)


def _runs_workloads(fleet: Fleet, v: MachineView) -> bool:
    dedicated = v.control and fleet.swarm.dedicated_control_plane
    return v.swarm_item is not None and not dedicated


def other_managers_ready(fleet: Fleet, v: MachineView) -> bool:
    """Every other manager settled, in the swarm and not rebooting itself: taking ``v`` down leaves the
    others to keep the quorum. (The quorum guard proper may replace this condition.)"""
    return all(
        m.settled and m.swarm_done and not in_reboot(m) and not m.spec.reboot_required
        for m in fleet.views
        if m.control and not m.deleting and m.swarm_item is not None and m is not v
    )


def wants_reboot(v: MachineView, requested: Collection[str]) -> bool:
    return v.name in requested or v.status.host_info.reboot_required


def plan_reboots(
    fleet: Fleet, requested: Collection[str], unrecorded: Collection[str], now: datetime,
) -> None:
    """Move every reboot under way one step, then start the next ones there is room for. ``requested``:
    machines a reboot request still waits for; ``unrecorded``: machines whose reboot the request's status
    does not show yet (their reboot is not cleared before it does, or the request would ask again)."""
    candidates = [v for v in fleet.views
                  if not v.deleting and v.ip is not None and v.name not in fleet.in_maintenance]
    for v in candidates:
        if in_reboot(v):
            fleet.rebooting.add(v.name)
            fleet.control_busy |= v.control
            _go_on(fleet, v, unrecorded, now)
    waiting = [v for v in candidates if not in_reboot(v) and wants_reboot(v, requested)]
    controls_first = any(v.control for v in waiting) or any(
        v.control for v in candidates if v.name in fleet.rebooting)
    for v in sorted(waiting, key=lambda v: not v.control):
        _start(fleet, v, controls_first)


def _start(fleet: Fleet, v: MachineView, controls_first: bool) -> None:
    drain = _runs_workloads(fleet, v)
    held = _why_not(fleet, v, drain, controls_first)
    if held is not None:
        fleet.hold(v, *held)
        return
    if v.control:
        fleet.control_busy = True
    else:
        fleet.cordoned += drain
    if not ready_to_disrupt(fleet, v, "os"):  # other controllers told first; it keeps its slot meanwhile
        return
    fleet.rebooting.add(v.name)
    fleet.write(v, {"metadata": {"annotations": {GRACEFUL_REBOOT_ANNOTATION: "true"}}},
                "reboot: drain first" if drain else "reboot")
    if drain:
        fleet.want("swarm-drain", v, True, "drain before the reboot")


def _why_not(fleet: Fleet, v: MachineView, drain: bool, controls_first: bool) -> tuple[str, str] | None:
    """Why the machine's reboot cannot start now (reason, message), or None when it may."""
    limit = fleet.cluster.spec.max_worker_upgrade_count
    full = fleet.full(v)
    if fleet.halted:
        return "Halted", "the rollout is halted: no reboot starts"
    closed = fleet.gate.window_hold() if fleet.gate is not None else None
    if closed is not None:
        return closed
    if not (v.released and v.settled) or full is None or fleet.diff(v, full) is not None:
        return "NotSettled", "its items are not all done: it reboots once they are"
    if _completed(v) or v.spec.reboot_required:
        return "RebootNotCleared", "its agent has not cleared the last reboot's status"
    if drain and fleet.executor is None:
        return "NoManager", "no manager to drain its node"
    if v.control and fleet.control_busy:
        return "ControlPlaneBusy", "another control machine is changing"
    if v.control and not other_managers_ready(fleet, v):
        return "ManagersNotReady", "another manager is not ready: the quorum needs it"
    if v.control and (refusal := quorum_refusal(fleet.views, v, removal=False)):
        return QUORUM_GUARD, refusal
    if not v.control and controls_first:
        return "ControlsFirst", "control machines reboot first"
    if not v.control and drain and fleet.cordoned >= limit:
        return "RebootBudget", f"maxWorkerUpgradeCount ({limit}) workers are drained"
    return None


def _go_on(fleet: Fleet, v: MachineView, unrecorded: Collection[str], now: datetime) -> None:
    """One step of a reboot under way; what it waits for is held with its reason."""
    held = _step(fleet, v, unrecorded, now)
    if held is not None:
        fleet.hold(v, *held)


def _step(
    fleet: Fleet, v: MachineView, unrecorded: Collection[str], now: datetime,
) -> tuple[str, str] | None:
    drain = fleet.drains.get(v.name)
    if not v.spec.reboot_required:
        if _runs_workloads(fleet, v):
            fleet.want("swarm-drain", v, True, "drain before the reboot")
            if drain is None or not drain.spec.requested or v.status.swarm_cordon_drain != "cordondrained":
                return "Draining", "its node is being drained for the reboot"
        patch = {"metadata": {"annotations": {REBOOT_REQUESTED_ANNOTATION: rfc3339(now)}},
                 "spec": {"rebootRequired": True}}
        fleet.write(v, patch, "reboot: node drained" if drain is not None else "reboot")
        return None
    if not _back(v):
        if drain is not None:
            fleet.want("swarm-drain", v, True, "drained while it reboots")
        return "Rebooting", "waits for its agent to report the reboot done and its items"
    if drain is not None:
        if drain.spec.requested or drain.status.value != "false" or v.status.swarm_cordon_drain is not None:
            fleet.want("swarm-drain", v, False, "undrain: the machine is back from its reboot")
            return "Undraining", "its node is being undrained after the reboot"
        fleet.drop("swarm-drain", v)
    if v.name in unrecorded:
        return "Recording", "its reboot request's status is being written"
    clear: dict[str, Any] = {
        "metadata": {"annotations": {GRACEFUL_REBOOT_ANNOTATION: None, REBOOT_REQUESTED_ANNOTATION: None}},
        "spec": {"rebootRequired": None},
    }
    fleet.write(v, clear, "rebooted and back")
    return None


def _asked_at(v: MachineView) -> datetime | None:
    return parse_time(v.machine.metadata.annotations.get(REBOOT_REQUESTED_ANNOTATION))


def reboot_limit(cluster: LCMCluster, settings: PlanSettings) -> float:
    """Seconds a machine may take to come back: the cluster's ``rebootTimeoutSeconds``, else the default."""
    seconds = cluster.spec.reboot_timeout_seconds
    return float(seconds) if seconds is not None else settings.reboot_time_limit


def reboot_time_left(v: MachineView, limit: float, now: datetime) -> float | None:
    """Seconds before a machine asked to reboot counts as not coming back; None when none is waited on."""
    asked = _asked_at(v)
    if not in_reboot(v) or not v.spec.reboot_required or asked is None or _back(v):
        return None
    return limit - (now - asked).total_seconds()


def reboot_trouble(v: MachineView, limit: float, now: datetime) -> Trouble | None:
    """A reboot that failed (the agent says why) or has not come back within ``limit`` seconds."""
    if not in_reboot(v) or not v.spec.reboot_required or _back(v):
        return None
    if v.status.reboot is not None and v.status.reboot.error_message:
        return Trouble(v.name, f"reboot failed: {clip(v.status.reboot.error_message, REASON_LIMIT)}")
    left = reboot_time_left(v, limit, now)
    if left is not None and left < 0:
        return Trouble(v.name, f"reboot not back after {limit:.0f}s")
    return None


def reboot_time_lefts(views: Sequence[MachineView], limit: float, now: datetime) -> list[float]:
    return [left for v in views if (left := reboot_time_left(v, limit, now)) is not None]
