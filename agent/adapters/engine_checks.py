"""Cheap looks at the local Docker Engine for the reconciler's checks, and its event stream as a trigger.

``observe`` is one ``GET /info``, one container list (by the required-container label) and one read of
``daemon.json``: a few milliseconds, so the agent can afford it on a timer. It is blocking (the docker SDK
is synchronous): the agent calls it with ``asyncio.to_thread``; the reconciler process calls it directly.
``EngineEvents`` follows ``GET /events`` in a thread of its own and calls back when something a check
would notice happened: a required container stopped or went away, the engine reloaded, a swarm node
changed, or the stream broke (the engine stopped or restarted).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import docker
from docker.errors import DockerException

from agent.adapters.engine_access import EngineAccess
from agent.api.desired import REQUIRED_LABEL, VERSION_LABEL, Observed, ObservedContainer

log = logging.getLogger(__name__)

CHECK_TIMEOUT = 10.0
"""Seconds one check call may take: an engine that answers slower than this is treated as down."""
CONTAINER_ACTIONS = frozenset({"die", "destroy", "stop", "kill", "oom", "rename"})
"""Container events that can make a required container drift (it is filtered by label first)."""


def engine_client(host: str, timeout: float = CHECK_TIMEOUT) -> Any:
    """A low-level docker client of the engine at ``host``; raises DockerException when it does not answer
    (the API version is negotiated with the engine at once)."""
    return docker.APIClient(base_url=host, timeout=timeout)


def _read_config(path: str) -> str | None:
    """The text of ``daemon.json``; None when it does not exist."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def observe(access: EngineAccess) -> Observed:
    """What the engine and its config file look like now."""
    content = _read_config(access.config_path)
    try:
        client = engine_client(access.host)
    except (DockerException, OSError) as exc:  # requests' errors are OSErrors
        return Observed(engine_error=_reason(exc), config_content=content)
    try:
        info = client.info()
        listed = client.containers(all=True, filters={"label": REQUIRED_LABEL})
    except (DockerException, OSError) as exc:
        return Observed(engine_error=_reason(exc), config_content=content)
    finally:
        client.close()
    return _observed(info, listed, content)


def _observed(info: Mapping[str, Any], listed: list[Mapping[str, Any]], content: str | None) -> Observed:
    swarm = info.get("Swarm") or {}
    labels = dict(entry.split("=", 1) for entry in info.get("Labels") or () if "=" in entry)
    containers = tuple(
        ObservedContainer(name=(c.get("Labels") or {}).get(REQUIRED_LABEL, ""), image=c.get("Image", ""),
                          version=(c.get("Labels") or {}).get(VERSION_LABEL, ""), state=c.get("State", ""))
        for c in listed
    )
    return Observed(
        config_content=content, swarm_state=swarm.get("LocalNodeState", ""), node_id=swarm.get("NodeID", ""),
        node_addr=swarm.get("NodeAddr", ""), cluster_id=(swarm.get("Cluster") or {}).get("ID", ""),
        manager=bool(swarm.get("ControlAvailable")),
        remote_managers=tuple(m.get("Addr", "") for m in swarm.get("RemoteManagers") or ()),
        labels=labels, containers=_running_first(containers),
    )


def _running_first(containers: tuple[ObservedContainer, ...]) -> tuple[ObservedContainer, ...]:
    """With two containers for one name (a recreate half done), the running one speaks for it."""
    return tuple(sorted(containers, key=lambda c: c.state != "running"))


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "explanation", None) or str(exc) or type(exc).__name__
    return str(text).splitlines()[0][:300]


def interesting(event: Mapping[str, Any]) -> bool:
    """Whether an engine event can mean drift: a required container stopping or going, a reload, or any
    change of a swarm node (a demotion, a node leaving)."""
    kind, action = event.get("Type"), str(event.get("Action", ""))
    if kind == "container":
        attributes = (event.get("Actor") or {}).get("Attributes") or {}
        return REQUIRED_LABEL in attributes and action.split(":")[0] in CONTAINER_ACTIONS
    return kind in ("daemon", "node")


class EngineEvents:
    """Follows the engine's event stream in a daemon thread; ``notify`` is called (from that thread) with
    a short reason whenever a check should run. Reconnects after the stream breaks, pacing attempts by
    ``retry`` seconds, so a stopped engine costs one connection attempt per ``retry``."""

    def __init__(self, host: str, notify: Callable[[str], None], *, retry: float = 2.0) -> None:
        self.host, self.notify, self.retry = host, notify, retry
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._stream: Any = None
        self._thread = threading.Thread(target=self._follow, name="engine-events", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ends the thread: the open stream is closed under it (its blocking read then fails)."""
        self._stopping.set()
        with self._lock:
            if self._stream is not None:
                self._stream.close()
        self._thread.join(timeout=CHECK_TIMEOUT)

    def _follow(self) -> None:
        connected = True  # the first connection is not news: the agent checks when it starts anyway
        while not self._stopping.is_set():
            try:
                client = engine_client(self.host)
            except (DockerException, OSError):
                connected = False
                self._stopping.wait(self.retry)
                continue
            if not connected:
                self.notify("engine answers again")
            connected = True
            try:
                self._read(client)
            except (DockerException, OSError, ValueError) as exc:
                log.debug("engine event stream broke: %s", exc)
            finally:
                client.close()
            if not self._stopping.is_set():
                self.notify("engine event stream ended")
                self._stopping.wait(self.retry)

    def _read(self, client: Any) -> None:
        stream = client.events(decode=True, filters={"type": ["container", "daemon", "node"]})
        with self._lock:
            if self._stopping.is_set():
                stream.close()
                return
            self._stream = stream
        try:
            for event in stream:
                if interesting(event):
                    self.notify(f"engine event {event.get('Type')} {event.get('Action')}")
        finally:
            with self._lock:
                self._stream = None
