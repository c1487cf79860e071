"""What an operator wants to read in ``kubectl describe``: the Events a change of an object is worth.

The scheduler's watch hands every change of an LCMMachine or LCMCluster (the object before and after) to
these functions; they say which Events it makes, and the scheduler's ``EventRecorder`` sends them. Pure:
raw objects in (a malformed one is read as far as it goes: an Event is a courtesy, never a verdict),
notices out.

One Event per change, not per retry: a message never carries an attempt number or a time, so the same
failure repeated by a retry loop is the same Event, whose ``count`` the recorder raises; a different
failure, or a change back, is a new one. An object seen for the first time (the scheduler's first list)
is not a change and makes none.

Machines: an item failed (``ItemFailed``, the end of its message), an item retried after a failure
(``ItemRetried``), drained or undrained for maintenance (``Drained``/``Undrained``), the reconciler
repaired drift or failed to (``Repaired``/``RepairFailed``, from the agent's ``Reconciled`` condition).
Clusters: the rollout paused or resumed (the ``lcm.mirantis.com/paused`` annotation), halted or moving
again (``status.lcmOperationStuck``, with the ``OperationStuck`` condition's message).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from agent.api.models import EXIT_CODE_RUNNING
from agent.decisions.reporting import clip
from regional.planning.contract import PAUSED_ANNOTATION

MESSAGE_LIMIT = 400
"""Characters of an item's failure message quoted: its end, where the error is."""


@dataclass(frozen=True)
class Notice:
    reason: str
    message: str
    type: Literal["Normal", "Warning"] = "Normal"


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        obj = obj.get(key) if isinstance(obj, Mapping) else None
    return obj


def _condition(obj: Any, kind: str) -> Mapping[str, Any]:
    for c in _get(obj, "status", "conditions") or []:
        if isinstance(c, Mapping) and c.get("type") == kind:
            return c
    return {}


def _item_notices(old: Any, new: Any) -> list[Notice]:
    before = _get(old, "status", "stateItemStatuses") or {}
    after = _get(new, "status", "stateItemStatuses") or {}
    out = []
    for name, entry in after.items() if isinstance(after, Mapping) else ():
        was = before.get(name) if isinstance(before, Mapping) else None
        if not isinstance(entry, Mapping) or entry == was:
            continue
        code, attempt = entry.get("exitCode"), entry.get("attempt")
        was = was if isinstance(was, Mapping) else {}
        same_run = was.get("attempt") == attempt and was.get("hash") == entry.get("hash")
        if isinstance(code, int) and code not in (0, EXIT_CODE_RUNNING) and not (
                same_run and was.get("exitCode") == code):
            text = clip(str(entry.get("message") or f"exit code {code}"), MESSAGE_LIMIT)
            out.append(Notice("ItemFailed", f"item {name} failed: {text}", "Warning"))
        elif code == EXIT_CODE_RUNNING and isinstance(attempt, int) and attempt > 1 and not same_run:
            out.append(Notice("ItemRetried", f"item {name} is run again after a failure"))
    return out


def _drain_notices(old: Any, new: Any) -> list[Notice]:
    before, after = _get(old, "status", "swarmCordonDrain"), _get(new, "status", "swarmCordonDrain")
    if after == before:
        return []
    if after == "cordondrained":
        return [Notice("Drained", "the node is cordoned and drained for maintenance")]
    if before == "cordondrained" and after is None:
        return [Notice("Undrained", "the node is back in service after maintenance")]
    return []


def _repair_notices(old: Any, new: Any) -> list[Notice]:
    before, after = _condition(old, "Reconciled"), _condition(new, "Reconciled")
    said = [(c.get("status"), c.get("message")) for c in (before, after)]
    if not after or said[0] == said[1]:
        return []
    message = str(after.get("message") or "")
    if after.get("status") == "True" and message.startswith("converged "):
        return [Notice("Repaired", f"the reconciler repaired drift: {message}")]
    if after.get("status") == "False":
        return [Notice("RepairFailed", f"the reconciler could not repair drift: {message}", "Warning")]
    return []


def machine_notices(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[Notice]:
    """The Events a change of an LCMMachine is worth (none for one first seen or deleted)."""
    if old is None or new is None:
        return []
    return [*_item_notices(old, new), *_drain_notices(old, new), *_repair_notices(old, new)]


def cluster_notices(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[Notice]:
    """The Events a change of an LCMCluster is worth (none for one first seen or deleted)."""
    if old is None or new is None:
        return []
    out = []
    paused = [_get(o, "metadata", "annotations", PAUSED_ANNOTATION) == "true" for o in (old, new)]
    if paused == [False, True]:
        out.append(Notice("RolloutPaused", f"{PAUSED_ANNOTATION} is \"true\": nothing is changed"))
    elif paused == [True, False]:
        out.append(Notice("RolloutResumed", f"{PAUSED_ANNOTATION} was removed: the rollout goes on"))
    halted = [_get(o, "status", "lcmOperationStuck") is True for o in (old, new)]
    if halted == [False, True]:
        stuck = str(_condition(new, "OperationStuck").get("message") or "")
        message = f"the rollout stopped: {stuck}" if stuck else "the rollout stopped"
        out.append(Notice("RolloutHalted", message, "Warning"))
    elif halted == [True, False]:
        out.append(Notice("RolloutResumed", "nothing is stuck any more: the rollout goes on"))
    return out
