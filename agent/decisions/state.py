"""A machine's state, as a pure function of its spec and status: Mirantis' own rules, then ours beside them.

The state is never stored as a decision input: the agent and the scheduler both recompute it from what is in
the object, so they cannot disagree and a lost status write cannot wedge a machine. ``status.state`` is what
Mirantis' ``LCMMachine.ComputeState()`` computes, so a Go client reading our objects and lcm-agent reading
Mirantis' agree (docs/api.md has the table, with the conformance vectors of tests/api/vectors):

1. not initialized (no ``InternalIP`` address, or a RHEL subscription named and not applied) →
   ``Uninitialized``;
2. a bastion → ``Ready``;
3. by ``spec.lcmType``: ``k0s`` → the items' state, ``Reboot`` when Ready and a reboot is asked;
   ``byo`` → only the components' versions (``Pending`` while either is empty, ``Upgrade`` while they
   differ, else ``Ready``); ``ucp`` → the items' state, and when that is Ready: ``Reboot`` when a reboot is
   asked, ``Deploy`` while either component version is empty, ``Upgrade`` while they differ; anything else
   → ``Uninitialized``;
4. the items' state: no items → ``Pending``; ``Prepare`` when there are prepare items (whether done or not),
   then ``Deploy``/``Ready`` by the deploy phase, then (unless Deploy) ``Reconfigure``/``Ready`` by the
   reconfigure phase. Items without a known phase count in none.

What lcm-agent knows beyond that (an agent self-upgrade pending, the OS asking for a reboot) is
``pending_operation``, a separate status field, never the state.

A spec the rules cannot evaluate (an agent version that is not semver: Mirantis' code panics) raises
InvalidVersionError from the functions that hash; ``spec_error`` names it for the status.
"""

from __future__ import annotations

from agent.api.gosemver import InvalidVersionError, parse
from agent.api.models import (
    PHASES,
    LCMMachineSpec,
    LCMMachineStatus,
    MachineState,
    Phase,
    StateItem,
    StateItemStatus,
)
from agent.decisions.hashing import item_hash, legacy_item_hash

_PHASE_STATES: dict[Phase, MachineState] = {"prepare": "Prepare", "deploy": "Deploy",
                                              "reconfigure": "Reconfigure"}


def item_done(spec_item: StateItem, status_entry: StateItemStatus | None, agent_version: str) -> bool:
    """Done means: the slot reports this very item (same hash) and its run succeeded (exit code 0)."""
    return (
        status_entry is not None
        and status_entry.exit_code == 0
        and status_entry.hash == item_hash(spec_item, agent_version)
    )


def done_under_legacy_hash(spec: LCMMachineSpec, status: LCMMachineStatus, item: StateItem) -> bool:
    """The slot says done under lcm-agent's old hash of this very item: done, awaiting the rewrite."""
    entry = status.state_item_statuses.get(item.name)
    return (entry is not None and entry.exit_code == 0
            and entry.hash == legacy_item_hash(item, spec.state_items_overwrites))


def done_in(spec: LCMMachineSpec, status: LCMMachineStatus, item: StateItem) -> bool:
    """``item_done`` for an item of this machine's spec, against its own status slot."""
    return item_done(item, status.state_item_statuses.get(item.name), spec.agent_config.version)


def counts_done(spec: LCMMachineSpec, status: LCMMachineStatus, item: StateItem) -> bool:
    """The planner's notion of done: by Mirantis' hash, or under the old hash while the agent has yet to
    rewrite it (so an upgrade of the scheduler before its agents holds no rollout back). Never raises: a
    spec whose agent version does not parse has nothing done."""
    try:
        if done_in(spec, status, item):
            return True
    except InvalidVersionError:
        return False
    return done_under_legacy_hash(spec, status, item)


def node_initialized(spec: LCMMachineSpec, status: LCMMachineStatus) -> bool:
    """``IsNodeInitialized``: an InternalIP reported (even an empty one), the RHEL subscription applied."""
    if not any(a.type == "InternalIP" for a in status.addresses):
        return False
    return not spec.rhel_license_subscription or status.rhel_license_applied is True


def phase_ready(spec: LCMMachineSpec, status: LCMMachineStatus, phase: str) -> bool:
    """``IsPhaseReady``: initialized, and every item of ``phase`` done."""
    return node_initialized(spec, status) and all(
        done_in(spec, status, item) for item in spec.state_items if item.phase == phase)


def ready(spec: LCMMachineSpec, status: LCMMachineStatus) -> bool:
    """``IsReady``: some status slot, initialized, and every item (of any phase, or none) done."""
    return bool(status.state_item_statuses) and node_initialized(spec, status) and all(
        done_in(spec, status, item) for item in spec.state_items)


