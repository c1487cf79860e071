"""Files the agent writes are old or new after any crash, never torn, and never readable by others."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agent.adapters.atomic import read_json, remove_stale_tmp, write_atomic, write_json

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o600), (0o000, 0o600), (0o077, 0o640), (0o022, 0o400)])
def test_the_file_gets_exactly_the_requested_mode(tmp_path: Path, umask: int, mode: int) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")
    target.chmod(0o644)  # replacing a wide file does not inherit its mode
    old = os.umask(umask)
    try:
        write_atomic(target, b"new", mode)
    finally:
        os.umask(old)
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == mode


def test_content_is_never_on_disk_with_a_wider_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "secret"
    seen: list[tuple[int, bytes]] = []
    real_fsync = os.fsync

    def checking_fsync(fd: int) -> None:
        # At fsync the data is written but not yet renamed into place: look at the temporary file.
        for tmp in tmp_path.glob(".secret.*"):
            seen.append((tmp.stat().st_mode & 0o777, tmp.read_bytes()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", checking_fsync)
    write_atomic(target, b"token", 0o600)
    assert seen == [(0o600, b"token")]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = tmp_path / "state.json"
    write_json(target, {"v": 1})

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="Input/output"):
        write_json(target, {"v": 2})
    monkeypatch.undo()
    assert read_json(target) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_writers_killed_at_random_moments_never_leave_a_torn_file(tmp_path: Path) -> None:
    target = tmp_path / "journal.json"
    # Large payloads make each write take long enough for kills to land inside one.
    payloads = [bytes([ord("a") + i]) * 4_000_000 for i in range(3)]
    write_atomic(target, payloads[0])
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from agent.adapters.atomic import write_atomic
        payloads = [bytes([ord("a") + i]) * 4_000_000 for i in range(3)]
        print("writing", flush=True)
        i = 0
        while True:
            i += 1
            write_atomic(Path({str(target)!r}), payloads[i % 3])
    """)
    rng = random.Random(1)
    for _ in range(15):
        proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE)
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"writing\n"
        time.sleep(rng.uniform(0.0, 0.15))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        assert target.read_bytes() in payloads
    leftovers = remove_stale_tmp(target)
    assert leftovers, "no kill landed inside a write: the test proved nothing"
    assert all(p.name.startswith(".journal.json.") for p in leftovers)
    assert [p.name for p in tmp_path.iterdir()] == ["journal.json"]


def test_json_round_trips_in_a_stable_form(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    write_json(target, {"b": [1, 2], "a": None})
    assert read_json(target) == {"a": None, "b": [1, 2]}
    assert target.read_text().startswith('{\n  "a": null')  # sorted keys: diffs stay readable
