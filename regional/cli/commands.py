"""The regional side's ``lcmctl`` command groups: their usage, options and help, and which handler runs each.

``lcmctl`` builds its whole parser from this module and the plugins' (``testbed/cli/commands.py``), so it
imports nothing heavy: a handler (``regional/cli/<group>.py``, which imports the API client) is named through
``deferred`` and imported only when its command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from agent.decisions.cloudinit import UNIT_FILE
from agent.kits.commands import Groups, deferred

CLOUD_INIT = """``lcmctl cloud-init``: what a provider needs to hand a new machine its user-data.

    lcmctl cloud-init provision --kubeconfig ADMIN --namespace cluster-a --machine worker-07 \
        [--type worker] [--cluster lab] [--token-lifetime 604800] --token-file worker-07.token

    lcmctl cloud-init render --machine worker-07 --namespace cluster-a \\
        --api-server https://regional.example.net:6443 --ca-file ca.pem --token-file worker-07.token \\
        --agent-url https://mirror.example.net/lcm/lcm_agent-0.1.0-py3-none-any.whl --agent-sha256 HEX \\
        --index-url https://mirror.example.net/pypi/simple/ [--mqtt-url mqtts://… --mqtt-username …
        --mqtt-password-file F --mqtt-ca-file F] [--output user-data.yaml]

``provision`` creates the LCMMachine, a ServiceAccount whose Role allows that object (and the machine's
swarm join token) only, and writes a bound token of the account (0600) that expires after
``--token-lifetime`` seconds (7 days): the machine must boot before then; its agent renews the token
itself from then on. Run again, it issues a new token (e.g. after a revocation, docs/security.md).

The agent URL, digest and index are the release's (ClusterRelease ``spec.agent``); the token is the
machine's own. The output carries the token, so ``--output`` writes it 0600; without it the document goes
to stdout, for a pipe into the provider's tooling. Credentials are read from files, never from argv.
"""


def add_cloudinit_commands(groups: Groups) -> None:
    group = groups.add_parser("cloud-init", help="cloud-init user-data that installs and starts the agent")
    commands = group.add_subparsers(dest="command", required=True)
    render = commands.add_parser("render", help="render one machine's user-data",
                                 description=CLOUD_INIT, formatter_class=argparse.RawDescriptionHelpFormatter)
    render.add_argument("--machine", required=True, help="the LCMMachine's name")
    render.add_argument("--namespace", required=True, help="the LCMMachine's namespace")
    render.add_argument("--api-server", required=True, metavar="URL", help="https:// URL of the regional API")
    render.add_argument("--ca-file", type=Path, help="PEM bundle signing the API's certificate")
    render.add_argument("--token-file", type=Path, required=True, help="file holding the machine's token")
    render.add_argument("--agent-url", required=True, metavar="URL", help="the release's agent wheel")
    render.add_argument("--agent-sha256", required=True, metavar="HEX", help="the wheel's sha256")
    render.add_argument("--index-url", required=True, metavar="URL",
                        help="PEP 503 index with the agent's dependencies (the release's mirror)")
    render.add_argument("--agent-tree-url", default="", metavar="URL",
                        help="the agent built for the machines (lcm_agent-<version>-….tar.gz): unpacked "
                             "instead of installing the wheel and its dependencies (optional)")
    render.add_argument("--agent-tree-sha256", default="", metavar="HEX", help="the tree archive's sha256")
    render.add_argument("--mqtt-url", default="", metavar="URL", help="mqtt:// or mqtts:// broker (optional)")
    render.add_argument("--mqtt-username", default="", help="this node's broker user")
    render.add_argument("--mqtt-password-file", type=Path, help="file holding the broker password")
    render.add_argument("--mqtt-ca-file", type=Path, help="PEM bundle signing the broker's certificate")
    render.add_argument("--unit-file", type=Path, default=UNIT_FILE,
                        help="the agent's systemd unit (default: systemd/lcm-agent.service of this checkout)")
    render.add_argument("--output", "-o", type=Path, help="write here (mode 0600) instead of stdout")
    render.set_defaults(func=deferred("regional.cli.cloudinit:render"))

    prov = commands.add_parser("provision", help="create a machine's LCMMachine, ServiceAccount and token")
    prov.add_argument("--kubeconfig", type=Path, required=True, help="admin kubeconfig of the regional API")
    prov.add_argument("--namespace", required=True)
    prov.add_argument("--machine", required=True)
    prov.add_argument("--type", default="worker", choices=("control", "worker", "bastion", "unassigned"))
    prov.add_argument("--cluster", default="", help="spec.clusterName of the LCMMachine")
    prov.add_argument("--token-file", type=Path, required=True, help="where to write the token (mode 0600)")
    prov.add_argument("--token-lifetime", type=int, metavar="SECONDS",
                      help="how long the token is valid if the machine never renews it (at least 600; "
                           "default: 7 days, the time the machine has to boot)")
    prov.set_defaults(func=deferred("regional.cli.provision:provision"))


def add_watch_commands(groups: Groups) -> None:
    cmd = groups.add_parser("watch", help="live view of a cluster's rollout (API + MQTT)")
    cmd.add_argument("--namespace", required=True)
    cmd.add_argument("--cluster", required=True, help="the LCMCluster's name (spec.clusterName of machines)")
    cmd.add_argument("--kubeconfig", type=Path, help="default: $KUBECONFIG or ~/.kube/config")
    add_broker_options(cmd, url_help="mqtt:// or mqtts:// URL of the broker (optional)")
    cmd.add_argument("--once", action="store_true", help="print one table and exit")
    cmd.set_defaults(func=deferred("regional.cli.watch:watch"))


DIAGNOSTICS = """``lcmctl diagnostics MACHINE``: the newest diagnostics bundle a machine's agent sent.

    lcmctl diagnostics MACHINE --namespace NS --mqtt-url mqtts://broker:8883 \\
        [--mqtt-username lcm_regional] --mqtt-password-file F [--mqtt-ca-file CA] [--output FILE]

