"""The agent's local journal: which items finished with which hash, and which one is running.

The LCMMachine status says the same, but the API server may be unreachable when the agent restarts, and a
status write may have been lost in the kill that caused the restart. The journal is committed to disk
before an item starts and after it ends, so a restart neither re-runs a finished item nor trusts a half-run
one: an in-progress mark found at start means "killed mid-item, run it again" (rancher/system-agent's rule).

It also holds the mark of a reboot the agent is carrying out (``RebootMark``), committed before the reboot
command runs: the agent that comes back finds it and reports the reboot done instead of rebooting again for
the same request.

One JSON file in the state directory, 0600, replaced atomically on every change. A file that cannot be read
back is moved aside and the agent starts empty: re-running idempotent items is cheap, a crash loop is not.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from agent.adapters.atomic import read_json, remove_stale_tmp, write_json
from agent.api.reboot_mark import RebootMark

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


class JournalFormatError(ValueError):
    """The file parses as JSON but is not a journal this agent understands."""


@dataclass(frozen=True)
class InProgress:
    """The item that was started and has not finished; ``attempt`` counts from 1."""

    item: str
    hash: str
    attempt: int
    started_at: datetime


@dataclass(frozen=True)
class Finished:
    """How an item last ended; the item is done for ``hash`` only when ``exit_code`` is 0."""

    hash: str
    exit_code: int
    finished_at: datetime


class Journal:
    """In-memory view of the file; every mutation is on disk before the method returns."""

    def __init__(
        self, path: Path, finished: Mapping[str, Finished] | None = None,
        in_progress: InProgress | None = None, reboot: RebootMark | None = None,
    ) -> None:
        self.path = path
        self._finished = dict(finished or {})
        self._in_progress = in_progress
        self._reboot = reboot

    @classmethod
    def load(cls, path: Path, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Journal:
        """The journal at ``path``; empty when there is none or when it is unreadable (then moved aside)."""
        remove_stale_tmp(path)
        try:
            raw = read_json(path)
        except FileNotFoundError:
            return cls(path)
        except ValueError as exc:  # not JSON, truncated, or not UTF-8
            return cls._quarantine(path, clock(), f"not JSON: {exc}")
        try:
            finished, in_progress = _decode(raw)
            reboot = _decode_reboot(raw.get("reboot"))
        except JournalFormatError as exc:
            return cls._quarantine(path, clock(), str(exc))
        return cls(path, finished, in_progress, reboot)

    @property
    def in_progress(self) -> InProgress | None:
        return self._in_progress

    @property
    def reboot(self) -> RebootMark | None:
        return self._reboot

    def mark_reboot(self, mark: RebootMark | None) -> None:
        """Commit the reboot mark (None: forget it) before acting on it."""
        write_json(self.path, _encode(self._finished, self._in_progress, mark))
        self._reboot = mark

    @property
    def finished(self) -> Mapping[str, Finished]:
        """Every item's last end, for ``lcm-agent status``."""
        return MappingProxyType(self._finished)

    def completed_hash(self, item: str) -> str | None:
        """The hash ``item`` last succeeded with; None when it never ran, failed last, or is running again."""
        done = self._finished.get(item)
        if done is None or done.exit_code != 0:
            return None
        if self._in_progress is not None and self._in_progress.item == item:
            return None
        return done.hash

    def mark_started(self, item: str, hash: str, attempt: int, now: datetime) -> None:
        """Commit "``item`` is running" before it runs, so a kill mid-item is noticed on restart."""
        if attempt < 1:
            raise ValueError(f"attempt counts from 1, got {attempt}")
        self._commit(self._finished, InProgress(item, hash, attempt, now))

    def mark_finished(self, item: str, hash: str, exit_code: int, now: datetime) -> None:
        """Record how ``item`` ended and clear its in-progress mark."""
        finished = {**self._finished, item: Finished(hash, exit_code, now)}
        self._commit(finished, self._cleared(item))

    def forget(self, item: str) -> None:
        """Drop everything about ``item`` (it left the spec); no write when nothing is known about it."""
        running = self._in_progress is not None and self._in_progress.item == item
        if item not in self._finished and not running:
            return
        self._commit({k: v for k, v in self._finished.items() if k != item}, self._cleared(item))

    def _cleared(self, item: str) -> InProgress | None:
        running = self._in_progress
        return None if running is not None and running.item == item else running

    def _commit(self, finished: dict[str, Finished], in_progress: InProgress | None) -> None:
        # Disk first: if the write fails, memory still matches what a restart would load.
        write_json(self.path, _encode(finished, in_progress, self._reboot))
        self._finished, self._in_progress = finished, in_progress

    @classmethod
    def _quarantine(cls, path: Path, now: datetime, reason: str) -> Journal:
        aside = path.with_name(f"{path.name}.corrupt-{now.astimezone(UTC):%Y%m%dT%H%M%S.%fZ}")
        os.replace(path, aside)
        log.error(
            "journal %s is unreadable (%s); moved it to %s and starting empty: finished items will run again",
            path, reason, aside,
        )
        return cls(path)


def _encode(
    finished: Mapping[str, Finished], in_progress: InProgress | None, reboot: RebootMark | None,
) -> dict[str, Any]:
    return {
        "version": FORMAT_VERSION,
        "finished": {
            item: {"hash": f.hash, "exitCode": f.exit_code, "finishedAt": f.finished_at.isoformat()}
            for item, f in finished.items()
        },
        "inProgress": None if in_progress is None else {
            "item": in_progress.item, "hash": in_progress.hash, "attempt": in_progress.attempt,
            "startedAt": in_progress.started_at.isoformat(),
        },
        "reboot": None if reboot is None else {
            "requestedAt": reboot.requested_at, "bootId": reboot.boot_id, "runId": reboot.run_id,
            "failed": reboot.failed,
        },
    }


def _decode(raw: Any) -> tuple[dict[str, Finished], InProgress | None]:
    if not isinstance(raw, dict) or raw.get("version") != FORMAT_VERSION:
        raise JournalFormatError(f"not a version {FORMAT_VERSION} journal")
    entries = raw.get("finished")
    if not isinstance(entries, dict):
        raise JournalFormatError("'finished' is not a map")
    finished = {
        str(item): Finished(_str(e, "hash"), _int(e, "exitCode"), _time(e, "finishedAt"))
        for item, e in entries.items()
    }
    mark = raw.get("inProgress")
    if mark is None:
        return finished, None
    return finished, InProgress(
        _str(mark, "item"), _str(mark, "hash"), _int(mark, "attempt"), _time(mark, "startedAt"),
    )


def _decode_reboot(mark: Any) -> RebootMark | None:
    """The reboot mark; absent in journals written before there was one."""
    if mark is None:
        return None
    return RebootMark(_str(mark, "requestedAt"), _str(mark, "bootId"), _str(mark, "runId"),
                      _str(mark, "failed"))


def _field(entry: Any, key: str, kind: type) -> Any:
    value = entry.get(key) if isinstance(entry, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise JournalFormatError(f"{key!r} is missing or not a {kind.__name__} in {entry!r}")
    return value


def _str(entry: Any, key: str) -> str:
    return str(_field(entry, key, str))


def _int(entry: Any, key: str) -> int:
    return int(_field(entry, key, int))


def _time(entry: Any, key: str) -> datetime:
    try:
        return datetime.fromisoformat(_str(entry, key))
    except ValueError:
        raise JournalFormatError(f"{key!r} is not an ISO 8601 time in {entry!r}") from None
