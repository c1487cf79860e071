"""The local journal: a restart neither re-runs finished items nor trusts a half-run one."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.adapters.journal import Finished, InProgress, Journal

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
T1 = datetime(2024, 5, 1, 12, 3, 30, 250000, tzinfo=UTC)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "journal.json"


def test_a_missing_journal_is_empty_and_nothing_is_written_until_a_change(path: Path) -> None:
    journal = Journal.load(path)
    assert journal.in_progress is None
    assert journal.completed_hash("docker") is None
    journal.forget("docker")
    assert not path.exists()


def test_started_mark_survives_a_restart_and_hides_an_older_success(path: Path) -> None:
    journal = Journal.load(path)
    journal.mark_started("docker", "h1", 1, T0)
    journal.mark_finished("docker", "h1", 0, T1)
    journal.mark_started("docker", "h2", 1, T1)  # the spec changed: re-running
    again = Journal.load(path)
    assert again.in_progress == InProgress("docker", "h2", 1, T1)
    assert again.completed_hash("docker") is None
    assert path.stat().st_mode & 0o777 == 0o600


def test_finished_items_are_remembered_with_exit_code_and_time(path: Path) -> None:
    journal = Journal.load(path)
    journal.mark_started("docker", "h1", 1, T0)
    journal.mark_finished("docker", "h1", 0, T1)
    journal.mark_started("swarm", "h9", 2, T0)
    journal.mark_finished("swarm", "h9", 3, T1)
    again = Journal.load(path)
    assert again.in_progress is None
    assert again.completed_hash("docker") == "h1"
    assert again.completed_hash("swarm") is None  # failed: not done
    assert dict(again.finished) == {"docker": Finished("h1", 0, T1), "swarm": Finished("h9", 3, T1)}


def test_forgetting_an_item_drops_its_result_and_its_mark(path: Path) -> None:
    journal = Journal.load(path)
    journal.mark_finished("old", "h1", 0, T0)
    journal.mark_started("old", "h2", 1, T1)
    journal.forget("old")
    again = Journal.load(path)
    assert again.in_progress is None
    assert dict(again.finished) == {}


def test_attempts_count_from_one(path: Path) -> None:
    with pytest.raises(ValueError, match="attempt"):
        Journal.load(path).mark_started("a", "h", 0, T0)


def test_a_failed_write_leaves_disk_and_memory_agreeing(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = Journal.load(path)
    journal.mark_finished("docker", "h1", 0, T0)

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        journal.mark_started("swarm", "h2", 1, T1)
    assert journal.in_progress is None
    monkeypatch.undo()
    assert Journal.load(path).in_progress is None
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b'{"version": 1, "finished": {"docker": {"hash": "h1", "exitCo',  # truncated
        b"\xff\xfe\x00garbage",
        b"[]",
        b'{"version": 2, "finished": {}, "inProgress": null}',
        b'{"version": 1, "finished": []}',
        b'{"version": 1, "finished": {"a": {"hash": 5, "exitCode": 0, "finishedAt": "2024-05-01T12:00:00"}}}',
        b'{"version": 1, "finished": {"a": {"hash": "h", "exitCode": true, "finishedAt": "2024-05-01"}}}',
        b'{"version": 1, "finished": {"a": {"hash": "h", "exitCode": 0, "finishedAt": "yesterday"}}}',
        b'{"version": 1, "finished": {}, "inProgress": {"item": "a", "hash": "h"}}',
    ],
)
def test_an_unreadable_journal_is_moved_aside_and_the_agent_starts_empty(
    path: Path, content: bytes, caplog: pytest.LogCaptureFixture,
) -> None:
    path.write_bytes(content)
    journal = Journal.load(path, clock=lambda: T1)
    assert journal.in_progress is None
    assert dict(journal.finished) == {}
    aside = path.with_name("journal.json.corrupt-20240501T120330.250000Z")
    assert aside.read_bytes() == content
    assert not path.exists()
    assert any(r.levelno == logging.ERROR and str(aside) in r.getMessage() for r in caplog.records)
    journal.mark_started("a", "h", 1, T0)  # and it keeps working
    assert Journal.load(path).in_progress == InProgress("a", "h", 1, T0)


def test_a_kill_mid_item_is_seen_as_in_progress_after_restart(path: Path) -> None:
    script = textwrap.dedent(f"""
        import os, signal
        from datetime import datetime, UTC
        from pathlib import Path
        from agent.adapters.journal import Journal
        journal = Journal.load(Path({str(path)!r}))
        now = datetime.now(UTC)
        journal.mark_started("prepare-host", "h1", 1, now)
        journal.mark_finished("prepare-host", "h1", 0, now)
        journal.mark_started("install-docker", "h2", 1, now)
        os.kill(os.getpid(), signal.SIGKILL)  # killed while the item runs
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, check=False, timeout=60)
    assert proc.returncode == -9
    journal = Journal.load(path)
    assert journal.completed_hash("prepare-host") == "h1"  # not re-run
    running = journal.in_progress
    assert running is not None
    # The agent runs it again, as attempt 2.
    assert (running.item, running.hash, running.attempt) == ("install-docker", "h2", 1)
