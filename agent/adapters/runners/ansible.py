"""The ``ansible`` runner: one playbook of the release, through ansible-runner, against this machine.

Params: ``playbook`` (a path relative to the release directory; anything resolving outside it is refused),
every other param becomes an extra var (strings, as in the spec), then the item's ``node_vars`` (the
machine's ``lcm_docker_host`` and ``playbook_vars``, which win over a param of the same name), plus
``lcm_machine``, ``lcm_item``, ``lcm_version``, ``lcm_phase`` and ``lcm_attempt``. Plays run against
``localhost`` over the local connection with this venv's python. Secrets reach the playbook as environment
variables ``LCM_SECRET_<NAME>`` (``lookup('env', 'LCM_SECRET_JOIN_TOKEN')``; modules inherit them), handed
over through the pseudo-terminal (see ``playbook_shim``) so that they touch neither disk nor argv; tasks that
use them should still say ``no_log: true``.

How ansible-runner is driven, and why:

* ``RunnerConfig`` + ``Runner`` directly (what ``interface.run`` does inside), because the environment must
  be cut down between ``prepare()`` and ``run()``: ansible-runner copies the daemon's whole environment into
  the child and into ``artifacts/<ident>/command``, and the daemon's may hold its own credentials.
* ``cancel_callback`` always: without one ansible-runner installs its own SIGTERM/SIGINT handlers in the
  daemon (ansible-runner issue 1075). It is also how cancellation is delivered: SIGTERM to the playbook's
  process group first, SIGKILL (by ansible-runner) after the grace period.
* ``event_handler`` redacts each event in place before ansible-runner writes it to ``job_events``, feeds the
  redacted log (``stdout`` artifact; ansible-runner's own is switched off) and bridges progress to the event
  loop with ``call_soon_threadsafe``.
* ``fact_cache_type`` other than jsonfile: gathered facts include the environment, secrets included, and
  must not be cached on disk. Module syslogging is off and pipelining on, so module arguments are neither
  journaled nor written to a temporary module file; Ansible's home and temp dirs live in ``work_dir``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets as tokens
import shlex
import signal
import sys
import threading
import time
from pathlib import Path, PurePath
from typing import Any

from agent.adapters.runners import artifacts, playbook_shim
from agent.adapters.runners.environment import SECRET_PREFIX, NameCollisionError, inherited, named_variables
from agent.adapters.runners.leftovers import RUN_MARK, run_mark
from agent.adapters.runners.progress import PlaybookProgress
from agent.adapters.runners.redaction import RedactedLog, Redactor
from agent.adapters.runners.settings import RunnerSettings
from agent.adapters.runners.supervision import KILL_WAIT, Interruption, TreeKiller, outcome, supervise
from agent.api.execution import EXIT_FAILED, EXIT_INVALID, EventSink, ItemEvent, ItemInput, ItemResult

log = logging.getLogger(__name__)


class PlaybookPathError(ValueError):
    """The playbook param does not name a file inside the release directory."""


def resolve_playbook(release_dir: Path, relative: str | None) -> Path:
    """The playbook's real path, refusing absolute paths and anything that resolves outside the release."""
    if not relative:
        raise PlaybookPathError('ansible item needs param "playbook"')
    if PurePath(relative).is_absolute():
        raise PlaybookPathError(f"playbook {relative!r} is absolute; it must be relative to the release")
    try:
        root = release_dir.resolve(strict=True)
    except OSError as exc:
        raise PlaybookPathError(f"release directory {str(release_dir)!r} is not readable: {exc}") from exc
    target = (root / relative).resolve()
    if not target.is_relative_to(root):
        raise PlaybookPathError(f"playbook {relative!r} resolves outside the release directory")
    if not target.is_file():
        raise PlaybookPathError(f"playbook {relative!r} not found in the release directory")
    return target


