"""What ``lcmctl kube`` does (its usage and options: ``testbed/cli/commands.py``): build, start and stop
the real control plane of ``testbed.kube``."""

from __future__ import annotations

import argparse
import asyncio
import sys

from agent.api.crds import crd_paths
from testbed.kube.build import BuildError, ensure_built
from testbed.kube.plane import ControlPlane, PlaneError, PlaneSettings, recorded_url, stop_recorded


def announce(line: str) -> None:
    print(f"lcmctl: {line}", file=sys.stderr, flush=True)


def build(args: argparse.Namespace) -> int:
    try:
        print(ensure_built(announce))
    except BuildError as exc:
        print(f"lcmctl kube build: {exc}", file=sys.stderr)
        return 1
    return 0


def up(args: argparse.Namespace) -> int:
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


def down(args: argparse.Namespace) -> int:
    stopped = stop_recorded(PlaneSettings(args.state_dir.resolve()))
    print(f"stopped {', '.join(stopped)}" if stopped else f"nothing running from {args.state_dir}")
    return 0
