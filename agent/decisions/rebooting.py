"""What the agent does about ``spec.rebootRequired``: a pure function of the object and its journal's mark.

Mirantis' ``status.reboot`` is the agent's answer: ``requestedAt`` when it took the request on,
``completed`` once the machine came back, ``errorMessage`` when it could not reboot. The steps:

1. the spec asks, no answer yet: write ``requestedAt`` (the request now has a name: that time);
2. answered, no mark for it: commit the journal mark, then run the reboot command (the mark first, so an
   agent that comes back, or one restarted before the machine went down, never reboots again for it);
3. a mark for it from another boot (a real reboot changes the boot id): the machine is back; ``completed``
   is written once the engine passes the desired-state checks (``Back``). Where the reboot command
   restarts the node's engine without rebooting the kernel (the netns lab nodes share the host's), its
   success is the reboot done (``restart_is_reboot``);
4. a mark from this boot but another agent process, on a real machine: it did not reboot (the shutdown was
   cancelled, or the agent restarted before it): ``errorMessage`` says so, and it is not tried again;
5. the spec no longer asks: the answer and the mark are cleared, so the next request starts afresh.

The agent reboots only when the scheduler's spec asks, never on the OS's flag alone (the scheduler drains
first), and only once every item is done (Mirantis: "once its items are done") and the agent is not halted.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.api.models import LCMMachine
from agent.api.reboot_mark import RebootMark
from agent.decisions.state import current_phase


@dataclass(frozen=True)
class Here:
    """This boot and this agent process, and whether the reboot command restarts the engine alone."""

    boot_id: str
    run_id: str
    restart_is_reboot: bool = False


@dataclass(frozen=True)
class Answer:
    """Write ``status.reboot.requestedAt`` (step 1)."""


@dataclass(frozen=True)
class Reboot:
    """Commit the mark, then run the reboot command (step 2)."""

    requested_at: str


@dataclass(frozen=True)
class Back:
    """The machine rebooted: write ``completed`` once the engine is back (step 3)."""


@dataclass(frozen=True)
class Failed:
    """Write ``errorMessage`` (step 4, or the reboot command failed)."""

    message: str


@dataclass(frozen=True)
class Clear:
    """Clear the answer and the mark (step 5)."""


@dataclass(frozen=True)
class Nothing:
    reason: str


RebootStep = Answer | Reboot | Back | Failed | Clear | Nothing


def reboot_step(machine: LCMMachine, mark: RebootMark | None, here: Here) -> RebootStep:
    spec, answer = machine.spec, machine.status.reboot
    if not spec.reboot_required:
        return Clear() if answer is not None or mark is not None else Nothing("no reboot asked")
    if answer is not None and answer.completed:
        return Nothing("rebooted")
    if answer is None or not answer.requested_at:
        if current_phase(spec, machine.status) is not None or spec.halt_agent:
            return Nothing("a reboot is asked: waiting for the items to be done")
        return Answer()
    ours = mark if mark is not None and mark.requested_at == answer.requested_at else None
    if ours is not None and ours.failed:
        return Failed(ours.failed) if answer.error_message != ours.failed else Nothing("the reboot failed")
    if answer.error_message:
        return Nothing("the reboot failed")
    if ours is None:
        if current_phase(spec, machine.status) is not None or spec.halt_agent:
            return Nothing("a reboot is asked: waiting for the items to be done")
        return Reboot(answer.requested_at)
    if ours.boot_id != here.boot_id or here.restart_is_reboot:
        return Back()
    if ours.run_id == here.run_id:
        return Nothing("rebooting: waiting for the machine to go down")
    return Failed(f"the machine did not reboot: boot {here.boot_id} is the one the reboot was issued in")
