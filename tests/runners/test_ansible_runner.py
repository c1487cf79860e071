"""The ansible runner, with real ansible-runner running real playbooks against localhost."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import signal
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import pytest
from runner_harness import FAST, Runs, command_lines, group_members, zombie_children

from agent.adapters.runners import RunnerSettings
from testbed.lab.leaks import files_containing


async def test_success_reports_counts_events_and_extra_vars(runs: Runs) -> None:
    item = runs.item("ansible", {"playbook": "env.yml", "colour": "blue"}, name="show")
    result = await runs.run(item)
    assert (result.result, result.exit_code) == ("success", 0)
    assert result.message == "env.yml: ok=1"
    assert "param=[blue] item=[show]" in result.log_tail
    assert runs.kinds() == ["started", "task_started", "task_ok", "finished"]
    assert runs.events[2].data == {"task": "show the daemon variable and an extra var", "host": "localhost",
                                   "counts": {"ok": 1}}


async def test_failing_task_is_named_with_host_and_log_tail_and_secret_redacted(runs: Runs) -> None:
    secret = secrets.token_urlsafe(16)
    item = runs.item("ansible", {"playbook": "fail.yml"}, secrets={"token": secret})
    result = await runs.run(item)
    assert (result.result, result.exit_code) == ("failed", 2)
    headline, _, tail = result.message.partition("\n")
    assert headline == 'task "break on purpose" failed on host localhost: non-zero return code'
    assert "TASK [break on purpose]" in tail
    assert "leaked ***" in result.log_tail  # the careless task printed it; every report masks it
    assert "task_failed" in runs.kinds()
    assert files_containing(runs.work_dir, secret.encode()) == []


@pytest.mark.parametrize(
    ("playbook", "reason"),
    [
        ("../../conftest.py", "resolves outside the release directory"),
        ("playbooks/../../../etc/passwd", "resolves outside the release directory"),
        ("/etc/passwd", "is absolute"),
        ("escape.yml", "resolves outside the release directory"),  # a symlink pointing out
        ("missing.yml", "not found in the release directory"),
        ("", 'needs param "playbook"'),
    ],
)
async def test_playbook_outside_the_release_is_refused(
    runs: Runs, tmp_path: Path, playbook: str, reason: str
) -> None:
    release = tmp_path / "release"
    (release / "playbooks").mkdir(parents=True)
    outside = tmp_path / "outside.yml"
    outside.write_text((Path(__file__).parent / "playbooks" / "ok.yml").read_text())
    (release / "escape.yml").symlink_to(outside)
    runs.release_dir = release
    result = await runs.run(runs.item("ansible", {"playbook": playbook}))
    assert (result.result, result.exit_code) == ("failed", 2)
    assert reason in result.message
    assert not (runs.work_dir / "artifacts").exists()  # refused before anything ran


async def test_symlink_inside_the_release_is_followed(runs: Runs, tmp_path: Path) -> None:
    release = tmp_path / "release"
    release.mkdir()
    (release / "real.yml").write_text((Path(__file__).parent / "playbooks" / "ok.yml").read_text())
    (release / "alias.yml").symlink_to(release / "real.yml")
    runs.release_dir = release
    assert (await runs.run(runs.item("ansible", {"playbook": "alias.yml"}))).result == "success"


async def test_daemon_environment_does_not_reach_playbook_or_artifacts(
    runs: Runs, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token = secrets.token_urlsafe(16)
    monkeypatch.setenv("LCM_DAEMON_TOKEN", token)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    result = await runs.run(runs.item("ansible", {"playbook": "env.yml", "colour": "red"}))
    assert "daemon=[]" in result.log_tail
    assert files_containing(runs.work_dir, token.encode()) == []
    assert not (tmp_path / "home" / ".ansible").exists()  # Ansible's home and temp files stay in work_dir


@pytest.fixture
def custom_handlers() -> Iterator[dict[int, Callable[[int, FrameType | None], None]]]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise AssertionError("not expected to be called")

    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    for s in saved:
        signal.signal(s, handler)
    yield dict.fromkeys(saved, handler)
    for s, previous in saved.items():
        signal.signal(s, previous)


async def test_signal_handlers_of_the_daemon_are_left_alone(
    runs: Runs, custom_handlers: dict[int, Callable[[int, FrameType | None], None]]
) -> None:
    assert (await runs.run(runs.item("ansible", {"playbook": "ok.yml"}))).result == "success"
    for signum, handler in custom_handlers.items():
        assert signal.getsignal(signum) is handler


def _pid_in(path: Path) -> int | None:
    text = path.read_text().strip() if path.exists() else ""
    return int(text) if text else None


async def _wait_for(path: Path, seconds: float = 60.0) -> int:
    """The pid the playbook's shell wrote to ``path``."""
    for _ in range(int(seconds * 20)):
        if (pid := _pid_in(path)) is not None:
            return pid
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