An agent gathers a bundle when its item is flagged stuck (it failed for good, or runs well past what the
fleet takes) and publishes it retained on its own ``diagnostics`` topic; this command reads it from the
broker. It prints the message as JSON (the bundle, what triggered it, when), or writes it to ``--output``
(0600). Exit codes: 0 a bundle, 1 none retained for that machine, 2 the broker did not answer or refused.
See docs/telemetry.md, "Evidence on failure".
"""


def add_diagnostics_commands(groups: Groups) -> None:
    cmd = groups.add_parser("diagnostics", help="the newest diagnostics bundle of a machine (MQTT)",
                            description=DIAGNOSTICS, formatter_class=argparse.RawDescriptionHelpFormatter)
    cmd.add_argument("machine", help="the LCMMachine's name")
    cmd.add_argument("--namespace", required=True)
    add_broker_options(cmd, url_help="mqtt:// or mqtts:// URL of the broker", required=True)
    cmd.add_argument("--output", type=Path, help="write the bundle here (0600) instead of printing it")
    cmd.set_defaults(func=deferred("regional.cli.diagnostics:diagnostics"))


def add_broker_options(cmd: argparse.ArgumentParser, *, url_help: str, required: bool = False) -> None:
    """``--mqtt-url`` (``mqtt://`` or ``mqtts://``), the regional user, its password file and the CA; the
    handler makes its client with ``regional.cli.broker_options.broker_settings``."""
    cmd.add_argument("--mqtt-url", default="", required=required, help=url_help)
    cmd.add_argument("--mqtt-username", default="lcm_regional")
    cmd.add_argument("--mqtt-password-file", type=Path, help="file holding the broker password")
    cmd.add_argument("--mqtt-ca-file", type=Path, help="CA of the broker's certificate")


def add_explain_commands(groups: Groups) -> None:
    cmd = groups.add_parser("explain", help="why a cluster or a machine waits, as a tree")
    cmd.add_argument("machine", nargs="?", help="an LCMMachine: its branch of the tree only")
    cmd.add_argument("--namespace", required=True)
    cmd.add_argument("--cluster", help="the LCMCluster (default: the machine's spec.clusterName)")
    cmd.add_argument("--kubeconfig", type=Path, help="default: $KUBECONFIG or ~/.kube/config")
    cmd.set_defaults(func=deferred("regional.cli.explain:explain"))


COMMAND_GROUPS = (add_cloudinit_commands, add_watch_commands, add_diagnostics_commands, add_explain_commands)
"""The regional side's own command groups; a new one is one function added here."""
