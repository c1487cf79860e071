"""The local Docker Engine's swarm, through the docker SDK: the join tokens of a manager.

The SDK is synchronous (requests over the engine's socket): callers on the event loop run these functions with
``asyncio.to_thread``. Every failure of the engine (not reachable, not a manager, an API error) comes back as
one ``SwarmError`` whose message says which engine and why, so the caller can put it in an item's status.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from docker.errors import APIError, DockerException

from agent.adapters.engine_checks import engine_client

ENGINE_TIMEOUT = 30.0
"""Seconds one engine call may take: a hung engine must fail the item, not hang the agent's thread pool."""


class SwarmError(Exception):
    """The engine did not give what was asked; the message is fit for an operator (and holds no token)."""


@dataclass(frozen=True)
class JoinTokens:
    """A swarm's join tokens; they print as ``***``, so a stray log line or traceback cannot leak them."""

    manager: str = field(repr=False)
    worker: str = field(repr=False)

    def values(self) -> tuple[str, str]:
        return self.manager, self.worker


def join_tokens(host: str) -> JoinTokens:
    """The join tokens of the swarm the engine at ``host`` manages (blocking; ``host`` is a docker URL)."""
    try:
        client = engine_client(host, ENGINE_TIMEOUT)
    except DockerException as exc:
        raise SwarmError(f"cannot reach the Docker Engine at {host}: {exc}") from None
    try:
        attrs = client.inspect_swarm()
    except APIError as exc:
        # 503 "This node is not a swarm manager" (or not in a swarm at all): the engine's own words say it.
        reason = exc.explanation or exc
        raise SwarmError(f"the Docker Engine at {host} gives no join tokens: {reason}") from None
    except (DockerException, OSError) as exc:  # requests' errors are OSErrors
        raise SwarmError(f"cannot reach the Docker Engine at {host}: {exc}") from None
    finally:
        client.close()
    tokens = attrs.get("JoinTokens") or {}
    manager, worker = tokens.get("Manager"), tokens.get("Worker")
    if not (isinstance(manager, str) and manager and isinstance(worker, str) and worker):
        raise SwarmError(f"the Docker Engine at {host} answered without join tokens")
    return JoinTokens(manager=manager, worker=worker)
