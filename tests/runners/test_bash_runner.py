"""The bash runner: real subprocesses, their process groups, timeouts, secrets and output."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from runner_harness import Runs, group_members, zombie_children

from testbed.lab.leaks import files_containing


def argv(*args: str) -> str:
    return json.dumps(list(args))


async def test_argv_runs_with_params_as_environment(runs: Runs) -> None:
    item = runs.item("bash", {"argv": argv("sh", "-c", 'echo "colour=$LCM_PARAM_COLOUR item=$LCM_ITEM"'),
                              "colour": "green"}, name="paint")
    result = await runs.run(item)
    assert (result.result, result.exit_code, result.message) == ("success", 0, "exited with 0")
    assert result.log_tail == "colour=green item=paint"
    assert runs.kinds() == ["started", "finished"]
    assert (runs.work_dir / "artifacts" / "paint" / "1" / "output").read_text() == "colour=green item=paint\n"


async def test_script_stops_at_the_first_failing_line(runs: Runs) -> None:
    result = await runs.run(runs.item("bash", {"script": "echo before\nfalse\necho after"}))
    assert (result.result, result.exit_code) == ("failed", 1)
    assert result.message == "exited with 1\nbefore"


async def test_script_with_failing_pipeline_fails(runs: Runs) -> None:
    result = await runs.run(runs.item("bash", {"script": "false | cat\necho unreachable"}))
    assert result.result == "failed"
    assert "unreachable" not in result.log_tail


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({}, 'exactly one of params "argv"'),
        ({"argv": argv("true"), "script": "true"}, 'exactly one of params "argv"'),
        ({"argv": "echo hi"}, 'param "argv" is not JSON'),
        ({"argv": '"true"'}, "non-empty JSON list of strings"),
        ({"argv": "[]"}, "non-empty JSON list of strings"),
        ({"argv": '["echo", 1]'}, "non-empty JSON list of strings"),
    ],
)
async def test_bad_params_are_refused(runs: Runs, params: dict[str, str], reason: str) -> None:
    result = await runs.run(runs.item("bash", params))
    assert (result.result, result.exit_code) == ("failed", 2)
    assert reason in result.message


async def test_missing_program_fails_like_a_shell(runs: Runs) -> None:
    result = await runs.run(runs.item("bash", {"argv": argv("/nonexistent/tool", "--help")}))
    assert (result.result, result.exit_code) == ("failed", 127)
    assert "cannot start '/nonexistent/tool'" in result.message


async def test_secret_is_in_the_environment_and_redacted_everywhere(runs: Runs) -> None:
    secret = secrets.token_urlsafe(16)
    digest = hashlib.sha256(secret.encode()).hexdigest()
    script = f"""test "$(printf %s "$LCM_SECRET_JOIN_TOKEN" | sha256sum | cut -d' ' -f1)" = {digest}
printf 'token=%s\\n' "$LCM_SECRET_JOIN_TOKEN"
printf 'oops=%s\\n' "$LCM_SECRET_JOIN_TOKEN" >&2
exit 3"""
    result = await runs.run(runs.item("bash", {"script": script}, secrets={"join-token": secret}))
    assert (result.result, result.exit_code) == ("failed", 3)
    assert result.log_tail == "token=***\noops=***"
    assert secret not in result.message
    assert files_containing(runs.work_dir, secret.encode()) == []


async def test_daemon_environment_is_not_inherited(runs: Runs, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LCM_DAEMON_TOKEN", "daemon-credential")
    script = 'echo "daemon=[${LCM_DAEMON_TOKEN:-}] path=${PATH:+set}"'
    result = await runs.run(runs.item("bash", {"script": script}))
    assert result.log_tail == "daemon=[] path=set"


def _read_pids(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


async def _pids_in(path: Path, count: int) -> list[int]:
    for _ in range(200):
        if len(pids := _read_pids(path)) == count:
            return pids
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never got {count} pids")


async def _session_leader(pid: int) -> None:
    """Once ``pid`` leads a session (and so a process group) of its own."""
    for _ in range(200):
        if os.getsid(pid) == pid:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"pid {pid} never left its parent's session")


STUBBORN = """trap '' TERM
setsid sleep 600 &
echo $$ $! > "$LCM_PARAM_MARKER"
sleep 600
"""
"""Ignores SIGTERM, and starts a child in a session of its own: only a kill of the whole tree ends both."""


@pytest.mark.parametrize("how", ["timeout", "cancel"])
async def test_timeout_and_cancel_kill_the_whole_tree(runs: Runs, tmp_path: Path, how: str) -> None:
    marker = tmp_path / "pids"
    timeout = 2.0 if how == "timeout" else None
    item = runs.item("bash", {"script": STUBBORN, "marker": str(marker)}, timeout=timeout)
    task = asyncio.create_task(runs.run(item))
    shell, escaped = await _pids_in(marker, 2)
    await _session_leader(escaped)  # $! is known before the child's setsid(2) has run
    groups = {os.getpgid(shell), os.getpgid(escaped)}
    assert len(groups) == 2
    if how == "cancel":
        task.cancel()
    result = await task
    expected = ("timeout", 124) if how == "timeout" else ("cancelled", 130)
    assert (result.result, result.exit_code) == expected
    assert [pid for group in groups for pid in group_members(group)] == []
    assert zombie_children() == []


@pytest.fixture
def leftover(tmp_path: Path) -> Iterator[Path]:
    """A file the test's script writes a background pid to; that process is killed afterwards."""
    marker = tmp_path / "background.pid"
    yield marker
    if marker.exists():
        os.kill(int(marker.read_text()), signal.SIGKILL)


async def test_background_child_holding_the_output_does_not_hang_the_item(runs: Runs, leftover: Path) -> None:
    script = 'sleep 60 &\necho $! > "$LCM_PARAM_MARKER"\necho started'
    item = runs.item("bash", {"script": script, "marker": str(leftover)})
    result = await asyncio.wait_for(runs.run(item), 10)
    assert (result.result, result.log_tail) == ("success", "started")
