"""Gating: which machines get which items now.

The agent runs everything in its spec, so the planner gates by what it writes: a machine holds only the
items of the phases it may run.

- No InternalIP: nothing; the agent has not reported in.
- Prepare items: every control machine at once; at most ``maxWorkerPrepareCount`` workers preparing.
- All items (deploy): the first control machine as soon as it is prepared (it initialises the swarm); every
  other control machine once the first is Ready and no other control machine is changing; workers and
  bastions once the first is Ready and every control machine is done, at most ``maxWorkerDeployCount``
  deploying at once (a sliding batch: a finished worker makes room for the next).
- Machines already released that need a new spec: control machines one at a time, workers within the same
  deploy window, or drained within ``maxWorkerUpgradeCount`` when the release changes (upgrade.py).
- Halted (something is stuck): nothing new starts. A machine already running items still gets a new spec
  when its target changes: it is changing anyway, and an operator's fix must be able to reach it.
"""

from __future__ import annotations

from typing import Any, Literal

from regional.planning.fleet import Fleet
from regional.planning.machines import MachineView
from regional.planning.maintenance_requests import ready_to_disrupt
from regional.planning.release_upgrade import drained_update, finish, needs_drain, quorum_holds
from regional.planning.rendering import Target
from regional.planning.waiting import hold_back

Slot = Literal["prepare", "deploy"] | None
"""The budget a step took a place in, if any."""


def _in_flight(v: MachineView) -> bool:
    """It is running items already: giving it another spec starts nothing new."""
    return bool(v.spec.state_items) and not v.settled


def _change(v: MachineView, want: Target) -> str:
    return f"upgrade to {want.release}" if v.spec.release != want.release else "settings changed"


def _gated(fleet: Fleet, v: MachineView, want: Target) -> bool:
    """An upgrade (another release) the rollout's gates hold back now (waves.py); the hold is recorded."""
    return v.spec.release != want.release and fleet.upgrade_held(v)


def _start(fleet: Fleet, v: MachineView, patch: dict[str, Any], want: Target) -> None:
    """Write a change in place; an upgrade that starts so takes its place in the canary wave."""
    fleet.write(v, patch, _change(v, want))
    if v.spec.release != want.release:
        fleet.upgrade_started(v)


def plan_controls(fleet: Fleet) -> bool:
    """Control machines, in order. True while one of them is not done: workers wait for them."""
    pending = False
    for v in fleet.views:
        if not v.control or v.deleting or v.ip is None or v.name in fleet.in_maintenance \
                or (full := fleet.full(v)) is None:
            continue
        if v.name in fleet.rebooting:
            pending = True  # workers wait for a control machine's reboot as for its upgrade
            continue
        patch = fleet.diff(v, full)
        if patch is None:
            finish(fleet, v)
            pending |= not v.settled or v.name in fleet.drains
            continue
        pending = True
        if v.released and _in_flight(v):
            fleet.write(v, patch, f"{_change(v, full)} while in flight")
        elif v.released and fleet.halted:
            hold_back(fleet, v, "control")
        elif v.released and quorum_holds(fleet, v, full.release):
            continue  # the hold says why
        elif v.released and needs_drain(fleet, v, full.release):
            fleet.control_busy |= drained_update(fleet, v, patch, slot_free=not fleet.control_busy)
        elif v.released and fleet.control_busy:
            hold_back(fleet, v, "control")
        elif v.released and not _gated(fleet, v, full):
            if v.spec.release == full.release or ready_to_disrupt(fleet, v, "drain", upgrade=True):
                _start(fleet, v, patch, full)
            fleet.control_busy = True  # kept while other controllers get ready for its upgrade
        elif not v.released:
            _release_control(fleet, v, patch)
    return pending


def _release_control(fleet: Fleet, v: MachineView, deploy: dict[str, Any]) -> None:
    prepare = fleet.diff(v, fleet.prepare(v))
    if prepare is not None:
        if _in_flight(v) or not fleet.halted:
            fleet.write(v, prepare, "prepare")
        else:
            hold_back(fleet, v, "control")
        return
    if not v.prepared:
        return
    if fleet.halted or fleet.control_busy:
        hold_back(fleet, v, "control")
        return
    if v is fleet.swarm.first:
        fleet.write(v, deploy, "deploy: the first control machine initialises the swarm")
    elif fleet.first_ready:
        fleet.write(v, deploy, "deploy: joins the swarm as a manager")
    else:
        hold_back(fleet, v, "control", control_plane_pending=True)
        return
    fleet.control_busy = True


