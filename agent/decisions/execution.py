"""What the agent does next with its machine: run an item, report one, wait, or nothing.

A pure function of the LCMMachine, the agent's local record (its journal) and the time, so the question
"does this need applying" is answered in one place, tested with tables, and never tangled with the code that
applies it (rancher/system-agent's weak spot).

Sources of truth, and why both: the status in the API says what the cluster saw; the local record says what
happened on this machine even when the status write was lost (the API was down, or the agent was killed
between finishing an item and reporting it). So:

- an item the status shows done (hash match, exit code 0) is done;
- an item the status does not show done but the journal recorded as finished with exit code 0 for the same
  hash is *reported*, not re-run;
- an item that was started and never finished (status exit code ``EXIT_CODE_RUNNING``, or an in-progress
  mark in the journal) runs again with the next attempt number: a half-run item is never trusted;
- a failed item is retried after a capped exponential backoff from its ``finishedAt``; the jitter is derived
  from the item's hash and attempt, so the decision stays a pure function while machines still spread out;
- later items wait: items run in spec order, one phase after another;
- a slot that says done under lcm-agent's old hash of the same item (before it hashed as Mirantis does) is
  *rehashed*: its hash is rewritten, nothing runs (docs/api.md, "Upgrading from the old hash"); while the
  spec has no ``lcmType`` (the old scheduler still renders it), it only counts as done;
- a spec the rules cannot evaluate (``state.spec_error``: an agent version that is not semver, two items
  with one name) runs nothing; the reason is in ``status.specError``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from agent.api.models import EXIT_CODE_RUNNING, LCMMachine, StateItem, StateItemStatus
from agent.decisions.hashing import effective_params, item_hash
from agent.decisions.reporting import Slot, slots_patch, started_slot, with_slots
from agent.decisions.state import current_phase, done_in, done_under_legacy_hash, pending_items, spec_error
from agent.kits.backoff import Backoff
from agent.kits.timestamps import parse_time


@dataclass(frozen=True)
class LocalRecord:
    """What the agent's journal says, as plain values: decisions import no adapter."""

    finished: Mapping[str, tuple[str, int]]
    """Item name → (hash, exit code) of its last run on this machine."""
    in_progress: tuple[str, str, int] | None = None
    """(item, hash, attempt) started and not finished: the agent died mid-item."""


@dataclass(frozen=True)
class Idle:
    """Nothing to run until the object changes; ``reason`` is for logs and ``lcm-agent status``."""

    reason: str


@dataclass(frozen=True)
class Run:
    """Run ``item`` (attempt numbers count from 1) with its effective params."""

    item: StateItem
    hash: str
    attempt: int
    params: Mapping[str, str]


@dataclass(frozen=True)
class Report:
    """The item finished successfully here, but the status does not say so yet: write it."""

    item: StateItem
    hash: str
    attempt: int


@dataclass(frozen=True)
class Rehash:
    """Slots done under the old hash of their very item: rewrite their hashes (item name → new hash)."""

    hashes: Mapping[str, str]


@dataclass(frozen=True)
class Wait:
    """The next item failed; retry it (as ``attempt``) at ``until`` unless the object changes first."""

    item: StateItem
    until: datetime
    attempt: int


Step = Idle | Run | Report | Rehash | Wait