def extra_vars(item: ItemInput) -> dict[str, str]:
    """The item's params, then the node's own vars over them, then the run's context over everything."""
    context = {
        "lcm_machine": item.machine,
        "lcm_item": item.name,
        "lcm_version": item.version,
        "lcm_phase": item.phase,
        "lcm_attempt": str(item.attempt),
    }
    params = {k: v for k, v in item.params.items() if k != "playbook"}
    return {**params, **item.node_vars, **context}


def _ansible_environment(work_dir: Path) -> dict[str, str]:
    home = work_dir / "ansible"
    tmp = home / "tmp"
    tmp.mkdir(mode=artifacts.DIR_MODE, parents=True, exist_ok=True)
    home.chmod(artifacts.DIR_MODE)
    return {
        "ANSIBLE_HOME": str(home),
        "ANSIBLE_LOCAL_TEMP": str(tmp),
        "ANSIBLE_REMOTE_TEMP": str(tmp),
        "TMPDIR": str(tmp),
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_NO_TARGET_SYSLOG": "True",
        "ANSIBLE_NOCOLOR": "True",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
    }


def _child_environment(prepared: dict[str, str]) -> dict[str, str]:
    """What ansible-runner prepared, minus what it merely copied from the daemon's own environment."""
    added = {k: v for k, v in prepared.items() if os.environ.get(k) != v}
    return {**inherited(), **added}


