"""The quorum guard: no rule takes a manager out while the other reachable managers would lose Raft quorum.

Pure. The managers are the cluster's control machines whose node joined the swarm (its swarm item succeeded
once), leaving ones included until they are removed: Raft counts every member. A manager is reachable when
its agent is alive: its ``AgentReachable`` condition (written by the scheduler's liveness subscriber,
``regional.planning.liveness``) is not False; a machine without the condition counts as reachable, since
nothing says otherwise. The arithmetic is the executor's (``agent.decisions.disruption.lost_quorum``): the
executor checks again with what ``docker node ls`` says, as a second line.

Used before every control-machine disruption: an upgrade (drained or in place: an engine upgrade restarts
the manager), a removal (deletion demotes and removes it), a reboot and a maintenance (its scope lets the
operator reboot the machine). A machine held
here gets ``fleet.hold(v, "QuorumGuard", message)`` and waits; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.decisions.disruption import lost_quorum, quorum_message
from regional.planning.liveness import CONDITION
from regional.planning.machines import MachineView

REASON = "QuorumGuard"
"""The hold's reason (a condition reason: machine-readable)."""


def reachable(v: MachineView) -> bool:
    return not any(c.type == CONDITION and c.status == "False" for c in v.status.conditions)


def managers(views: Sequence[MachineView]) -> list[MachineView]:
    """The control machines whose node is a swarm member."""
    return [v for v in views if v.control and v.joined]


def quorum_refusal(views: Sequence[MachineView], v: MachineView, *, removal: bool) -> str:
    """Why taking ``v``'s manager out now would lose the quorum; "" when it would not (or ``v`` is no
    manager). ``removal``: it leaves the membership too (demote, remove), rather than for a while."""
    members = managers(views)
    if v not in members:
        return ""
    others = [m for m in members if m is not v]
    up = sum(1 for m in others if reachable(m))
    quorum = lost_quorum(len(members), up, removal=removal)
    if quorum is None:
        return ""
    down = [m.name for m in others if not reachable(m)]
    return quorum_message(f"manager {v.name}", removal, up, len(members), quorum, down)