def next_step(machine: LCMMachine, local: LocalRecord, now: datetime, backoff: Backoff) -> Step:
    """The one thing to do next; see the module docstring for the rules."""
    spec, status = machine.spec, machine.status
    if spec.halt_agent:
        return Idle("halted by spec.haltAgent")
    if status.internal_ip is None:
        return Idle("not registered: no InternalIP reported yet")
    if error := spec_error(spec):
        return Idle(error)
    version = spec.agent_config.version
    if legacy := {item.name: item_hash(item, version) for item in spec.state_items
                  if not done_in(spec, status, item) and done_under_legacy_hash(spec, status, item)}:
        if spec.lcm_type:
            return Rehash(legacy)
        # The old scheduler still renders this spec: the slots stay as they are (its next rendering moves
        # params into the items, and the old hash of those is what the slots hold), and count as done.
        machine = with_slots(machine, {name: {"hash": digest} for name, digest in legacy.items()})
        status = machine.status
    phase = current_phase(spec, status)
    if phase is None:
        return Idle("all items done" if spec.state_items else "no state items assigned")
    item = pending_items(spec, status, phase)[0]
    digest = item_hash(item, version)
    entry = status.state_item_statuses.get(item.name)
    attempt = _last_attempt(item.name, digest, entry, local)
    if local.finished.get(item.name) == (digest, 0):
        return Report(item, digest, max(attempt, 1))
    if entry is not None and entry.hash == digest and entry.exit_code not in (0, EXIT_CODE_RUNNING):
        until = _retry_at(entry, digest, backoff)
        if until is not None and now < until:
            return Wait(item, until, attempt + 1)
    return Run(item, digest, attempt + 1, effective_params(item, spec.state_items_overwrites))


def handover(
    after: LCMMachine, finished: str, local: LocalRecord, now: datetime, backoff: Backoff,
) -> Run | None:
    """The item to start in the very write that reports ``finished``, ``after`` being the machine as that
    write leaves it: only a run of another item can go along (its "started" mark joins the outcome). A retry
    of ``finished`` itself never does: its mark would replace the failure in the same slot, and the failed
    attempt must reach the API (the scheduler counts failures to halt a rollout). Anything else is decided
    once the write has landed, as always."""
    step = next_step(after, local, now, backoff)
    return step if isinstance(step, Run) and step.item.name != finished else None


def outcome_write(
    machine: LCMMachine, finished: str, outcome: Slot, local: LocalRecord, now: datetime, backoff: Backoff,
    *, chain: bool = True,
) -> tuple[dict[str, Any], Run | None]:
    """The status patch reporting ``finished``'s ``outcome`` and, when ``chain`` and ``handover`` allow, the
    item to run straight after it, whose "started" mark (at ``now``) goes out in the same patch. The agent
    and the simulated agents both write through this, so they write the same."""
    following = handover(with_slots(machine, {finished: outcome}), finished, local, now, backoff) \
        if chain else None
    slots = {finished: outcome}
    if following is not None:
        slots[following.item.name] = started_slot(following.hash, following.attempt, now)
    return slots_patch(machine, slots), following


def rehash_patch(machine: LCMMachine, step: Rehash) -> dict[str, Any]:
    """The status write of a Rehash: only the slots' hashes change (and what derives from them)."""
    return slots_patch(machine, {name: {"hash": digest} for name, digest in step.hashes.items()})


def _last_attempt(name: str, digest: str, entry: StateItemStatus | None, local: LocalRecord) -> int:
    """The highest attempt either record knows for this very item (0 when it never ran at this hash)."""
    seen = entry.attempt if entry is not None and entry.hash == digest else 0
    if local.in_progress is not None and local.in_progress[:2] == (name, digest):
        seen = max(seen, local.in_progress[2])
    return seen


def _retry_at(entry: StateItemStatus, digest: str, backoff: Backoff) -> datetime | None:
    """When a failed run may be retried; None when the status has no usable finish time (retry now)."""
    finished = parse_time(entry.finished_at)
    if finished is None:
        return None
    delay = backoff.delay(max(entry.attempt - 1, 0), stable_uniform(f"{digest}/{entry.attempt}"))
    return finished + timedelta(seconds=delay)


def stable_uniform(seed: str) -> StableUniform:
    """Jitter that is a pure function of ``seed``: machines spread out, yet a decision can be recomputed."""
    fraction = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big") / 2.0**64
    return StableUniform(fraction)


@dataclass(frozen=True)
class StableUniform:
    """``random.uniform``'s signature, answering a fixed point of the range: deterministic jitter."""

    fraction: float

    def __call__(self, low: float, high: float) -> float:
        return low + (high - low) * self.fraction