class _Run:
    """State shared between the event loop and ansible-runner's thread for one run."""

    def __init__(
        self, item: ItemInput, sink: EventSink, log: RedactedLog, redactor: Redactor, grace: float
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._sink = sink
        self._log = log
        self._redactor = redactor
        self._grace = grace
        self.progress = PlaybookProgress(item.name)
        self._pid: int | None = None
        self._stop = threading.Event()
        self._deadline: float | None = None
        self._killer: TreeKiller | None = None

    def on_event(self, event: dict[str, Any]) -> bool:
        """ansible-runner's event_handler (its thread): redact in place, log, publish; True = write it."""
        redacted = self._redactor.tree(event)
        if redacted is not event:  # the same object when there is nothing to redact
            event.clear()
            event.update(redacted)
        if event.get("event") == "playbook_on_start" and isinstance(event.get("pid"), int):
            self._pid = event["pid"]
        if event.get("stdout"):
            self._log.add(event["stdout"])
        progress = self.progress.observe(event)
        if progress is not None:
            self._loop.call_soon_threadsafe(self._publish, progress)
        return True

    def _publish(self, event: ItemEvent) -> None:
        try:
            self._sink(event)
        except Exception:  # a broken sink must not break the run
            log.exception("item event sink failed", extra={"item": event.item, "kind": event.kind})

    def request_stop(self) -> None:
        self._stop.set()

    def should_cancel(self) -> bool:
        """ansible-runner's cancel_callback (its thread): SIGTERM first, SIGKILL after the grace period.

        Returning True makes ansible-runner SIGKILL the playbook's own group and end the run.
        """
        if not self._stop.is_set():
            return False
        if self._deadline is None:
            self._deadline = time.monotonic() + self._grace
            # Before the playbook's first event its pid is unknown, and nothing has run yet: kill at once.
            if self._pid is None:
                return True
            self._killer = TreeKiller(self._pid)
            self._killer.signal(signal.SIGTERM)
        if time.monotonic() < self._deadline:
            return False
        if self._killer is not None:
            self._killer.signal(signal.SIGKILL)
        return True

    def reap(self) -> None:
        """After a stop, kill what is left of the tree (members that outlived a leader gone on SIGTERM)."""
        if self._killer is not None:
            self._killer.signal(signal.SIGKILL)
            self._killer.wait_gone(KILL_WAIT)


def _execute(run: _Run, item: ItemInput, run_dir: Path, playbook: Path, secret_env: dict[str, str],
             settings: RunnerSettings) -> int | None:
    """Prepare and run ansible-runner (blocking: called in a worker thread); returns the playbook's rc."""
    settings_file = {"suppress_output_file": True, "suppress_ansible_output": True,
                     "pexpect_timeout": settings.poll_interval}
    (run_dir / "env").mkdir(mode=artifacts.DIR_MODE)
    (run_dir / "inventory").mkdir(mode=artifacts.DIR_MODE)
    artifacts.write_private(run_dir / "env" / "settings", json.dumps(settings_file))
    artifacts.write_private(run_dir / "env" / "extravars", json.dumps(extra_vars(item)))
    inventory = run_dir / "inventory" / "hosts.json"
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    artifacts.write_private(inventory, json.dumps({"all": {"hosts": {"localhost": host}}}))
    envvars = _ansible_environment(item.work_dir)
    envvars[RUN_MARK] = run_mark(item.machine, item.name, item.attempt)
    passwords: dict[str, str] = {}
    if secret_env:
        prompt = f"lcm-agent: handing over {len(secret_env)} secret(s) [{tokens.token_hex(8)}]: "
        envvars[playbook_shim.PROMPT_ENV] = prompt
        passwords[re.escape(prompt)] = playbook_shim.encode(secret_env)
    # Imported here, by the run that needs it: an idle agent has no use for ansible-runner's modules.
    from ansible_runner.config.runner import RunnerConfig
    from ansible_runner.runner import Runner

    config = RunnerConfig(
        private_data_dir=str(run_dir), artifact_dir=str(run_dir.parent), ident=run_dir.name,
        project_dir=str(item.release_dir), inventory=str(inventory), binary=sys.executable,
        cmdline=shlex.join(["-I", playbook_shim.__file__, str(playbook)]), envvars=envvars,
        passwords=passwords, fact_cache_type="memory", rotate_artifacts=0, suppress_env_files=True,
    )
    config.prepare()
    config.env = _child_environment(config.env)
    runner = Runner(config, event_handler=run.on_event, cancel_callback=run.should_cancel)
    try:
        _, rc = runner.run()
    finally:
        run.reap()
    return rc if isinstance(rc, int) else None


async def run(item: ItemInput, on_event: EventSink, settings: RunnerSettings) -> ItemResult:
    redactor = Redactor(item.secrets.values())
    try:
        playbook = resolve_playbook(item.release_dir, item.params.get("playbook"))
        secret_env = named_variables(SECRET_PREFIX, item.secrets)
    except (PlaybookPathError, NameCollisionError) as exc:
        return ItemResult(EXIT_INVALID, "failed", redactor.text(str(exc)), "")
    run_dir = artifacts.prepare(item.work_dir, item.name, item.attempt, keep=settings.keep_attempts)
    try:
        with RedactedLog(redactor, run_dir / "stdout", settings.tail_lines) as log:
            state = _Run(item, on_event, log, redactor, settings.grace)
            work = asyncio.ensure_future(
                asyncio.to_thread(_execute, state, item, run_dir, playbook, secret_env, settings)
            )

            async def stop(_: Interruption) -> None:
                state.request_stop()

            rc, reason = await supervise(work, time_limit=item.timeout, interrupt=stop)
    except Exception as exc:  # ansible-runner's own failures (bad config, callback errors)
        return ItemResult(EXIT_FAILED, "failed", redactor.text(f"ansible-runner failed: {exc}"), "")
    finally:
        artifacts.tighten(run_dir)
    exit_code, result, headline = outcome(EXIT_FAILED if rc is None else rc, reason, item.timeout)
    progress, tail = state.progress, log.tail()
    if result == "success":
        headline = f"{item.params['playbook']}: {progress.summary() or 'no tasks ran'}"
    elif result == "failed":
        headline = progress.failure.describe() if progress.failure else f"ansible-playbook {headline}"
    message = f"{headline}\n{tail}" if tail and result != "success" else headline
    return ItemResult(exit_code, result, redactor.text(message), tail)
