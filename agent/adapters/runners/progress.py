"""Ansible job events (as ansible-runner emits them) folded into progress events and a failure summary.

Pure: it sees event dicts, never the runner, so the mapping is tested with plain tables.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.api.execution import ItemEvent

_STATUS_OF = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_async_failed": "failed",
    "runner_on_skipped": "skipped",
    "runner_on_unreachable": "unreachable",
}
_MAX_REASON = 500


@dataclass(frozen=True)
class Failure:
    """The first task that failed for real (not ``ignore_errors``): what the operator needs to read first."""

    task: str
    host: str
    reason: str

    def describe(self) -> str:
        text = f'task "{self.task}" failed on host {self.host}'
        return f"{text}: {self.reason}" if self.reason else text


class PlaybookProgress:
    """Running totals per task status, and the first real failure."""

    def __init__(self, item: str) -> None:
        self._item = item
        self.counts: Counter[str] = Counter()
        self.failure: Failure | None = None

    def observe(self, event: Mapping[str, Any]) -> ItemEvent | None:
        """Fold one job event in; return the progress event to publish, if it is one worth publishing."""
        kind = event.get("event")
        data = event.get("event_data") or {}
        if kind == "playbook_on_task_start":
            task = str(data.get("name") or data.get("task") or "")
            play = str(data.get("play", ""))
            counts = dict(self.counts)
            return ItemEvent(self._item, "task_started", {"task": task, "play": play, "counts": counts})
        status = _STATUS_OF.get(str(kind))
        if status is None:
            return None
        res = data.get("res")
        result: Mapping[str, Any] = res if isinstance(res, Mapping) else {}
        if status == "ok" and result.get("changed"):
            status = "changed"
        elif status == "failed" and data.get("ignore_errors"):
            status = "ignored"
        self.counts[status] += 1
        task, host = str(data.get("task", "")), str(data.get("host", ""))
        if status in ("failed", "unreachable") and self.failure is None:
            self.failure = Failure(task, host, _reason(result))
        return ItemEvent(
            self._item, f"task_{status}", {"task": task, "host": host, "counts": dict(self.counts)}
        )

    def summary(self) -> str:
        return " ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))


def _reason(result: Mapping[str, Any]) -> str:
    """Ansible's own words for a failure: ``msg``, else stderr, cut to a size a status field can hold."""
    for key in ("msg", "stderr", "reason"):
        value = result.get(key)
        if value:
            text = str(value).strip()
            return text if len(text) <= _MAX_REASON else text[:_MAX_REASON] + "…"
    return ""
