"""``lcmctl explain``: why a cluster's rollout, or one machine, is where it is, as a tree.

    lcmctl explain --namespace NS --cluster NAME [--kubeconfig K]
    lcmctl explain --namespace NS MACHINE [--kubeconfig K]

Like ``clusterctl describe``: the cluster (its progress, release and conditions), then each machine (its
type, state, items) with why it waits (``status.waiting``, written by the scheduler: one machine-readable
reason, what it waits for, since when), what is stuck on it (the cluster's ``OperationStuck`` names it) and
its last error. Everything comes from the API objects; nothing here decides anything. The parser is in
``regional/cli/commands.py`` (``lcmctl`` imports this handler only when the command runs); ``tree``
renders from raw objects alone.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from agent.adapters.kube import KubeError, Resource, connect
from agent.api.models import GROUP, VERSION

Raw = Mapping[str, Any]


def explain(args: argparse.Namespace) -> int:
    if not args.machine and not args.cluster:
        print("lcmctl explain: name a machine or --cluster")
        return 2
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    machines_res = Resource(GROUP, VERSION, "lcmmachines")
    clusters_res = Resource(GROUP, VERSION, "lcmclusters")
    async with await connect(kubeconfig=args.kubeconfig) as kube:
        try:
            only = await kube.get(machines_res, args.namespace, args.machine) if args.machine else None
            name = args.cluster or (only or {}).get("spec", {}).get("clusterName", "")
            cluster = await kube.get(clusters_res, args.namespace, name) if name else None
            listed = await kube.list_objects(machines_res, args.namespace)
        except KubeError as exc:
            print(f"lcmctl explain: {exc}")
            return 1
    members = [m for m in listed.get("items", []) if (m.get("spec") or {}).get("clusterName") == name]
    print("\n".join(tree(cluster, members, only=args.machine)))
    return 0


def _conditions(raw: Raw | None) -> list[Raw]:
    return list(((raw or {}).get("status") or {}).get("conditions") or [])


def _stuck_reasons(cluster: Raw | None) -> dict[str, str]:
    """Machine → what is stuck on it, from the cluster's ``OperationStuck`` message (``m: why; m2: why``)."""
    stuck = next((c for c in _conditions(cluster) if c.get("type") == "OperationStuck"), None)
    if stuck is None or stuck.get("status") != "True":
        return {}
    out = {}
    for part in str(stuck.get("message", "")).split("; "):
        machine, _, why = part.partition(": ")
        if why:
            out[machine] = why
    return out


def _last_error(status: Raw) -> str:
    failed = [(name, slot) for name, slot in (status.get("stateItemStatuses") or {}).items()
              if slot.get("exitCode") not in (None, 0, -1)]
    if not failed:
        return ""
    name, slot = max(failed, key=lambda pair: str(pair[1].get("finishedAt", "")))
    return f"{name}: {' '.join(str(slot.get('message', '')).split())[:200]}"


def _machine_lines(raw: Raw, stuck: Mapping[str, str]) -> list[str]:
    """One machine: the headline, then one line per thing that explains it."""
    name = str(raw["metadata"]["name"])
    spec, status = raw.get("spec") or {}, raw.get("status") or {}
    head = (f"{name}  {spec.get('type', '')}  {status.get('state') or 'Uninitialized'}  "
            f"items {status.get('progress') or '-'}  release {spec.get('release') or '-'}")
    details = []
    if waiting := status.get("waiting"):
        since = f" since {waiting['since']}" if waiting.get("since") else ""
        details.append(f"waiting: {waiting.get('reason')}{since}: {waiting.get('message', '')}")
    if status.get("lcmOperationStuck") or name in stuck:
        details.append(f"stuck: {stuck.get(name, 'lcmOperationStuck is true')}")
    if error := _last_error(status):
        details.append(f"last error: {error}")
    if drain := status.get("swarmCordonDrain"):
        details.append(f"swarm node: {drain}")
    if pending := status.get("pendingOperation"):
        details.append(f"pending: {pending}")
    return [head, *details]


def _branch(lines: Sequence[str], last: bool) -> list[str]:
    """A subtree under its parent: the first line on the branch, the others indented below it."""
    first, rest = ("└─ ", "   ") if last else ("├─ ", "│  ")
    return [(first if n == 0 else rest) + line for n, line in enumerate(lines)]


def _sub(items: Sequence[Sequence[str]]) -> list[str]:
    out: list[str] = []
    for n, lines in enumerate(items):
        out += _branch(lines, n == len(items) - 1)
    return out


def tree(cluster: Raw | None, machines: Sequence[Raw], *, only: str | None = None) -> list[str]:
    """The explanation as text lines: the cluster, its conditions, its machines (or ``only`` that one)."""
    if cluster is None:
        head = "LCMCluster: not found (the machine names no cluster, or it is gone)"
        conditions: list[list[str]] = []
    else:
        meta, spec, status = cluster["metadata"], cluster.get("spec") or {}, cluster.get("status") or {}
        head = (f"LCMCluster {meta.get('namespace')}/{meta['name']}  {status.get('progress') or '-'}  "
                f"(release {spec.get('release') or '-'}, applied {status.get('release') or '-'})")
        conditions = [
            [f"{c.get('type')}: {c.get('status')}" + (f" {c['reason']}" if c.get("reason") else "")
             + (f": {c['message']}" if c.get("message") else "")]
            for c in _conditions(cluster)
        ]
    stuck = _stuck_reasons(cluster)
    chosen = sorted((m for m in machines if only is None or m["metadata"]["name"] == only),
                    key=lambda m: str(m["metadata"]["name"]))
    shown = [_machine_lines(m, stuck) for m in chosen]
    waiting = sum(1 for m in chosen if (m.get("status") or {}).get("waiting"))
    title = f"Machine {only}" if only is not None else f"Machines ({len(chosen)}, {waiting} waiting)"
    parts = [[f"Conditions ({len(conditions)})", *_sub(conditions)], [title, *_sub(shown)]]
    if only is not None and not shown:
        parts[-1] = [f"Machine {only}: not found in this cluster"]
    return [head, *_sub(parts)]
