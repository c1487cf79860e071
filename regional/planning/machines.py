"""What the planner needs to know about one machine, derived once per plan from its spec and status.

Every rule asks the same few questions (has it an address, was it released to deploy, are its items done,
is it leaving); deriving the answers once keeps a 5,000-machine plan to one pass over each machine's items.
"""

from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass

from agent.api.models import AssignedMachineType, LCMMachine, LCMMachineSpec, LCMMachineStatus
from agent.decisions.state import agent_upgrade_pending, counts_done, reboot_pending
from regional.planning.contract import FINALIZER, INDEX_ANNOTATION, SWARM_INIT, SWARM_ITEMS

OrderKey = tuple[int, int, str]


def order_key(machine: LCMMachine) -> OrderKey:
    """Machines with an integer ``lcm.mirantis.com/index`` first, by index, then the others; then by name."""
    raw = machine.metadata.annotations.get(INDEX_ANNOTATION)
    name = machine.metadata.name or ""
    try:
        return (0, int(raw), name) if raw is not None else (1, 0, name)
    except ValueError:
        return (1, 0, name)


@dataclass(frozen=True, slots=True)
class MachineView:
    machine: LCMMachine
    name: str
    spec: LCMMachineSpec
    status: LCMMachineStatus
    ip: str | None
    """Its InternalIP; None while Uninitialized."""
    type: AssignedMachineType
    order: OrderKey
    released: bool
    """The planner has given it more than its prepare items: it was let into the swarm rollout."""
    items_done: bool
    """Every item in its spec is done."""
    swarm_item: str | None
    """``swarm-init`` or ``swarm-join`` when its spec has one: a machine keeps its swarm role."""
    swarm_done: bool
    """Its swarm item is done: its node is in the swarm."""
    settled: bool
    """Items done and the agent runs the build the spec asks for: nothing more will happen by itself."""
    ready: bool
    """``machine_state`` would say Ready (settled, and no reboot pending)."""
    deleting: bool
    """Marked for deletion: ``prepareDeletion`` or a deletion timestamp. No longer part of the rollout."""

    @property
    def control(self) -> bool:
        return self.type == "control"

    @property
    def prepared(self) -> bool:
        """It may be let into the rollout: its prepare items are done, or its type has none and its agent
        has registered (without the latter a release with no prepare items would never deploy: an empty
        spec is never settled)."""
        return self.settled or (not self.spec.state_items and self.items_done and self.ip is not None
                                and not agent_upgrade_pending(self.spec, self.status))

    @property
    def joined(self) -> bool:
        """Its swarm item succeeded at some point (maybe with an older hash): its node is, or was, in."""
        slots = self.status.state_item_statuses
        return any(name in slots and slots[name].exit_code == 0 for name in SWARM_ITEMS)

    @property
    def leaving(self) -> bool:
        """Deleting while the planner's finalizer holds it: its node must leave the swarm first."""
        return self.deleting and FINALIZER in self.machine.metadata.finalizers


@dataclass(frozen=True, slots=True)
class _Facts:
    """What ``view`` derives from a machine's items: the costly part (a hash per item), worth keeping."""

    items_done: bool
    swarm_item: str | None
    swarm_done: bool


_FACTS: dict[int, tuple[weakref.ref[LCMMachine], _Facts]] = {}
"""``_facts`` per machine object, by identity: models are frozen, so an object's facts never change, and the
scheduler plans again and again over the same cached objects while only a few of them are replaced. Entries
leave with their object (the weak reference's callback), so the memo holds no machine alive."""


def _facts(machine: LCMMachine) -> _Facts:
    key = id(machine)
    known = _FACTS.get(key)
    if known is not None and known[0]() is machine:
        return known[1]
    spec, status = machine.spec, machine.status
    done = {item.name for item in spec.state_items if counts_done(spec, status, item)}
    names = [item.name for item in spec.state_items]
    swarm_item = SWARM_INIT if SWARM_INIT in names else next((n for n in names if n in SWARM_ITEMS), None)
    facts = _Facts(items_done=len(done) == len(names), swarm_item=swarm_item, swarm_done=swarm_item in done)
    _FACTS[key] = (weakref.ref(machine, functools.partial(_forget, key)), facts)
    return facts


def _forget(key: int, dead: weakref.ref[LCMMachine]) -> None:
    known = _FACTS.get(key)
    if known is not None and known[0] is dead:
        _FACTS.pop(key, None)


def view(machine: LCMMachine) -> MachineView | None:
    """The view of an assigned machine; None for an ``unassigned`` one, which is not the planner's yet."""
    spec, status = machine.spec, machine.status
    if spec.type == "unassigned":
        return None
    facts = _facts(machine)
    settled = bool(spec.state_items) and facts.items_done and not agent_upgrade_pending(spec, status)
    return MachineView(
        machine=machine,
        name=machine.metadata.name or "",
        spec=spec,
        status=status,
        ip=status.internal_ip,
        type=spec.type,
        order=order_key(machine),
        released=any(item.phase != "prepare" for item in spec.state_items),
        items_done=facts.items_done,
        swarm_item=facts.swarm_item,
        swarm_done=facts.swarm_done,
        settled=settled,
        ready=settled and not reboot_pending(spec, status),
        deleting=spec.prepare_deletion or machine.metadata.deletion_timestamp is not None,
    )
