"""``lcm-agent``: the node daemon and its local tools.

    lcm-agent run [--config /etc/lcm-agent/config.yaml]      the daemon (systemd runs this)
    lcm-agent status [--state-dir /var/lib/lcm-agent]         what the local journal says
    lcm-agent apply --file items.yaml --release-dir DIR       run state items here, without a cluster
    lcm-agent reconcile [--dry-run] [--desired FILE]          converge to the recorded desired state
    lcm-agent activate [--wheel-sha256 HEX]                   make this installed version the one systemd runs
    lcm-agent --version

Signals (``run``): the first SIGTERM/SIGINT stops gracefully (the running item gets the grace period);
a second one forces the stop (exit 130). SIGHUP re-reads the configuration and applies the logging
settings at once; a changed setting of any other section is logged as needing a restart. A configuration
that no longer loads is refused and the running one kept. Exit codes: ``agent.daemon.app.ExitCode``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from agent import __version__
from agent.adapters.atomic import write_atomic
from agent.adapters.install import MARKER, InstallError, Layout, activate
from agent.adapters.journal import Journal
from agent.daemon.app import ExitCode, run_daemon
from agent.daemon.config import CONFIG_PATH_ENV, AgentSettings, ConfigError, load_config
from agent.daemon.local import apply_items
from agent.kits.commands import command_parser
from agent.kits.logs import SecretRegistry, setup_logging
from agent.kits.stopping import StopSignals
from agent.reconciler import converge

log = logging.getLogger("agent.cli")


def main(argv: Sequence[str] | None = None) -> int:
    parser, sub = command_parser("lcm-agent", __doc__, __version__)
    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--config", type=Path,
                     default=Path(os.environ.get(CONFIG_PATH_ENV, "/etc/lcm-agent/config.yaml")))
    status = sub.add_parser("status", help="print the local journal")
    status.add_argument("--state-dir", type=Path, default=Path("/var/lib/lcm-agent"))
    apply = sub.add_parser("apply", help="run state items locally, without a cluster")
    apply.add_argument("--file", type=Path, required=True, help="YAML list of state items")
    apply.add_argument("--release-dir", type=Path, required=True, help="root of the release's playbooks")
    apply.add_argument("--state-dir", type=Path, default=Path(".lcm-apply"),
                       help="journal and artifacts of local runs (a re-run skips items already done)")
    converge.add_arguments(sub.add_parser("reconcile", help="converge this node to its desired state "
                                           "(the agent starts it on drift); --dry-run prints the drift"))
    switch = sub.add_parser("activate", help="switch <root>/current to this installed version "
                            "(cloud-init's last install step; docs/self-upgrade.md)")
    switch.add_argument("--wheel-sha256", help="digest of the wheel this version was installed from, kept "
                        "so that a later rollback to it needs no download")
    args = parser.parse_args(argv)
    if args.command == "activate":
        return _activate(args.wheel_sha256)
    if args.command == "reconcile":
        return converge.main(args)
    if args.command == "run":
        return _run(args.config)
    if args.command == "status":
        return _status(args.state_dir)
    return asyncio.run(apply_items(args.file, args.release_dir, args.state_dir))


def _run(config_path: Path) -> int:
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


def _activate(wheel_sha256: str | None) -> int:
    """Run from ``<root>/versions/<version>/bin/lcm-agent``: this process importing the CLI is the smoke test
    the self-upgrade runs, so the marker and the switch follow as after a self-upgrade's build."""
    prefix = Path(sys.prefix)
    if prefix.parent.name != "versions" or prefix.name != __version__:
        print(f"lcm-agent: {prefix} is not <root>/versions/{__version__}: install the agent into the layout "
              "of docs/self-upgrade.md before activating it", file=sys.stderr)
        return ExitCode.CONFIG
    if wheel_sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", wheel_sha256):
        print(f"lcm-agent: --wheel-sha256 {wheel_sha256!r} is not 64 lower-case hex digits", file=sys.stderr)
        return ExitCode.CONFIG
    layout = Layout(prefix.parent.parent)
    try:
        if wheel_sha256 is not None:
            write_atomic(prefix / MARKER, f"{wheel_sha256}\n".encode(), 0o644)
        previous = activate(layout, __version__)
    except (OSError, InstallError) as exc:
        print(f"lcm-agent: cannot activate {prefix}: {exc}", file=sys.stderr)
        return ExitCode.FAILURE
    print(f"lcm-agent {__version__} is active in {layout.root}"
          + (f" (was {previous.name})" if previous and previous.name != __version__ else ""))
    return ExitCode.OK


def _status(state_dir: Path) -> int:
    journal = Journal.load(state_dir / "journal.json")
    mark = journal.in_progress
    report = {
        "inProgress": None if mark is None else {
            "item": mark.item, "hash": mark.hash, "attempt": mark.attempt,
            "startedAt": mark.started_at.isoformat()},
        "finished": {name: {"hash": f.hash, "exitCode": f.exit_code, "finishedAt": f.finished_at.isoformat()}
                     for name, f in sorted(journal.finished.items())},
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