def _release_worker(
    fleet: Fleet, v: MachineView, may_prepare: bool, may_deploy: bool, control_plane_pending: bool
) -> Slot:
    """A worker not yet released: its prepare items, or all of them when there is room. Its full spec is only
    rendered when it may get it: thousands of prepared workers wait while a batch deploys."""
    prepare = fleet.diff(v, fleet.prepare(v))
    if prepare is not None:
        if _in_flight(v):
            fleet.write(v, prepare, "prepare")
        elif may_prepare:
            fleet.write(v, prepare, "prepare")
            return "prepare"
        else:
            hold_back(fleet, v, "prepare")
        return None
    if not v.prepared:
        return None
    if not (may_deploy or fleet.templates.prepare_only(v.type)):
        hold_back(fleet, v, "deploy", control_plane_pending=control_plane_pending)
        return None
    full = fleet.full(v)
    deploy = fleet.diff(v, full) if full is not None else None
    if deploy is None:
        finish(fleet, v)  # a type with nothing beyond prepare items is done here
        return None
    fleet.write(v, deploy, "deploy: joins the swarm")
    return "deploy"


def _upgrade_waits(fleet: Fleet, v: MachineView, may_start: bool, control_plane_pending: bool) -> bool:
    """A settled worker on another release, not drained yet, that may not start its upgrade now: held
    without rendering its spec (thousands wait behind a canary wave, a closed window or the drain budget)."""
    release = fleet.templates.release
    if v.spec.release == release or not v.settled or v.name in fleet.drains:
        return False
    if not may_start:
        hold_back(fleet, v, "deploy", control_plane_pending=control_plane_pending)
        return True
    if fleet.upgrade_held(v):
        return True
    if needs_drain(fleet, v, release) and fleet.cordoned >= fleet.cluster.spec.max_worker_upgrade_count:
        hold_back(fleet, v, "upgrade")
        return True
    return False


def plan_workers(fleet: Fleet, controls_pending: bool) -> None:
    """Workers and bastions, in order, once the control plane is done."""
    spec = fleet.cluster.spec
    control_plane_pending = not fleet.first_ready or controls_pending
    may_start = not control_plane_pending and not fleet.halted
    workers = [v for v in fleet.views if not v.control and not v.deleting and v.ip is not None
               and v.name not in fleet.in_maintenance and v.name not in fleet.rebooting]
    preparing = sum(1 for v in workers if not v.released and _in_flight(v))
    deploying = sum(1 for v in workers if v.released and not v.settled and v.name not in fleet.drains)
    for v in workers:
        if not v.released:
            may_prepare = not fleet.halted and preparing < spec.max_worker_prepare_count
            may_deploy = may_start and deploying < spec.max_worker_deploy_count
            taken = _release_worker(fleet, v, may_prepare, may_deploy, control_plane_pending)
            preparing += taken == "prepare"
            deploying += taken == "deploy"
            continue
        if _upgrade_waits(fleet, v, may_start, control_plane_pending):
            continue
        if (full := fleet.full(v)) is None:
            continue
        patch = fleet.diff(v, full)
        if patch is None:
            finish(fleet, v)
        elif _in_flight(v):
            fleet.write(v, patch, f"{_change(v, full)} while in flight")
        elif not may_start:
            hold_back(fleet, v, "deploy", control_plane_pending=control_plane_pending)
        elif needs_drain(fleet, v, full.release):
            slot_free = fleet.cordoned < spec.max_worker_upgrade_count
            fleet.cordoned += drained_update(fleet, v, patch, slot_free)
        elif _gated(fleet, v, full):
            continue
        elif deploying < spec.max_worker_deploy_count:
            _start(fleet, v, patch, full)
            deploying += 1
        else:
            hold_back(fleet, v, "deploy")
