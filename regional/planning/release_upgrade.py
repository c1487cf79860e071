"""Changing machines already in the swarm: a new release rolls out drained, other changes in place.

A release change of a node that runs workloads goes: ``sd-<machine>`` with value true → wait for the
machine's ``status.swarmCordonDrain: cordondrained`` → write the new spec → wait until it is settled →
value false (undrain) → wait until the drain is undone (state ``status.value: "false"``, the machine's
``swarmCordonDrain`` unset) → delete the state. Control machines of a dedicated control plane run no
workloads (they joined with availability drain), so they are upgraded without a drain. Any other change
(settings, labels, the LCMCluster's own items) is written in place: it re-runs only the items it changes.
A control machine's move to another release takes its manager out (drained or not, its engine restarts):
it waits while the other reachable managers would lose their quorum (``regional.planning.quorum``).
"""

from __future__ import annotations

from typing import Any

from regional.planning.fleet import Fleet
from regional.planning.machines import MachineView
from regional.planning.maintenance_requests import ready_to_disrupt
from regional.planning.quorum import REASON, quorum_refusal
from regional.planning.waiting import hold_back


def runs_workloads(fleet: Fleet, v: MachineView) -> bool:
    """Its node may run workloads: a worker, or a control machine of a control plane that is not dedicated
    (those join with availability drain and run nothing)."""
    return (not v.control or not fleet.swarm.dedicated_control_plane) and v.swarm_item is not None


def needs_drain(fleet: Fleet, v: MachineView, release: str) -> bool:
    """A move to another release of a node that may run workloads."""
    return v.spec.release != release and runs_workloads(fleet, v)


def quorum_holds(fleet: Fleet, v: MachineView, release: str) -> bool:
    """A control machine's upgrade that would cost the swarm its quorum now: held, with the reason. One
    whose drain is in flight goes on (the executor checks the managers again before it drains)."""
    if not v.control or v.spec.release == release or v.name in fleet.drains:
        return False
    refusal = quorum_refusal(fleet.views, v, removal=False)
    if refusal:
        fleet.hold(v, REASON, refusal)
    return bool(refusal)


def drained_update(fleet: Fleet, v: MachineView, patch: dict[str, Any], slot_free: bool) -> bool:
    """One step of a drained upgrade; True when it starts a drain, which takes a slot of the budget."""
    reason = f"upgrade to {fleet.templates.release}"
    drain = fleet.drains.get(v.name)
    if drain is None:
        if fleet.upgrade_held(v):
            return False
        if not slot_free:
            hold_back(fleet, v, "control" if v.control else "upgrade")
            return False
        if fleet.executor is None:
            return False
        if ready_to_disrupt(fleet, v, "drain", upgrade=True):  # else it keeps the slot meanwhile
            fleet.upgrade_started(v)
            fleet.want("swarm-drain", v, True, f"drain before the {reason}")
        return True
    fleet.want("swarm-drain", v, True, f"drain before the {reason}")
    if drain.spec.requested and v.status.swarm_cordon_drain == "cordondrained":
        fleet.write(v, patch, f"{reason}, node drained")
    else:
        fleet.hold_drain(v, drain)
    return False


def finish(fleet: Fleet, v: MachineView) -> None:
    """The machine has the wanted spec: when it is settled, undrain it; when that is done, drop the drain.
    Settled and not drained, it counts as converged."""
    drain = fleet.drains.get(v.name)
    if drain is None:
        fleet.converged += v.settled
        return
    if drain.spec.requested:
        if v.settled:
            fleet.want("swarm-drain", v, False, "undrain: the machine is done")
    elif drain.status.value == "false" and v.status.swarm_cordon_drain is None:
        fleet.drop("swarm-drain", v)
