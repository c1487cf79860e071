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
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, config

from agent.api.crds import crd_paths
from testbed.sim.errors import ApiError
from testbed.sim.runner import Simulator, serve


def add_sim_commands(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sim = groups.add_parser("sim", help="the regional Kubernetes API simulator")
    commands = sim.add_subparsers(dest="command", required=True)

    srv = commands.add_parser("serve", help="serve the Kubernetes API until SIGTERM/SIGINT")
    srv.add_argument("--state-dir", type=Path, required=True, help="sqlite state, TLS files, admin token")
    srv.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    srv.add_argument("--port", type=int, default=6443, help="port to listen on; 0 picks a free one")
    srv.add_argument("--kubeconfig", type=Path,
                     help="where to write the admin kubeconfig (default STATE/kubeconfig)")
    srv.add_argument("--load", type=Path, action="append", default=[], metavar="PATH",
                     help="YAML file or directory of objects to create at start (repeatable)")
    srv.add_argument("--crds", type=Path, action="append", default=[], metavar="PATH",
                     help="CRD manifests installed before serving (repeatable; default: the project's CRDs)")
    srv.add_argument("--http", action="store_true", help="plain HTTP instead of HTTPS")
    srv.add_argument("--extra-host", action="append", default=[], metavar="HOST",
                     help="another name or address for the server certificate (repeatable)")
    srv.add_argument("--bookmark-interval", type=float, default=60.0, metavar="SECONDS",
                     help="how often watches that allow bookmarks get one (default %(default)s)")
    srv.set_defaults(func=_serve)

    fault = commands.add_parser("fault", help="inject a fault into a running simulator")
    fault.add_argument("--kubeconfig", help="the simulator's admin kubeconfig (default: $KUBECONFIG)")
    actions = fault.add_subparsers(dest="action", required=True)
    error = actions.add_parser("error", help="fail matching requests with an HTTP error")
    error.add_argument("--code", type=int, required=True, help="HTTP status, e.g. 500, 503, 429")
    error.add_argument("--retry-after", type=int, help="Retry-After seconds (429/503 default to 1)")
    latency = actions.add_parser("latency", help="delay matching requests")
    latency.add_argument("--ms", type=int, required=True, help="delay in milliseconds")
    for rule in (error, latency):
        rule.add_argument("--count", type=int, help="how many requests; default: until cleared")
        rule.add_argument("--probability", type=float, help="chance per matching request (default 1)")
        rule.add_argument("--verb", help="only this verb (get, list, watch, patch...)")
        rule.add_argument("--resource", help="only this resource, e.g. lcmmachines or lcmmachines/status")
        rule.add_argument("--path", help="only request paths matching this regular expression")
        rule.add_argument("--user", help="only this user, e.g. system:serviceaccount:NS:NAME")
    for name, text in (("drop-watches", "end every open watch stream now"),
                       ("compact", "drop the watch history: older resourceVersions get 410"),
                       ("clear", "remove every rule"), ("list", "show the rules")):
        actions.add_parser(name, help=text)
    fault.set_defaults(func=_fault)


def _serve(args: argparse.Namespace) -> int:
    simulator = Simulator(
        args.state_dir, host=args.host, port=args.port, tls=not args.http, crd_paths=args.crds or crd_paths(),
        bookmark_interval=args.bookmark_interval, kubeconfig_path=args.kubeconfig,
        extra_hosts=args.extra_host)
    try:
        serve(simulator, args.load)
    except ApiError as exc:
        print(f"lcmctl: {exc.message}", file=sys.stderr)
        return 1
    return 0


def _fault(args: argparse.Namespace) -> int:
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
