"""``lcm-scheduler``: the regional scheduler, one process per replica (run two for failover).

    lcm-scheduler run --kubeconfig FILE [--namespace NS] [--qps 50] [--burst 100] [--workers 4]
                      [--plan-duty 0.5] [--lease-name lcm-scheduler] [--lease-namespace default]
                      [--identity ID] [--lease-duration 15] [--renew-deadline 10] [--retry-period 2]
                      [--log-level INFO] [--mqtt-url URL --mqtt-password-file FILE [--mqtt-username U]
                      [--mqtt-ca-file FILE]] [--metrics-address HOST:PORT]

With ``--mqtt-url`` the process also runs the liveness subscriber (``regional.scheduler.liveness``): agents'
status and heartbeats become the ``AgentReachable`` condition of their LCMMachines (written by the leader);
and the fleet's item durations (``regional.scheduler.item_durations``): the planner's learned stuck limits
and the ``lcm_fleet_item_*`` metrics. With ``--metrics-address`` (off by default; the documented port is
9738) the process serves Prometheus metrics at ``/metrics`` (``regional.scheduler.metrics``,
docs/metrics.md); an address it cannot listen on is logged as an error and the scheduler goes on without
metrics.

Only the replica holding the Lease plans and writes. Logs are JSON lines on stderr. SIGTERM/SIGINT: stop
planning at once, release the Lease (a standby takes over within one retry period), exit 0; a second
signal forces the exit (130). Exit codes: 0 stopped on request, 1 a root task failed, 2 bad arguments or
an unreadable kubeconfig.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from agent import __version__
from agent.kits.commands import command_parser, deferred
from regional.cli.commands import add_broker_options


def main(argv: Sequence[str] | None = None) -> int:
    parser, sub = command_parser("lcm-scheduler", __doc__, __version__)
    run = sub.add_parser("run", help="run a scheduler replica until SIGTERM")
    run.add_argument("--kubeconfig", type=Path, required=True)
    run.add_argument("--namespace", default="", help="act in this namespace only (default: all)")
    run.add_argument("--qps", type=float, default=50.0, help="writes per second (default %(default)s)")
    run.add_argument("--burst", type=int, default=100, help="writes at once (default %(default)s)")
    run.add_argument("--workers", type=int, default=4, help="clusters planned at once (default %(default)s)")
    run.add_argument("--plan-duty", type=float, default=0.5,
                     help="the most of a core planning one cluster may take (default %(default)s)")
    run.add_argument("--lease-name", default="lcm-scheduler")
    run.add_argument("--lease-namespace", default="", help="default: --namespace, else 'default'")
    run.add_argument("--identity", default="", help="this replica's name in the Lease (default: host_random)")
    run.add_argument("--lease-duration", type=int, default=15, metavar="SECONDS")
    run.add_argument("--renew-deadline", type=float, default=10.0, metavar="SECONDS")
    run.add_argument("--retry-period", type=float, default=2.0, metavar="SECONDS")
    run.add_argument("--log-level", default="INFO")
    add_broker_options(run, url_help="broker to read agent liveness and item durations from (default: none)")
    run.add_argument("--metrics-address", default="", metavar="HOST:PORT",
                     help="serve Prometheus metrics at http://HOST:PORT/metrics, e.g. 0.0.0.0:9738 "
                          "(default: off)")
    run.set_defaults(func=deferred("regional.cli.scheduler_run:run"))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