async def test_cancel_mid_run_kills_the_whole_process_group(
    runs: Runs, tmp_path: Path
) -> None:
    marker = tmp_path / "shell.pid"
    item = runs.item("ansible", {"playbook": "sleep.yml", "marker": str(marker)})
    task = asyncio.create_task(runs.run(item))
    shell = await _wait_for(marker)
    group = os.getpgid(shell)
    task.cancel()
    result = await task
    assert (result.result, result.exit_code) == ("cancelled", 130)
    assert group_members(group) == []  # the SIGTERM-ignoring shell and sleep included: no orphans
    assert zombie_children() == []
    assert "TASK [hang with a child that ignores SIGTERM]" in result.log_tail
    assert runs.kinds()[-1] == "finished"


async def test_timeout_stops_the_playbook(
    runs: Runs, tmp_path: Path
) -> None:
    marker = tmp_path / "shell.pid"
    item = runs.item("ansible", {"playbook": "sleep.yml", "marker": str(marker)}, timeout=8.0)
    task = asyncio.create_task(runs.run(item))
    group = os.getpgid(await _wait_for(marker))
    result = await task
    assert (result.result, result.exit_code) == ("timeout", 124)
    assert result.message.startswith("timed out after 8.0s")
    assert group_members(group) == []
    assert zombie_children() == []


async def test_secret_reaches_the_playbook_but_never_disk_or_argv(
    runs: Runs
) -> None:
    secret = "tok-" + secrets.token_urlsafe(24)
    hold = "2.13"  # a sleep no other process runs: seeing it proves a scan looked while the module ran
    params = {"playbook": "secret.yml", "token_sha256": hashlib.sha256(secret.encode()).hexdigest(),
              "hold_seconds": hold}
    task = asyncio.create_task(runs.run(runs.item("ansible", params, secrets={"token": secret})))
    module_seen = False
    while not task.done():  # while the playbook (and its module's shell) runs
        lines = command_lines()
        assert not any(secret.encode() in line for line in lines)
        assert files_containing(runs.work_dir, secret.encode()) == []
        module_seen = module_seen or f"sleep\0{hold}\0".encode() in lines
        await asyncio.sleep(0.1)
    result = task.result()
    assert result.result == "success", result.message  # the playbook checked the value it received
    assert module_seen  # the scans ran while the secret was in the module's environment
    assert files_containing(runs.work_dir, secret.encode()) == []
    command = json.loads((runs.work_dir / "artifacts" / "item" / "1" / "command").read_text())
    assert "LCM_SECRET_TOKEN" not in command["env"]


async def test_artifacts_are_rotated_and_private(runs: Runs) -> None:
    settings = RunnerSettings(keep_attempts=2, grace=FAST.grace, poll_interval=FAST.poll_interval)
    for attempt in (1, 2, 3, 4):
        result = await runs.run(runs.item("ansible", {"playbook": "ok.yml"}, attempt=attempt), settings)
        assert result.result == "success"
    item_dir = runs.work_dir / "artifacts" / "item"
    assert sorted(p.name for p in item_dir.iterdir()) == ["3", "4"]
    assert (item_dir / "4" / "stdout").read_text().count("TASK [say hello]") == 1
    assert any((item_dir / "4" / "job_events").iterdir())
    for path in [item_dir, *item_dir.rglob("*")]:
        expected = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


async def test_secret_names_that_collide_are_refused(runs: Runs) -> None:
    item = runs.item("ansible", {"playbook": "ok.yml"}, secrets={"join-token": "a1b2", "join_token": "c3d4"})
    result = await runs.run(item)
    assert result.result == "failed"
    assert "LCM_SECRET_JOIN_TOKEN" in result.message
