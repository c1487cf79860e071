"""The status writes the agent makes, as JSON merge patches computed from values.

Each item costs at most two writes (started, finished), and one when the item before it just finished: the
outcome of one item and the start of the next go out together (``slots_patch`` of both), which takes a
fleet's agents from two writes per item to little more than one. Each write carries everything the printer
columns and the scheduler read, recomputed from the status as it will be after the write: the items' slots,
``state``, ``progress``, ``release`` (once Ready) and ``observedGeneration``. Each also removes the slots of
items no longer in the spec, so item churn cannot grow the object without bound. A merge patch of some
slots of ``stateItemStatuses`` leaves the other slots alone, so the agent never needs a read-modify-write
cycle on the map.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from agent.api.gosemver import InvalidVersionError
from agent.api.models import EXIT_CODE_RUNNING, Components, LCMMachine, LCMMachineStatus, StateItemStatus
from agent.decisions.state import items_state, machine_state, pending_operation, progress_text, spec_error
from agent.kits.timestamps import rfc3339

MESSAGE_LIMIT = 4096
"""Characters of an item's message kept in status: enough for the failing task and a log tail, small
enough that a thousand failing machines do not bloat the API server's storage."""


def clip(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """Keep the end of a long message: the failure and the log tail are at the end."""
    return message if len(message) <= limit else "…" + message[-(limit - 1):]


Slot = Mapping[str, Any]
"""One item's ``stateItemStatuses`` entry as a merge patch (None clears a field)."""


def started_slot(digest: str, attempt: int, now: datetime) -> Slot:
    """The "in progress" mark: hash and attempt committed before the item runs."""
    return {"hash": digest, "exitCode": EXIT_CODE_RUNNING, "attempt": attempt, "startedAt": rfc3339(now),
            "finishedAt": None, "message": "", "result": None}


def finished_slot(
    digest: str, attempt: int, *, exit_code: int, result: str, message: str, started_at: datetime | None,
    now: datetime,
) -> Slot:
    """The outcome of a run (or of a run found finished in the journal and not yet reported).

    ``result`` is an object in the API (free-form, item-specific); the runner's outcome goes under
    ``outcome`` so runners can add their own keys beside it later.
    """
    slot: dict[str, Any] = {"hash": digest, "exitCode": exit_code, "attempt": attempt,
                            "result": {"outcome": result},
                            "message": clip(message), "finishedAt": rfc3339(now)}
    if started_at is not None:
        slot["startedAt"] = rfc3339(started_at)
    return slot


def started_patch(machine: LCMMachine, name: str, digest: str, attempt: int, now: datetime) -> dict[str, Any]:
    return slots_patch(machine, {name: started_slot(digest, attempt, now)})


def finished_patch(
    machine: LCMMachine, name: str, digest: str, attempt: int, *, exit_code: int, result: str, message: str,
    started_at: datetime | None, now: datetime,
) -> dict[str, Any]:
    slot = finished_slot(digest, attempt, exit_code=exit_code, result=result, message=message,
                         started_at=started_at, now=now)
    return slots_patch(machine, {name: slot})


def slots_patch(machine: LCMMachine, slots: Mapping[str, Slot]) -> dict[str, Any]:
    """The write of ``slots`` (item name → slot), with the fields derived from the status after it. Slots
    of items no longer in the spec are removed by the same write (a slot for such an item, the outcome of a
    run cancelled by its removal, is not written at all)."""
    kept = {name: slot for name, slot in slots.items() if name in _spec_names(machine)}
    status = _status_after(machine, kept)
    written: dict[str, Any] = dict.fromkeys(stale_slots(machine))
    written.update((name, dict(slot)) for name, slot in kept.items())
    return {"status": {"stateItemStatuses": written, **_derived(machine, status)}}


def with_slots(machine: LCMMachine, slots: Mapping[str, Slot]) -> LCMMachine:
    """The machine as it will be once ``slots`` are written: what the next decision is made on when it
    goes out in the same write."""
    return machine.model_copy(update={"status": _status_after(machine, slots)})


def summary_patch(machine: LCMMachine, status_fields: Mapping[str, Any]) -> dict[str, Any]:
    """A status write of other fields (addresses, hostInfo, agentVersion) with state and progress updated,
    and the slots of items no longer in the spec removed."""
    status = _status_after(machine, {}, _merged_status(machine.status, status_fields))
    patch: dict[str, Any] = {**status_fields, **_derived(machine, status)}
    if stale := stale_slots(machine):
        patch["stateItemStatuses"] = dict.fromkeys(stale)
    return {"status": patch}


def catch_up_patch(machine: LCMMachine) -> dict[str, Any] | None:
    """The write the agent owes when it has nothing to run or report: the spec changed without giving it an
    item to run (items removed, or ones already done restored), so the status still has slots of items
    gone from the spec, or a state, progress or release computed from an older spec. None when the status
    is up to date."""
    patch = summary_patch(machine, {})
    written, status = patch["status"], machine.status
    current = (status.state, status.progress, status.release)
    # These are in a patch only when they change; state, progress and release are always recomputed.
    changed = written.keys() & {"stateItemStatuses", "specError", "pendingOperation", "components"}
    after = (written.get("state"), written.get("progress"), written.get("release", status.release))
    if not changed and after == current:
        return None
    return patch


def stale_slots(machine: LCMMachine) -> list[str]:
    """Items with a status slot and no place in the spec: the slot only grows the object (a real API server
    refuses objects over about 1.5 MiB, and every write and watch event carries it)."""
    names = _spec_names(machine)
    return sorted(name for name in machine.status.state_item_statuses if name not in names)


def _spec_names(machine: LCMMachine) -> set[str]:
    return {item.name for item in machine.spec.state_items}


def _status_after(
    machine: LCMMachine, slots: Mapping[str, Slot], status: LCMMachineStatus | None = None,
) -> LCMMachineStatus:
    """``status`` (the machine's by default) once ``slots`` are written and stale slots removed."""
    status = machine.status if status is None else status
    names = _spec_names(machine)
    after = {name: entry for name, entry in status.state_item_statuses.items() if name in names}
    for name, slot in slots.items():
        before = after.get(name)
        merged = {**(before.model_dump(by_alias=True, exclude_unset=True) if before else {}), **slot}
        after[name] = StateItemStatus.model_validate({k: v for k, v in merged.items() if v is not None})
    return status.model_copy(update={"state_item_statuses": after})


def _merged_status(status: LCMMachineStatus, fields: Mapping[str, Any]) -> LCMMachineStatus:
    merged = {**status.model_dump(by_alias=True, exclude_unset=True), **fields}
    return LCMMachineStatus.model_validate(merged)


def _derived(machine: LCMMachine, status: LCMMachineStatus) -> dict[str, Any]:
    """The fields recomputed on every write: Mirantis' ``state``, and lcm-agent's extensions (``progress``,
    ``pendingOperation``, ``specError``), all derived from spec and status. ``components.ucpVersion`` is the
    stack version the node converged to: the spec's, once every item is done under it."""
    spec = machine.spec
    derived: dict[str, Any] = {}
    error = spec_error(spec)
    if error != machine.status.spec_error:
        derived["specError"] = error or None
    if error:
        try:
            derived["state"] = machine_state(spec, status)
        except InvalidVersionError:
            derived["state"] = None
        return derived
    wanted = spec.components.ucp_version
    if wanted and status.components.ucp_version != wanted and items_state(spec, status) == "Ready":
        derived["components"] = {"ucpVersion": wanted}
        status = status.model_copy(update={"components": Components(ucp_version=wanted)})
    derived |= {"state": machine_state(spec, status), "progress": progress_text(spec, status)}
    if derived["state"] == "Ready" and spec.release:
        # docs/api.md: the release the machine was last Ready with; it stays while the next one rolls out.
        derived["release"] = spec.release
    pending = pending_operation(spec, status)
    if pending != machine.status.pending_operation:
        derived["pendingOperation"] = pending or None
    if machine.metadata.generation is not None:
        derived["observedGeneration"] = machine.metadata.generation
    return derived


def condition_patch(
    conditions: Iterable[Mapping[str, Any]], kind: str, status: str, reason: str, message: str, now: datetime,
    *, generation: int | None = None, status_only: bool = False,
) -> dict[str, Any] | None:
    """The status patch setting condition ``kind`` among ``conditions`` (the whole list: a merge patch
    replaces lists), or None when it already says this; ``status_only``: a new reason or message alone is
    not worth a write (the scheduler's liveness: offline for another reason is still offline). The
    transition time moves only when ``status`` does; ``generation`` becomes ``observedGeneration``."""
    listed = [dict(c) for c in conditions]
    current = next((c for c in listed if c.get("type") == kind), None)
    wanted = {"status": status} if status_only else {"status": status, "reason": reason, "message": message}
    if current is not None and all(current.get(key) == value for key, value in wanted.items()):
        return None
    since = None
    if current is not None and current.get("status") == status:
        since = current.get("lastTransitionTime")
    mine: dict[str, Any] = {"type": kind, "status": status, "reason": reason, "message": message,
                            "lastTransitionTime": since or rfc3339(now)}
    if generation is not None:
        mine["observedGeneration"] = generation
    others = [c for c in listed if c.get("type") != kind]
    return {"status": {"conditions": [*others, mine]}}


def machine_conditions(machine: LCMMachine) -> list[dict[str, Any]]:
    """The machine's conditions as the JSON it holds (fields a condition does not have stay absent)."""
    return [c.model_dump(mode="json", by_alias=True, exclude_unset=True) for c in machine.status.conditions]


def find_condition(machine: LCMMachine, kind: str) -> dict[str, Any] | None:
    """Condition ``kind`` of the machine's status as JSON, or None."""
    found = next((c for c in machine.status.conditions if c.type == kind), None)
    return found.model_dump(mode="json", by_alias=True) if found is not None else None
