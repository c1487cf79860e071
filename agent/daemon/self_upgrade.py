"""The agent's self-upgrade: follow ``spec.agentConfig``, install the build it names, restart into it.

A root task of the daemon. It follows the machine's LCMMachine, asks the pure ``next_upgrade`` what to do,
and for an upgrade: writes the attempt's start to ``status.lcmAgentUpgradeStatus``, downloads the wheel into
the state dir (verified against the spec's sha256 before anything uses it), builds and smoke-tests the new
version's directory, switches ``current`` to it, writes the outcome, and calls ``restart``: the daemon stops
gracefully and exits with ``UPGRADE_EXIT_CODE``, and systemd (``Restart=always``) starts the new version.

A failure at any step leaves ``current`` and the running install untouched and is reported in ``error``;
the next attempt follows a backoff, or comes at once when the spec names another build. The on-disk layout
and the choices behind it are in docs/self-upgrade.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from agent import __version__
from agent.adapters.atomic import read_json, write_json
from agent.adapters.install import InstallError, Layout, activate, build, installed, prune, smoke_test
from agent.adapters.runners.downloader import DownloadError, ParamsError, fetch, parse
from agent.api.models import AgentConfig as ApiAgentConfig
from agent.daemon.config import AgentSettings
from agent.daemon.own_machine import OwnMachine
from agent.daemon.worker import utcnow
from agent.decisions.self_upgrade import (
    Decision,
    Nothing,
    Upgrade,
    Wait,
    build_key,
    finished_patch,
    next_upgrade,
    redact_url,
    started_patch,
    wheel_name,
)
from agent.kits.backoff import Backoff
from agent.kits.tasks import until_stopped

log = logging.getLogger(__name__)

UPGRADE_EXIT_CODE = 75
"""``lcm-agent run`` exits with this after switching to a new version, so that systemd restarts it into that
version (``Restart=always``) and the journal says why. 75 is sysexits' EX_TEMPFAIL: "try again"."""


@dataclass(frozen=True)
class UpgradeSettings:
    """Where versions are installed and how attempts are paced; seconds throughout."""

    install_root: Path | None
    """``/opt/lcm-agent`` on a node; None when the running agent is not installed as
    ``<root>/versions/<version>``, and then every upgrade fails with that explanation."""
    work_dir: Path
    """Downloads and the record of the last attempted build (inside the 0700 state dir)."""
    backoff: Backoff
    """Pacing of retries of a build that failed."""
    running_version: str = __version__
    source_prefix: Path = field(default_factory=lambda: Path(sys.prefix))
    """The running agent's virtualenv, cloned for the new version."""
    download_timeout: float = 600.0
    """The whole download of a wheel; a stalled connection fails sooner (the downloader's read timeout)."""

    @classmethod
    def from_config(cls, cfg: AgentSettings) -> UpgradeSettings:
        """The install root is where the running agent lives, so a node installed elsewhere just works."""
        prefix = Path(sys.prefix)
        root = prefix.parent.parent if prefix.parent.name == "versions" else None
        return cls(install_root=root, work_dir=cfg.state_dir / "upgrade", backoff=cfg.timings.backoff,
                   source_prefix=prefix)


async def upgrade_loop(
    own: OwnMachine, cfg: AgentSettings, stopping: asyncio.Event, *, restart: Callable[[], None],
    settings: UpgradeSettings | None = None, clock: Callable[[], datetime] = utcnow,
) -> None:
    """Run until ``stopping`` is set, reading and writing the machine through the agent's ``own`` handle.
    After a successful upgrade it calls ``restart``, which must end the daemon (set ``stopping``, exit with
    ``UPGRADE_EXIT_CODE``), and waits for the stop."""
    upgrader = Upgrader(own, settings or UpgradeSettings.from_config(cfg), restart=restart, clock=clock)
    await upgrader.run(stopping)


class _AttemptError(Exception):
    """An attempt failed; the message is the status's ``error``."""


