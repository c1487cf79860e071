"""What ``lcmctl cloud-init provision`` does (its usage and options: ``regional/cli/commands.py``): create a
machine's LCMMachine, ServiceAccount and token through the regional API."""

from __future__ import annotations

import argparse
import asyncio
import sys

from agent.adapters.atomic import write_atomic
from agent.adapters.kube import KubeError, connect
from regional import provisioning
from regional.provisioning import BOOTSTRAP_LIFETIME, ProvisioningError


def provision(args: argparse.Namespace) -> int:
    lifetime = BOOTSTRAP_LIFETIME if args.token_lifetime is None else args.token_lifetime

    async def provisioned() -> str:
        async with await connect(kubeconfig=args.kubeconfig) as kube:
            await provisioning.ensure_namespace(kube, args.namespace)
            return await provisioning.provision(kube, args.namespace, args.machine, cluster=args.cluster,
                                                machine_type=args.type, lifetime=lifetime)
    try:
        token = asyncio.run(provisioned())
    except (OSError, ProvisioningError, KubeError) as exc:
        print(f"lcmctl cloud-init provision: {exc}", file=sys.stderr)
        return 1
    write_atomic(args.token_file, f"{token}\n".encode(), 0o600)
    print(f"LCMMachine {args.namespace}/{args.machine} is provisioned; its token is in {args.token_file}")
    return 0
