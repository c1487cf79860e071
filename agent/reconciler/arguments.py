"""The reconciler's command line, apart from the reconciler: ``lcm-agent --help`` builds this parser too,
and must not import the Docker SDK and the drift rules to do it."""

from __future__ import annotations

import argparse
from pathlib import Path

from agent.adapters.engine_access import EngineAccess

DEFAULT_STATE_DIR = Path("/var/lib/lcm-agent")
DESIRED_FILE = "desired.json"
"""The record's name in the agent's state dir."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The subcommand's options; the engine ones default to a standard host (the agent passes its own)."""
    access = EngineAccess()
    parser.add_argument("--desired", type=Path, default=DEFAULT_STATE_DIR / DESIRED_FILE,
                        help="the desired-state record the agent keeps")
    parser.add_argument("--report", type=Path, help="where to write the JSON report")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the drift, change nothing; exit 1 when there is drift")
    parser.add_argument("--docker-host", default=access.host)
    parser.add_argument("--docker-config", default=access.config_path, help="path of daemon.json")
    parser.add_argument("--service-manager", choices=("systemd", "command"), default=access.service_manager)
    parser.add_argument("--docker-service", default="", help="with --service-manager command: the control "
                        "script taking start|stop|restart|reload|status")
    parser.add_argument("--docker-unit", default=access.docker_unit, help="with --service-manager systemd")
    parser.add_argument("--stdin-secrets", action="store_true", help="read the join token as JSON on stdin")
