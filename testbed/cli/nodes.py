"""``lcmctl nodes``: lab nodes for the demo, network namespaces with their own dockerd on this host.

    lcmctl nodes up node-1 node-2 node-3 [--prefix lcmlab] [--subnet 10.77.0.0/24] [--state-dir DIR]
    lcmctl nodes ls
    lcmctl nodes down [--prefix lcmlab | --all]

``up`` prints, per node, what an agent or a playbook needs to reach it (address, docker host, the
``playbook_vars`` of docs/swarm.md). ``down`` also cleans up after a crash: it finds what is left by the
naming prefix.
"""

from __future__ import annotations

import argparse
import json
import sys

from testbed.lab.netns import dockerd, nodes
from testbed.lab.netns.namespaces import LabError


def up(args: argparse.Namespace) -> int:
    reason = nodes.missing_requirements()
    if reason:
        print(f"lcmctl nodes: {reason}", file=sys.stderr)
        return 2
    try:
        existing = nodes.Lab.load(args.prefix) if nodes.registry_path(args.prefix).exists() else None
        if existing is not None:
            existing.add(args.names)
            lab = existing
        else:
            lab = nodes.up(args.names, prefix=args.prefix, subnet=args.subnet, state_dir=args.state_dir)
    except LabError as exc:
        print(f"lcmctl nodes: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(_describe(lab), indent=2))
    return 0


def _describe(lab: nodes.Lab) -> dict[str, object]:
    return {
        "prefix": lab.net.prefix, "subnet": str(lab.net.subnet), "gateway": str(lab.net.gateway),
        "state_dir": str(lab.state_dir),
        "nodes": [{"name": n.name, "address": n.address, "netns": str(n.netns_path),
                   "enter": " ".join(n.nsenter("bash")), "playbook_vars": n.playbook_vars()}
                  for n in lab.nodes],
    }


def ls(args: argparse.Namespace) -> int:
    labs = nodes.registered()
    if not labs:
        print("no labs")
    for record in labs:
        lab = nodes.Lab.load(str(record["prefix"]))
        print(f"{lab.net.prefix}  {lab.net.subnet}  {lab.state_dir}")
        for node in lab.nodes:
            state = "running" if dockerd.ping(node) else "stopped"
            print(f"  {node.name:<20} {node.address:<15} dockerd {state:<8} {node.docker_host}")
    return 0


def down(args: argparse.Namespace) -> int:
    prefixes = [str(r["prefix"]) for r in nodes.registered()] if args.all else [args.prefix]
    try:
        for prefix in prefixes:
            removed = nodes.teardown(prefix)
            print(f"{prefix}: removed {len(removed)} item(s)" if removed else f"{prefix}: nothing left")
    except LabError as exc:
        print(f"lcmctl nodes: {exc}", file=sys.stderr)
        return 1
    return 0
