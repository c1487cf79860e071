"""Who creates the swarm, who manages it, who carries out drains and removals.

The first control machine is the lowest by ``lcm.mirantis.com/index`` then name (docs/swarm.md), but only
while there is no swarm yet: once a machine carries ``swarm-init`` it stays the first, and once the swarm
exists without it (its initialiser left) the first member manager takes its place. A new machine with a
lower index must never start a second swarm.
"""

from __future__ import annotations

from collections.abc import Sequence

from regional.planning.contract import SWARM_INIT, SWARM_JOIN, SWARM_PORT
from regional.planning.machines import MachineView


def first_control(views: Sequence[MachineView]) -> MachineView | None:
    """The first control machine among ``views`` (in order); None when the swarm has no manager left."""
    staying = [v for v in views if not v.deleting]
    controls = [v for v in staying if v.control]
    for role in (SWARM_INIT, SWARM_JOIN):
        carrier = next((v for v in controls if v.swarm_item == role), None)
        if carrier is not None:
            return carrier
    if any(v.swarm_item for v in staying):
        return None  # workers are in a swarm whose managers are all gone: nobody can admit anyone
    return controls[0] if controls else None


def first_ready(first: MachineView | None) -> bool:
    """The first manager is up: its swarm item done and nothing else pending, so its join tokens are out."""
    return first is not None and first.ip is not None and first.settled and first.swarm_done


def ready_managers(views: Sequence[MachineView], first: MachineView | None) -> tuple[MachineView, ...]:
    """Control machines in the swarm and settled, the first control machine first: whom a new node joins."""
    managers = [
        v for v in views
        if v.control and not v.deleting and v.ip and v.settled and v.swarm_done and v is not first
    ]
    return ((first,) if first_ready(first) and first is not None else ()) + tuple(managers)


def manager_addresses(managers: Sequence[MachineView]) -> str:
    """The ``managerAddresses`` param: ``ip:2377`` of each manager, comma-separated."""
    return ",".join(f"{v.ip}:{SWARM_PORT}" for v in managers)
