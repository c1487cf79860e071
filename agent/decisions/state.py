"""A machine's state, as a pure function of its spec and status.

The state is never stored as a decision input: the agent and the scheduler both recompute it from what is in
the object, so they cannot disagree and a lost status write cannot wedge a machine. Precedence, first match
wins (the table in docs/api.md):

1. no InternalIP address in status → ``Uninitialized`` (the agent has not reported in);
2. no state items in spec → ``Pending`` (the scheduler has not assigned any);
3. the first phase, in the order prepare → deploy → reconfigure, with an item not done → ``Prepare``,
   ``Deploy`` or ``Reconfigure``;
4. all items done and a reboot required → ``Reboot``;
5. all items done and the agent runs another version than ``spec.agentConfig.version`` → ``Upgrade``;
6. otherwise ``Ready``.

Reboot comes before Upgrade as in mcc-api: a reboot disrupts workloads and must be seen (and drained for);
an agent self-upgrade is a process restart that can follow it.
"""

from __future__ import annotations

from collections.abc import Mapping

from agent.api.models import (
    PHASES,
    LCMMachineSpec,
    LCMMachineStatus,
    MachineState,
    Phase,
    StateItem,
    StateItemStatus,
)
from agent.decisions.hashing import item_hash

_PHASE_STATES: dict[Phase, MachineState] = {
    "prepare": "Prepare",
    "deploy": "Deploy",
    "reconfigure": "Reconfigure",
}


def item_done(
    spec_item: StateItem, status_entry: StateItemStatus | None, overwrites: Mapping[str, Mapping[str, str]]
) -> bool:
    """Done means: the slot reports this very item (same hash) and its run succeeded (exit code 0)."""
    return (
        status_entry is not None
        and status_entry.exit_code == 0
        and status_entry.hash == item_hash(spec_item, overwrites)
    )


def _done(spec: LCMMachineSpec, status: LCMMachineStatus, item: StateItem) -> bool:
    entry = status.state_item_statuses.get(item.name)
    return item_done(item, entry, spec.state_items_overwrites)


def pending_items(spec: LCMMachineSpec, status: LCMMachineStatus, phase: Phase) -> tuple[StateItem, ...]:
    """The items of ``phase`` not done yet, in spec order (the order the agent runs them)."""
    return tuple(item for item in spec.state_items if item.phase == phase and not _done(spec, status, item))


def current_phase(spec: LCMMachineSpec, status: LCMMachineStatus) -> Phase | None:
    """The first phase with an item not done; None when every item is done (or there are none)."""
    return next((phase for phase in PHASES if pending_items(spec, status, phase)), None)


def reboot_pending(spec: LCMMachineSpec, status: LCMMachineStatus) -> bool:
    """The scheduler asked for a reboot the agent has not completed, or the OS itself asks for one."""
    asked = spec.reboot_required and not (status.reboot is not None and status.reboot.completed)
    return asked or status.host_info.reboot_required


def agent_upgrade_pending(spec: LCMMachineSpec, status: LCMMachineStatus) -> bool:
    """A target agent version is set and the running agent reports another one."""
    wanted = spec.agent_config.version
    return bool(wanted) and status.agent_version != wanted


def machine_state(spec: LCMMachineSpec, status: LCMMachineStatus) -> MachineState:
    """The state ``status.state`` should show; see the module docstring for the precedence."""
    if status.internal_ip is None:
        return "Uninitialized"
    if not spec.state_items:
        return "Pending"
    phase = current_phase(spec, status)
    if phase is not None:
        return _PHASE_STATES[phase]
    if reboot_pending(spec, status):
        return "Reboot"
    if agent_upgrade_pending(spec, status):
        return "Upgrade"
    return "Ready"


def progress(spec: LCMMachineSpec, status: LCMMachineStatus) -> tuple[int, int]:
    """(items done, items in spec), across all phases."""
    done = sum(1 for item in spec.state_items if _done(spec, status, item))
    return done, len(spec.state_items)


def progress_text(spec: LCMMachineSpec, status: LCMMachineStatus) -> str:
    """``status.progress`` as the Items printer column shows it: ``"done/total"``."""
    done, total = progress(spec, status)
    return f"{done}/{total}"
