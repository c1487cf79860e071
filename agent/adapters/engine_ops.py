"""What the reconciler does to the local engine: its service, its config file, its swarm membership and the
release's required containers. Blocking calls, for the reconciler process only (never the agent's loop).

Every failure comes back as ``EngineOpError`` with the engine's or the service manager's own words, which
the reconciler puts into its report. Nothing here takes a decision: ``agent.decisions.drift`` chose the
action, this module carries it out.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from docker.errors import DockerException

from agent.adapters.atomic import write_atomic
from agent.adapters.engine_access import EngineAccess
from agent.adapters.engine_checks import engine_client
from agent.api.desired import REQUIRED_LABEL, Membership, RequiredContainer

SERVICE_TIMEOUT = 90.0
"""Seconds a service manager action (a dockerd start or restart) may take."""
JOIN_TIMEOUT = 60.0
"""Seconds a swarm join may take; the engine itself gives up earlier when no manager answers."""
LISTEN_ADDRESS = "0.0.0.0:2377"
CONFIG_MODE = 0o644


class EngineOpError(Exception):
    """An action failed; the message says which and why (and never holds a join token)."""


def service(access: EngineAccess, action: str) -> None:
    """``start``, ``restart`` or ``reload`` the engine through its service manager."""
    if access.service_manager == "systemd":
        argv = ["systemctl", action, access.docker_unit]
    elif access.service_manager == "command" and access.docker_service:
        argv = [access.docker_service, action]
    elif access.service_manager == "command":
        raise EngineOpError(f"cannot {action} the engine: service manager 'command' needs lcm_docker_service")
    else:
        raise EngineOpError(f"cannot {action} the engine: unknown service manager {access.service_manager!r}")
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=SERVICE_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EngineOpError(f"{' '.join(argv)}: {exc}") from None
    if done.returncode != 0:
        tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise EngineOpError(f"{' '.join(argv)} exited with {done.returncode}: {tail or 'no output'}")


def write_config(path: str, content: str) -> None:
    """Replace ``daemon.json`` atomically (dockerd must never read half a file), keeping its mode."""
    target = Path(path)
    try:
        mode = os.stat(target).st_mode & 0o777
    except FileNotFoundError:
        mode = CONFIG_MODE
    try:
        write_atomic(target, content.encode(), mode)
    except OSError as exc:
        raise EngineOpError(f"cannot write {path}: {exc.strerror or exc}") from None


class Engine:
    """One connection to the engine for the length of a reconciler step."""

    def __init__(self, access: EngineAccess, timeout: float = JOIN_TIMEOUT) -> None:
        try:
            self.client: Any = engine_client(access.host, timeout)
        except (DockerException, OSError) as exc:
            raise EngineOpError(f"the engine at {access.host} does not answer: {exc}") from None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def join(self, membership: Membership, token: str, addresses: tuple[str, ...]) -> None:
        """Join through ``addresses`` (the desired managers first) with the token of the desired role."""
        advertise = membership.advertise_address or None
        self._call("join the swarm", self.client.join_swarm, list(addresses), token,
                   listen_addr=LISTEN_ADDRESS, advertise_addr=advertise)

    def leave(self) -> None:
        """Leave, forced: a node stuck joining, in another swarm, or a manager must go all the same."""
        self._call("leave the swarm", self.client.leave_swarm, force=True)

    def demote(self, node_id: str) -> None:
        """A manager makes itself a worker: it updates its own node's spec (managers may)."""
        node = self._call("inspect its own node", self.client.inspect_node, node_id)
        spec = {**node["Spec"], "Role": "worker"}
        self._call("demote itself", self.client.update_node, node_id, node["Version"]["Index"], spec)

    def remove_stale_entries(self, own_id: str, address: str, previous: str = "") -> list[str]:
        """Remove the entries this node left behind (a manager only): after a leave and rejoin the swarm
        lists the node twice. ``previous`` is its ID before it left, removed even before the managers
        mark it down; other down entries at ``address`` go too. Returns the IDs removed."""
        nodes = self._call("list the swarm's nodes", self.client.nodes)
        def left_here(node: dict[str, Any]) -> bool:
            status = node.get("Status") or {}
            return bool(status.get("Addr") == address and status.get("State") == "down")

        stale = [n["ID"] for n in nodes if n["ID"] != own_id and (n["ID"] == previous or left_here(n))]
        for node_id in stale:
            self._call(f"remove stale node {node_id}", self.client.remove_node, node_id, force=True)
        return stale

    def recreate(self, want: RequiredContainer) -> None:
        """Remove every container of this name or required-label value, then run it from the record."""
        found = self._call("list containers", self.client.containers, all=True,
                           filters={"label": f"{REQUIRED_LABEL}={want.name}"})
        named = self._call("list containers", self.client.containers, all=True, filters={"name": want.name})
        doomed = {c["Id"] for c in [*found, *named] if f"/{want.name}" in c.get("Names", ())
                  or (c.get("Labels") or {}).get(REQUIRED_LABEL) == want.name}
        for container in doomed:
            self._call(f"remove container {container[:12]}", self.client.remove_container, container,
                       force=True)
        host_config = self.client.create_host_config(network_mode=want.network_mode,
                                                     restart_policy={"Name": "unless-stopped"})
        created = self._call(f"create container {want.name}", self.client.create_container, want.image,
                             command=list(want.command) or None, name=want.name, labels=want.labels,
                             host_config=host_config)
        self._call(f"start container {want.name}", self.client.start, created["Id"])

    @staticmethod
    def _call(what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (DockerException, OSError) as exc:
            reason = getattr(exc, "explanation", None) or exc
            raise EngineOpError(f"cannot {what}: {reason}") from None
