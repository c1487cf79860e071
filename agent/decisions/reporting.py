"""The status writes the agent makes, as JSON merge patches computed from values.

Each item costs at most two writes (started, finished), and each write carries everything the printer
columns and the scheduler read, recomputed from the status as it will be after the write: the item's slot,
``state``, ``progress`` and ``observedGeneration``. A merge patch of one slot of ``stateItemStatuses`` leaves
the other slots alone, so the agent never needs a read-modify-write cycle on the map.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from agent.api.hostinfo import rfc3339
from agent.api.models import EXIT_CODE_RUNNING, LCMMachine, LCMMachineStatus, StateItemStatus
from agent.decisions.state import machine_state, progress_text

MESSAGE_LIMIT = 4096
"""Characters of an item's message kept in status: enough for the failing task and a log tail, small
enough that a thousand failing machines do not bloat the API server's storage."""


def clip(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """Keep the end of a long message: the failure and the log tail are at the end."""
    return message if len(message) <= limit else "…" + message[-(limit - 1):]


def started_patch(machine: LCMMachine, name: str, digest: str, attempt: int, now: datetime) -> dict[str, Any]:
    """The "in progress" mark: hash and attempt committed before the item runs."""
    slot = {"hash": digest, "exitCode": EXIT_CODE_RUNNING, "attempt": attempt, "startedAt": rfc3339(now),
            "finishedAt": None, "message": "", "result": None}
    return _slot_patch(machine, name, slot)


def finished_patch(
    machine: LCMMachine, name: str, digest: str, attempt: int, *, exit_code: int, result: str, message: str,
    started_at: datetime | None, now: datetime,
) -> dict[str, Any]:
    """The outcome of a run (or of a run found finished in the journal and not yet reported).

    ``result`` is an object in the API (free-form, item-specific); the runner's outcome goes under
    ``outcome`` so runners can add their own keys beside it later.
    """
    slot: dict[str, Any] = {"hash": digest, "exitCode": exit_code, "attempt": attempt,
                            "result": {"outcome": result},
                            "message": clip(message), "finishedAt": rfc3339(now)}
    if started_at is not None:
        slot["startedAt"] = rfc3339(started_at)
    return _slot_patch(machine, name, slot)


def summary_patch(machine: LCMMachine, status_fields: Mapping[str, Any]) -> dict[str, Any]:
    """A status write of other fields (addresses, hostInfo, agentVersion) with state and progress updated."""
    status = _merged_status(machine.status, status_fields)
    return {"status": {**status_fields, **_derived(machine, status)}}


def _slot_patch(machine: LCMMachine, name: str, slot: Mapping[str, Any]) -> dict[str, Any]:
    after = dict(machine.status.state_item_statuses)
    after[name] = StateItemStatus.model_validate({k: v for k, v in slot.items() if v is not None})
    status = machine.status.model_copy(update={"state_item_statuses": after})
    return {"status": {"stateItemStatuses": {name: dict(slot)}, **_derived(machine, status)}}


def _merged_status(status: LCMMachineStatus, fields: Mapping[str, Any]) -> LCMMachineStatus:
    merged = {**status.model_dump(by_alias=True, exclude_unset=True), **fields}
    return LCMMachineStatus.model_validate(merged)


def _derived(machine: LCMMachine, status: LCMMachineStatus) -> dict[str, Any]:
    derived: dict[str, Any] = {
        "state": machine_state(machine.spec, status),
        "progress": progress_text(machine.spec, status),
    }
    if machine.metadata.generation is not None:
        derived["observedGeneration"] = machine.metadata.generation
    return derived

