"""Shared by the release's modules: a Docker API client for ``lcm_docker_host``, and the wait loop.

The Docker SDK is the agent's own dependency, so playbooks that run under the agent's interpreter have it;
nothing here needs the ``community.docker`` collection, and nothing passes a secret on a command line.
"""

from __future__ import annotations

import time

DEFAULT_HOST = "unix:///var/run/docker.sock"


def client(module, docker_host, timeout=60):
    """A client for ``docker_host``; a module failure naming the host when the engine does not answer."""
    try:
        import docker
    except ImportError:
        module.fail_json(msg="the Docker SDK for Python (docker) is not importable by this interpreter")
    try:
        api = docker.DockerClient(base_url=docker_host or DEFAULT_HOST, version="auto", timeout=timeout)
        api.ping()
    except Exception as exc:  # the SDK raises several unrelated types for an absent engine
        module.fail_json(msg=f"the Docker engine at {docker_host} does not answer: {exc}")
    return api


def swarm_info(api):
    """The local engine's view of its swarm membership, as plain values."""
    swarm = api.info().get("Swarm") or {}
    return {
        "state": swarm.get("LocalNodeState", "inactive"),
        "node_id": swarm.get("NodeID", ""),
        "node_addr": swarm.get("NodeAddr", ""),
        "manager": bool(swarm.get("ControlAvailable")),
        "cluster_id": (swarm.get("Cluster") or {}).get("ID", ""),
        "remote_managers": sorted(m.get("Addr", "") for m in swarm.get("RemoteManagers") or []),
        "error": swarm.get("Error", ""),
    }


def wait_for(check, timeout, interval=0.5):
    """Call ``check`` until it returns something true or ``timeout`` seconds pass; returns the last value."""
    deadline = time.monotonic() + timeout
    value = check()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = check()
    return value


def host_of(address):
    """``10.0.0.1`` of ``10.0.0.1:2377`` (and of ``10.0.0.1``)."""
    return address.rsplit(":", 1)[0] if address.count(":") == 1 else address
