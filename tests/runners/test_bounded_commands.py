"""``communicate_within``: the bounded command used by the self-upgrade's installs and the lab's host
commands. A command that outlives its limit raises TimeoutError only after its whole process group (the
children it started, too) is gone."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from agent.adapters.runners.supervision import communicate_within


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_output_comes_back_within_the_limit() -> None:
    proc = await asyncio.create_subprocess_exec(
        "sh", "-c", "cat; echo done >&2", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True)
    assert await communicate_within(proc, b"hello", 10) == (b"hello", b"done\n")


async def test_a_command_past_its_limit_is_killed_with_its_children() -> None:
    proc = await asyncio.create_subprocess_exec(
        "sh", "-c", "sleep 60 & echo $!; wait", stdout=asyncio.subprocess.PIPE, start_new_session=True)
    assert proc.stdout is not None
    child = int(await proc.stdout.readline())
    with pytest.raises(TimeoutError):
        await communicate_within(proc, None, 0.5)
    assert proc.returncode == -signal.SIGKILL  # killed at its limit, not waited for until its sleep ended
    for _ in range(100):  # a SIGKILLed process can take a moment to be reaped by its new parent
        if not _alive(child):
            break
        await asyncio.sleep(0.05)
    assert not _alive(child), "the command's child outlived the timeout"
