"""``lcm-agent apply``: run state items on this host without a cluster, for debugging playbooks.

The same decision (``next_step``) and the same runners as the daemon, fed from a YAML file instead of the
watched LCMMachine, with the local journal standing in for the status: a second apply skips what is done,
a failure stops the run (exit 1) and is retried by the next apply. Progress goes to the terminal.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from agent.adapters import runners
from agent.adapters.journal import Journal
from agent.api.execution import ItemEvent, ItemInput
from agent.api.models import InvalidObjectError, LCMMachine, StateItemStatus
from agent.decisions.execution import Idle, LocalRecord, Run, Step, next_step
from agent.decisions.hashing import item_hash
from agent.kits.backoff import Backoff

NO_RETRY_WAIT = Backoff(base=0.0, cap=0.0)
"""An operator at a terminal retries by running apply again: no backoff between applies."""


def _machine(items: Any, journal: Journal) -> LCMMachine:
    """A stand-in LCMMachine: the file's items, and the journal's successes as their statuses."""
    machine = LCMMachine.from_raw({
        "metadata": {"name": "local"},
        "spec": {"type": "unassigned", "stateItems": items},
        "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]},
    })
    statuses = {
        item.name: StateItemStatus(hash=done.hash, exit_code=done.exit_code, attempt=1)
        for item in machine.spec.state_items
        if (done := journal.finished.get(item.name)) is not None and done.hash == item_hash(item, "")
    }
    status = machine.status.model_copy(update={"state_item_statuses": statuses})
    return machine.model_copy(update={"status": status})


def _load(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read state items: {exc}") from None


def _print_event(event: ItemEvent) -> None:
    if event.kind.startswith("task_"):
        print(f"  {event.kind.removeprefix('task_'):>9}  {event.data.get('task', '')}", flush=True)


async def apply_items(path: Path, release_dir: Path, state_dir: Path) -> int:
    """Run the file's items in phase order; 0 when all are done, 1 on the first failure, 2 on bad input."""
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    journal = Journal.load(state_dir / "journal.json")
    try:
        items = _load(path)
        step: Step = Idle("")
        while True:
            machine = _machine(items, journal)
            mark = journal.in_progress
            local = LocalRecord({}, (mark.item, mark.hash, mark.attempt) if mark else None)
            step = next_step(machine, local, datetime.now(UTC), NO_RETRY_WAIT)
            if not isinstance(step, Run):
                break
            if not await _run(step, release_dir, state_dir, journal):
                return 1
    except (ValueError, InvalidObjectError) as exc:
        print(f"lcm-agent apply: {exc}", file=sys.stderr)
        return 2
    print(step.reason if isinstance(step, Idle) else step)
    return 0


async def _run(step: Run, release_dir: Path, state_dir: Path, journal: Journal) -> bool:
    item = step.item
    print(f"{item.phase}/{item.name} (attempt {step.attempt}) ...", flush=True)
    journal.mark_started(item.name, step.hash, step.attempt, datetime.now(UTC))
    result = await runners.run_item(
        ItemInput(machine="local", name=item.name, runner=item.runner, version=item.version, phase=item.phase,
                  params=step.params, attempt=step.attempt, release_dir=release_dir,
                  work_dir=state_dir / "runs"),
        _print_event,
    )
    journal.mark_finished(item.name, step.hash, result.exit_code, datetime.now(UTC))
    print(f"{item.phase}/{item.name}: {result.result} (exit code {result.exit_code})", flush=True)
    if not result.succeeded:
        print(result.message, file=sys.stderr)
    return result.succeeded