class Upgrader:
    """One machine's self-upgrade, deciding on the object the agent's ``OwnMachine`` keeps current."""

    def __init__(
        self, own: OwnMachine, settings: UpgradeSettings, *, restart: Callable[[], None],
        clock: Callable[[], datetime],
    ) -> None:
        self.own, self.settings, self.restart, self.clock = own, settings, restart, clock
        self._record = settings.work_dir / "last-build.json"
        self._fields = own.fields

    async def run(self, stopping: asyncio.Event) -> None:
        last: Decision | None = None
        while not stopping.is_set():
            seen = self.own.version
            decision = self._decide()
            if decision != last:
                log.info("agent upgrade: %s", _describe(decision), extra=self._fields)
            last = decision
            if isinstance(decision, Upgrade):
                if await until_stopped(self._attempt(decision), stopping):
                    log.info("agent %s active; restarting into it", decision.version, extra=self._fields)
                    self.restart()
                    await stopping.wait()
            elif isinstance(decision, Wait):
                await self.own.wait(seen, stopping, (decision.until - self.clock()).total_seconds())
            else:
                await self.own.wait(seen, stopping, None)

    def _decide(self) -> Decision:
        machine = self.own.latest
        if machine is None:
            return Nothing("LCMMachine not seen yet")
        return next_upgrade(machine.spec.agent_config, self.settings.running_version,
                            machine.status.lcm_agent_upgrade_status, self._last_build(), self.clock(),
                            self.settings.backoff)

    async def _attempt(self, step: Upgrade) -> bool:
        """One attempt, reported before and after; True when the new version is active."""
        started = self.clock()
        if not await self._write(started_patch(step.attempt, started)):
            # No attempt without its "started" mark: the API is away; decide again after a pause that grows
            # with the handle's failed writes in a row.
            await asyncio.sleep(self.own.pause())
            return False
        self.settings.work_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        requested = ApiAgentConfig.model_validate({"version": step.version, "downloadURL": step.url,
                                                   "sha256": step.sha256})
        write_json(self._record, {"build": build_key(requested)})
        fields = {**self._fields, "version": step.version, "attempt": step.attempt}
        try:
            await self._install(step)
            error = ""
        except _AttemptError as exc:
            error = redact_url(str(exc), step.url)
            log.error("agent upgrade failed: %s", error, extra=fields)
        await self._write(finished_patch(step.attempt, started, self.clock(), error, step.url))
        return not error

    async def _install(self, step: Upgrade) -> None:
        """Download, build, switch; raises _AttemptError with the reason, ``current`` untouched."""
        try:
            wheel = wheel_name(step)
        except ValueError as exc:
            raise _AttemptError(str(exc)) from None
        layout = self._layout()
        try:
            if installed(layout, step.version, step.sha256):
                self._refuse_active(layout, step.version)
                log.info("agent %s is already installed; reusing it", step.version, extra=self._fields)
                await smoke_test(layout.version_dir(step.version), step.version)
            else:
                await self._build(layout, step, self.settings.work_dir / wheel)
            previous = activate(layout, step.version)
        except (InstallError, OSError) as exc:
            raise _AttemptError(f"{exc}; {layout.current} unchanged") from None
        keep = [layout.version_dir(step.version), self.settings.source_prefix, *filter(None, [previous])]
        try:
            removed = prune(layout, keep)
        except OSError as exc:  # the upgrade itself is done; a leftover directory only costs disk
            log.warning("could not remove old agent versions: %s", exc, extra=self._fields)
            return
        if removed:
            log.info("removed old agent versions: %s", ", ".join(p.name for p in removed), extra=self._fields)

    def _layout(self) -> Layout:
        if self.settings.install_root is None:
            prefix = self.settings.source_prefix
            raise _AttemptError(f"the agent runs from {prefix}, not from <root>/versions/<version>: "
                                "self-upgrade needs the layout of docs/self-upgrade.md")
        return Layout(self.settings.install_root)

    def _refuse_active(self, layout: Layout, version: str) -> None:
        """The requested version is already what systemd starts, yet another one runs: restarting again
        would loop, so this is reported instead (the unit does not run ``current``)."""
        if layout.active() == layout.version_dir(version).resolve():
            raise _AttemptError(f"{version} is already active in {layout.root} but the agent runs "
                                f"{self.settings.running_version}: the service must run "
                                f"{layout.current}/bin/lcm-agent")

    async def _build(self, layout: Layout, step: Upgrade, wheel: Path) -> None:
        try:
            download = parse({"url": step.url, "sha256": step.sha256, "dest": str(wheel)})
        except ParamsError as exc:
            raise _AttemptError(f"spec.agentConfig: {exc}") from None
        try:
            async with asyncio.timeout(self.settings.download_timeout):
                await fetch(download)
            await build(layout, step.version, wheel, download.sha256, source=self.settings.source_prefix)
        except DownloadError as exc:
            raise _AttemptError(f"download of {step.url} failed: {exc}; {layout.current} unchanged") from None
        except TimeoutError:
            raise _AttemptError(f"download of {step.url} timed out; {layout.current} unchanged") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(wheel)

    def _last_build(self) -> str | None:
        """The build the status's attempts were for; None when unknown (a fresh state dir)."""
        try:
            build = read_json(self._record).get("build")
        except (OSError, ValueError, AttributeError):
            return None
        return build if isinstance(build, str) else None

    async def _write(self, patch: dict[str, Any]) -> bool:
        """One status write, tried ``ONCE``: the next decision is derived from the status, so a write that
        did not land is simply decided again; True when it landed."""
        return await self.own.write(patch, what="agent upgrade status write") is not None


def _describe(decision: Decision) -> str:
    if isinstance(decision, Nothing):
        return f"nothing to do ({decision.reason})"
    if isinstance(decision, Wait):
        return f"retry (attempt {decision.attempt}) at {decision.until.isoformat()}"
    return f"upgrade to {decision.version} (attempt {decision.attempt})"
