"""The ``bash`` runner: one command, in its own process group, with a timeout and redacted output.

Params (exactly one of the first two):

* ``argv`` — a JSON list of strings, executed directly (no shell): ``["systemctl", "restart", "docker"]``;
* ``script`` — a bash script, run as ``bash -euo pipefail -c SCRIPT`` so a failing line fails the item;
* any other param ``NAME`` is exported as ``LCM_PARAM_<NAME>``; secrets as ``LCM_SECRET_<NAME>``; plus
  ``LCM_MACHINE``, ``LCM_ITEM``, ``LCM_ATTEMPT``, ``LCM_RELEASE_DIR``.

The working directory is the release directory if it exists (so scripts shipped with the release are found
by relative path), else the work directory. Output (stdout and stderr, merged) goes to
``artifacts/<item>/<attempt>/output`` and the result's log tail, redacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from agent.adapters.runners import artifacts
from agent.adapters.runners.environment import (
    PARAM_PREFIX,
    SECRET_PREFIX,
    NameCollisionError,
    inherited,
    named_variables,
)
from agent.adapters.runners.leftovers import RUN_MARK, run_mark
from agent.adapters.runners.redaction import RedactedLog, Redactor
from agent.adapters.runners.settings import RunnerSettings
from agent.adapters.runners.supervision import outcome, stop_process_group, supervise
from agent.api.execution import EXIT_INVALID, EventSink, ItemInput, ItemResult

_CHUNK = 65536
_MAX_LINE = 1 << 20


class ParamsError(ValueError):
    """The item's params do not describe a command."""


def command(params: dict[str, str]) -> list[str]:
    """The argv to execute, from exactly one of ``argv`` and ``script``."""
    if ("argv" in params) == ("script" in params):
        raise ParamsError('bash item needs exactly one of params "argv" (JSON list) and "script"')
    if "script" in params:
        return ["bash", "-euo", "pipefail", "-c", params["script"]]
    try:
        argv = json.loads(params["argv"])
    except ValueError as exc:
        raise ParamsError(f'param "argv" is not JSON: {exc}') from exc
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise ParamsError('param "argv" must be a non-empty JSON list of strings')
    return argv


def environment(item: ItemInput) -> dict[str, str]:
    params = {k: v for k, v in item.params.items() if k not in ("argv", "script")}
    return {
        **inherited(),
        **named_variables(PARAM_PREFIX, params),
        "LCM_MACHINE": item.machine,
        "LCM_ITEM": item.name,
        "LCM_ATTEMPT": str(item.attempt),
        RUN_MARK: run_mark(item.machine, item.name, item.attempt),
        "LCM_RELEASE_DIR": str(item.release_dir),
        **named_variables(SECRET_PREFIX, item.secrets),
    }


async def _pump(stream: asyncio.StreamReader, sink: Callable[[str], None]) -> None:
    """Feed whole lines to ``sink`` (redaction works on lines); over-long lines are cut."""
    pending = b""
    while chunk := await stream.read(_CHUNK):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            sink(line.decode(errors="replace"))
        if len(pending) > _MAX_LINE:
            sink(pending.decode(errors="replace"))
            pending = b""
    if pending:
        sink(pending.decode(errors="replace"))


async def _spawn(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[asyncio.subprocess.Process, int]:
    """Start the command in a new session, stdout and stderr on one pipe of our own; returns its read end.

    Our own pipe rather than asyncio's: on Python 3.11 ``Process.wait()`` waits until asyncio's pipes are
    closed, which a background child that inherited them (a daemon the script started) can put off forever.
    """
    read_fd, write_fd = os.pipe()
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=write_fd, stderr=write_fd,
            start_new_session=True,
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    return process, read_fd


async def _complete(process: asyncio.subprocess.Process, read_fd: int, log: RedactedLog, drain: float) -> int:
    """The exit code, once the output is read; children that keep the pipe open get ``drain`` seconds.

    After that the item is over: such a child keeps running, but its output is no longer read.
    """
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0)
    )
    pump = asyncio.create_task(_pump(reader, log.add))
    try:
        code = await process.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(pump), drain)
        return code
    finally:
        pump.cancel()
        transport.close()


async def run(item: ItemInput, on_event: EventSink, settings: RunnerSettings) -> ItemResult:
    redactor = Redactor(item.secrets.values())
    try:
        argv = command(dict(item.params))
        env = environment(item)
    except (ParamsError, NameCollisionError) as exc:
        return ItemResult(EXIT_INVALID, "failed", redactor.text(str(exc)), "")
    run_dir = artifacts.prepare(item.work_dir, item.name, item.attempt, keep=settings.keep_attempts)
    cwd = item.release_dir if item.release_dir.is_dir() else item.work_dir
    with RedactedLog(redactor, run_dir / "output", settings.tail_lines) as log:
        try:
            process, read_fd = await _spawn(argv, cwd, env)
        except OSError as exc:
            code = 127 if isinstance(exc, FileNotFoundError) else 126
            return ItemResult(code, "failed", redactor.text(f"cannot start {argv[0]!r}: {exc}"), "")
        work = asyncio.ensure_future(_complete(process, read_fd, log, settings.drain_seconds))
        code, reason = await supervise(
            work, time_limit=item.timeout,
            interrupt=lambda _: stop_process_group(process, settings.grace),
        )
    text = log.tail()
    exit_code, result, headline = outcome(code, reason, item.timeout)
    message = f"{headline}\n{text}" if result != "success" and text else headline
    return ItemResult(exit_code, result, message, text)
