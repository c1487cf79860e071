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

import sys
from collections.abc import Sequence
from pathlib import Path

from agent import __version__
from agent.kits.commands import command_parser, deferred
from agent.reconciler.arguments import add_arguments as add_reconcile_arguments

CONFIG_DEFAULT = Path("/etc/lcm-agent/config.yaml")
"""Where ``run`` reads its settings unless ``--config`` or ``LCM_AGENT_CONFIG`` says otherwise."""


def main(argv: Sequence[str] | None = None) -> int:
    parser, sub = command_parser("lcm-agent", __doc__, __version__)
    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--config", type=Path,
                     help=f"settings file (default: $LCM_AGENT_CONFIG, or {CONFIG_DEFAULT})")
    run.set_defaults(func=deferred("agent.cli.node_handlers:run"))
    status = sub.add_parser("status", help="print the local journal")
    status.add_argument("--state-dir", type=Path, default=Path("/var/lib/lcm-agent"))
    status.set_defaults(func=deferred("agent.cli.node_status:status"))
    apply = sub.add_parser("apply", help="run state items locally, without a cluster")
    apply.add_argument("--file", type=Path, required=True, help="YAML list of state items")
    apply.add_argument("--release-dir", type=Path, required=True, help="root of the release's playbooks")
    apply.add_argument("--state-dir", type=Path, default=Path(".lcm-apply"),
                       help="journal and artifacts of local runs (a re-run skips items already done)")
    apply.set_defaults(func=deferred("agent.cli.node_handlers:apply"))
    reconcile = sub.add_parser("reconcile", help="converge this node to its desired state (the agent starts "
                               "it on drift); --dry-run prints the drift")
    add_reconcile_arguments(reconcile)
    reconcile.set_defaults(func=deferred("agent.reconciler.converge:main"))
    switch = sub.add_parser("activate", help="switch <root>/current to this installed version "
                            "(cloud-init's last install step; docs/self-upgrade.md)")
    switch.add_argument("--wheel-sha256", help="digest of the wheel this version was installed from, kept "
                        "so that a later rollback to it needs no download")
    switch.set_defaults(func=deferred("agent.cli.node_handlers:activate"))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
