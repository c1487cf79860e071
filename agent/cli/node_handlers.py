"""What each ``lcm-agent`` command does (``agent/cli/node.py`` parses the command line): imported only for
the command that runs, so that ``--help`` and the light commands do not pay for the daemon's imports."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from agent import __version__
from agent.adapters.atomic import write_atomic
from agent.adapters.install import MARKER, InstallError, Layout
from agent.adapters.install import activate as switch_to_version
from agent.cli.node import CONFIG_DEFAULT
from agent.daemon.app import ExitCode, run_daemon
from agent.daemon.config import CONFIG_PATH_ENV, AgentSettings, ConfigError, load_config
from agent.daemon.local import apply_items
from agent.kits.digests import is_sha256
from agent.kits.logs import SecretRegistry, setup_logging
from agent.kits.stopping import StopSignals

log = logging.getLogger("agent.cli")


def run(args: argparse.Namespace) -> int:
    config_path: Path = args.config or Path(os.environ.get(CONFIG_PATH_ENV, CONFIG_DEFAULT))
    # What systemd's UMask=0077 gives the unit, outside systemd too (a lab node, a shell): the state
    # directory, the journal and whatever ansible-runner writes are owner-only from the moment they exist.
    os.umask(0o077)
    secrets = SecretRegistry()
    setup_logging("INFO", json=True, secrets=secrets)
    try:
        cfg = load_config(config_path, os.environ)
    except ConfigError as exc:
        print(f"lcm-agent: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    secrets.add(*cfg.secret_values())
    setup_logging(cfg.logging.level, json=cfg.logging.json, secrets=secrets)
    return asyncio.run(_serve(cfg, config_path, secrets))


async def _serve(cfg: AgentSettings, config_path: Path, secrets: SecretRegistry) -> int:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    main_task = asyncio.create_task(run_daemon(cfg, stopping, secrets=secrets))
    signals = StopSignals(main_task, stopping)

    def on_reload() -> None:
        try:
            fresh = load_config(config_path, os.environ)
        except ConfigError as exc:
            print(f"lcm-agent: reload refused, keeping the running configuration: {exc}", file=sys.stderr)
            return
        secrets.add(*fresh.secret_values())
        setup_logging(fresh.logging.level, json=fresh.logging.json, secrets=secrets)
        stale = [name for name in ("api", "mqtt", "timings", "state_dir", "release_dir")
                 if getattr(fresh, name) != getattr(cfg, name)]
        if stale:
            log.warning("reloaded; changes to %s apply after a restart", ", ".join(stale))

    loop.add_signal_handler(signal.SIGHUP, on_reload)
    try:
        return int(await main_task)
    except asyncio.CancelledError:
        if signals.forced:
            return ExitCode.FORCED
        raise


def activate(args: argparse.Namespace) -> int:
    """Run from ``<root>/versions/<version>/bin/lcm-agent``: this process importing the CLI is the smoke test
    the self-upgrade runs (this module imports the whole daemon), so the marker and the switch follow as after
    a self-upgrade's build."""
    wheel_sha256: str | None = args.wheel_sha256
    prefix = Path(sys.prefix)
    if prefix.parent.name != "versions" or prefix.name != __version__:
        print(f"lcm-agent: {prefix} is not <root>/versions/{__version__}: install the agent into the layout "
              "of docs/self-upgrade.md before activating it", file=sys.stderr)
        return ExitCode.CONFIG
    if wheel_sha256 is not None and not is_sha256(wheel_sha256):
        print(f"lcm-agent: --wheel-sha256 {wheel_sha256!r} is not 64 lower-case hex digits", file=sys.stderr)
        return ExitCode.CONFIG
    layout = Layout(prefix.parent.parent)
    try:
        if wheel_sha256 is not None:
            write_atomic(prefix / MARKER, f"{wheel_sha256}\n".encode(), 0o644)
        previous = switch_to_version(layout, __version__)
    except (OSError, InstallError) as exc:
        print(f"lcm-agent: cannot activate {prefix}: {exc}", file=sys.stderr)
        return ExitCode.FAILURE
    print(f"lcm-agent {__version__} is active in {layout.root}"
          + (f" (was {previous.name})" if previous and previous.name != __version__ else ""))
    return ExitCode.OK


def apply(args: argparse.Namespace) -> int:
    return asyncio.run(apply_items(args.file, args.release_dir, args.state_dir))