def needs_reboot(spec: LCMMachineSpec, status: LCMMachineStatus) -> bool:
    """``NeedsReboot``: the spec asks for a reboot the agent has not completed."""
    return spec.reboot_required and not (status.reboot is not None and status.reboot.completed)


def items_state(spec: LCMMachineSpec, status: LCMMachineStatus) -> MachineState:
    """``ComputeItemsState``; see the module docstring, rule 4."""
    if not node_initialized(spec, status):
        return "Uninitialized"
    if not spec.state_items:
        return "Pending"
    phases = {item.phase for item in spec.state_items}
    state: MachineState = "Prepare" if "prepare" in phases else "Ready"
    if "deploy" in phases:
        state = "Ready" if phase_ready(spec, status, "deploy") else "Deploy"
    if "reconfigure" in phases and state != "Deploy":
        state = "Ready" if phase_ready(spec, status, "reconfigure") else "Reconfigure"
    return state


def machine_state(spec: LCMMachineSpec, status: LCMMachineStatus) -> MachineState:
    """``ComputeState``: what ``status.state`` shows; see the module docstring, rules 1 to 3."""
    if not node_initialized(spec, status):
        return "Uninitialized"
    if spec.type == "bastion":
        return "Ready"
    current, expected = status.components.ucp_version, spec.components.ucp_version
    if spec.lcm_type == "byo":
        if not expected or not current:
            return "Pending"
        return "Upgrade" if current != expected else "Ready"
    if spec.lcm_type not in ("ucp", "k0s"):
        return "Uninitialized"
    state = items_state(spec, status)
    if state != "Ready":
        return state
    if needs_reboot(spec, status):
        return "Reboot"
    if spec.lcm_type == "ucp" and (not current or not expected):
        return "Deploy"
    if spec.lcm_type == "ucp" and current != expected:
        return "Upgrade"
    return state


def pending_items(spec: LCMMachineSpec, status: LCMMachineStatus, phase: Phase) -> tuple[StateItem, ...]:
    """The items of ``phase`` not done yet, in spec order (the order the agent runs them)."""
    return tuple(item for item in spec.state_items if item.phase == phase and not done_in(spec, status, item))


def current_phase(spec: LCMMachineSpec, status: LCMMachineStatus) -> Phase | None:
    """The first phase with an item not done; None when every item is done (or there are none)."""
    return next((phase for phase in PHASES if pending_items(spec, status, phase)), None)


def reboot_pending(spec: LCMMachineSpec, status: LCMMachineStatus) -> bool:
    """Ours, wider than ``needs_reboot``: the scheduler asked for a reboot not completed, or the OS asks."""
    return needs_reboot(spec, status) or status.host_info.reboot_required


def agent_upgrade_pending(spec: LCMMachineSpec, status: LCMMachineStatus) -> bool:
    """A target agent version is set and the running agent reports another one."""
    wanted = spec.agent_config.version
    return bool(wanted) and status.agent_version != wanted


def pending_operation(spec: LCMMachineSpec, status: LCMMachineStatus) -> str:
    """``status.pendingOperation``: ``Reboot`` or ``AgentUpgrade`` once the items are done and lcm-agent's
    wider rules still wait for one (a reboot first: it disrupts workloads and must be drained for), else
    ``""``. Mirantis' state shows Ready for both; this field is where the difference is visible."""
    if not spec.state_items or current_phase(spec, status) is not None:
        return ""
    if reboot_pending(spec, status):
        return "Reboot"
    return "AgentUpgrade" if agent_upgrade_pending(spec, status) else ""


def spec_error(spec: LCMMachineSpec) -> str:
    """Why the agent must not act on this spec (``status.specError``), or ``""``: an agent version Mirantis'
    code cannot parse, or two items sharing a name (and so one status slot)."""
    if spec.agent_config.version:
        try:
            parse(spec.agent_config.version)
        except InvalidVersionError as exc:
            return f"spec.agentConfig.version: {exc}; nothing runs until it is a semantic version"
    names = [item.name for item in spec.state_items]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        return f"spec.stateItems: duplicate item names {duplicates}; nothing runs until they are unique"
    return ""


def progress(spec: LCMMachineSpec, status: LCMMachineStatus) -> tuple[int, int]:
    """(items done, items in spec), across all phases."""
    done = sum(1 for item in spec.state_items if done_in(spec, status, item))
    return done, len(spec.state_items)


def progress_text(spec: LCMMachineSpec, status: LCMMachineStatus) -> str:
    """``status.progress`` as the Items printer column shows it: ``"done/total"``."""
    done, total = progress(spec, status)
    return f"{done}/{total}"

