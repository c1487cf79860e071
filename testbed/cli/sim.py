"""``lcmctl sim``: the regional API simulator, served here or driven from here.

    lcmctl sim serve --port 6443 --state-dir DIR --kubeconfig OUT [--load deploy/samples/]
    lcmctl sim fault [--kubeconfig K] error --code 503 --count 3
    lcmctl sim fault latency --ms 200 --resource lcmmachines
    lcmctl sim fault drop-watches | compact | clear | list

Faults travel over HTTPS to the running simulator's admin endpoint with the kubeconfig's (admin) token, so
they work against a simulator in another process or on another port, exactly as a test's fault handle does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from kubernetes_asyncio import client, config

from agent.api.crds import crd_paths
from testbed.sim import runner
from testbed.sim.errors import ApiError
from testbed.sim.runner import Simulator


def serve(args: argparse.Namespace) -> int:
    simulator = Simulator(
        args.state_dir, host=args.host, port=args.port, tls=not args.http, crd_paths=args.crds or crd_paths(),
        bookmark_interval=args.bookmark_interval, kubeconfig_path=args.kubeconfig,
        extra_hosts=args.extra_host)
    try:
        runner.serve(simulator, args.load)
    except ApiError as exc:
        print(f"lcmctl: {exc.message}", file=sys.stderr)
        return 1
    return 0


def fault(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"action": args.action.replace("-", "_")}
    for key in ("code", "ms", "retry_after", "count", "probability", "verb", "resource", "path", "user"):
        value = getattr(args, key, None)
        if value is not None:
            body[key] = value
    try:
        result = asyncio.run(_post_fault(args.kubeconfig, body))
    except client.ApiException as exc:
        print(f"lcmctl: {exc.status} {exc.reason}: {_status_message(exc.body)}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


def _status_message(body: bytes | str | None) -> str:
    """The message of the server's ``Status`` body, or the raw body when it is not one."""
    try:
        return str(json.loads(body or "{}").get("message", ""))
    except (ValueError, AttributeError):
        return body.decode(errors="replace") if isinstance(body, bytes) else str(body)


async def _post_fault(kubeconfig: str | None, body: dict[str, Any]) -> Any:
    cfg = client.Configuration()
    await config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    async with client.ApiClient(cfg) as api:
        return await api.call_api(
            "/sim/v1/faults", "POST", body=body, auth_settings=["BearerToken"],
            header_params={"Content-Type": "application/json", "Accept": "application/json"},
            response_types_map={200: "object"}, _return_http_data_only=True)
