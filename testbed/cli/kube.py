"""``lcmctl kube``: the real regional control plane (etcd, kube-apiserver, kube-controller-manager) on this
machine, with the project's CRDs installed, for people to try the agent, the scheduler and kubectl against.

    lcmctl kube up [--state-dir .state/kube] [--host 127.0.0.1] [--port 0]
    lcmctl kube down [--state-dir .state/kube]
    lcmctl kube build

``up`` builds the binaries from ``testbed/kube`` on first use (saying so), starts the three components in the
background, waits until the API is ready and the CRDs are Established, then prints the admin kubeconfig's
path; ``down`` stops them. Logs are in STATE/logs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from agent.api.crds import crd_paths
from testbed.kube.build import BuildError, ensure_built
from testbed.kube.plane import ControlPlane, PlaneError, PlaneSettings, recorded_url, stop_recorded


def add_kube_commands(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    kube = groups.add_parser("kube", help="the real control plane: etcd, kube-apiserver, controller manager",
                             description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = kube.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="build if needed, start in the background, install the CRDs")
    down = commands.add_parser("down", help="stop a control plane started by `up`")
    for parser in (up, down):
        parser.add_argument("--state-dir", type=Path, default=Path(".state/kube"),
                            help="keys, etcd data, logs, kubeconfig (default %(default)s)")
    up.add_argument("--host", default="127.0.0.1", help="address kube-apiserver listens on")
    up.add_argument("--port", type=int, default=0, help="kube-apiserver's port (default: a free one)")
    up.set_defaults(func=_up)
    down.set_defaults(func=_down)
    build = commands.add_parser("build", help="build the binaries from testbed/kube (cached by digest)")
    build.set_defaults(func=_build)


def announce(line: str) -> None:
    print(f"lcmctl: {line}", file=sys.stderr, flush=True)


def _build(args: argparse.Namespace) -> int:
    try:
        print(ensure_built(announce))
    except BuildError as exc:
        print(f"lcmctl kube build: {exc}", file=sys.stderr)
        return 1
    return 0


def _up(args: argparse.Namespace) -> int:
    settings = PlaneSettings(args.state_dir.resolve(), host=args.host, port=args.port, crds=crd_paths())
    running = recorded_url(settings)
    if running:
        print(f"already running on {running}\nexport KUBECONFIG={settings.kubeconfig_path}")
        return 0
    try:
        plane = ControlPlane(settings, ensure_built(announce))
        asyncio.run(plane.start())
    except (BuildError, PlaneError, OSError) as exc:
        print(f"lcmctl kube up: {exc}", file=sys.stderr)
        return 1
    print(f"kube-apiserver on {plane.url} (logs: {settings.log_dir}); stop with `lcmctl kube down`\n"
          f"export KUBECONFIG={settings.kubeconfig_path}")
    return 0


def _down(args: argparse.Namespace) -> int:
    stopped = stop_recorded(PlaneSettings(args.state_dir.resolve()))
    print(f"stopped {', '.join(stopped)}" if stopped else f"nothing running from {args.state_dir}")
    return 0
