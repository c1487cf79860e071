"""The machine's API token: read from its file, sent with every request, replaced without a restart.

A ServiceAccount token from a TokenRequest expires; the agent renews it (``agent.daemon.renewal``) and an
operator may write a new one into the file (re-provisioning). ``Credentials`` holds the current token in
memory; the client asks it for the ``Authorization`` header before every request, so the next call and the
next watch reconnect use the new token at once. A 401 makes it
look at the file again (the operator's new token is picked up on the next retry) and, once per episode,
log why the API refuses the token and what to do; the first accepted request after that ends the episode.

The token's claims (expiry, account, bound Secret) are read without checking the signature: they are the
agent's own credential's, used to plan the renewal, never to trust anyone.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.adapters.atomic import write_atomic
from agent.kits.timestamps import rfc3339

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenClaims:
    """What a ServiceAccount JWT says about itself; all empty for a token that is not one (a legacy or
    opaque token, which never expires as far as the agent can tell)."""

    issued: float | None = None
    expires: float | None = None
    namespace: str = ""
    account: str = ""
    bound_secret: str = ""


def read_claims(token: str) -> TokenClaims:
    """The claims of a bound ServiceAccount token (``kubernetes.io`` private claims, as kube-apiserver
    writes them), or empty claims when the token is not such a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return TokenClaims()
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return TokenClaims()
    if not isinstance(claims, dict):
        return TokenClaims()
    k8s = _mapping(claims.get("kubernetes.io"))
    account, secret = _mapping(k8s.get("serviceaccount")), _mapping(k8s.get("secret"))
    return TokenClaims(issued=_number(claims.get("iat")), expires=_number(claims.get("exp")),
                       namespace=str(k8s.get("namespace", "")), account=str(account.get("name", "")),
                       bound_secret=str(secret.get("name", "")))


@dataclass(frozen=True)
class Rejection:
    """An episode of the API refusing the token: when it began and, once over, when it ended and how."""

    since: float
    until: float | None = None
    cure: str = ""


class Credentials:
    """The current bearer token of one client, and what the API last said about it."""

    def __init__(self, path: Path, token: str, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock
        self.token = token
        self.claims = read_claims(token)
        self.rejection: Rejection | None = None
        """The running or last ended episode of 401s; the renewal task reports an ended one and clears it."""
        self.on_token: Callable[[str], None] = lambda token: None
        """Told of every token taken into use after the first (the log redaction's registry)."""
        self.generation = 0
        """Counts changes (new token, rejection, recovery): the renewal task wakes when it moves."""
        self._moved = asyncio.Event()

    @classmethod
    def load(cls, path: Path, *, clock: Callable[[], float] = time.time) -> Credentials:
        return cls(path, path.read_text().strip(), clock=clock)

    async def replace(self, token: str) -> None:
        """A renewed token: written to the file (atomically, 0600) before it is used, so that an agent
        restarted right after a renewal starts from the new token."""
        await asyncio.to_thread(write_atomic, self.path, f"{token}\n".encode(), 0o600)
        self._use(token)

    async def moved_from(self, generation: int) -> None:
        """Returns once ``generation`` differs from the one given (at once if it already does)."""
        if self.generation == generation:
            await self._moved.wait()

    def rejected(self, sent: str) -> None:
        """The API answered 401 to a request that carried ``sent``. A different token in the file (an
        operator's) is used from the next request on; otherwise the first 401 of an episode logs why and
        what to do. A 401 for a token already replaced says nothing about the current one."""
        if sent != self.token:
            return
        try:
            on_disk = self.path.read_text().strip()
        except OSError as exc:
            on_disk = self.token
            log.error("cannot read the API token file %s: %s", self.path, exc.strerror or exc)
        if on_disk and on_disk != self.token:
            log.info("the API refused the token; %s holds a new one, which the agent uses from now on",
                     self.path)
            self._use(on_disk, cure="a new token in the token file")
            return
        if self.rejection is not None and self.rejection.until is None:
            return
        now = self.clock()
        self.rejection = Rejection(since=now)
        self._bump()
        log.error("the API server refuses this machine's token (401 Unauthorized): %s. Nothing the agent "
                  "does with this token can work, renewing included; it retries and recovers as soon as "
                  "%s holds a valid token (`lcmctl cloud-init provision` issues one)",
                  self._why(now), self.path)

    def accepted(self) -> None:
        """A request with the current token succeeded: an episode of 401s, if any, is over."""
        if self.rejection is not None and self.rejection.until is None:
            self._end(self.rejection.cure or "the API server taking the same token again")

    def _use(self, token: str, cure: str = "") -> None:
        self.token = token
        self.claims = read_claims(token)
        self.on_token(token)
        self._bump()
        if cure and self.rejection is not None and self.rejection.until is None:
            self.rejection = Rejection(self.rejection.since, cure=cure)

    def _end(self, cure: str) -> None:
        assert self.rejection is not None
        self.rejection = Rejection(self.rejection.since, until=self.clock(), cure=cure)
        self._bump()
        log.info("the API accepts this machine's token again (refused since %s; recovered by %s)",
                 rfc3339(self.rejection.since), cure)

    def _bump(self) -> None:
        self.generation += 1
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    def _why(self, now: float) -> str:
        expires = self.claims.expires
        if expires is None:
            return "it is not a bound ServiceAccount token, so it was revoked or never valid"
        if now >= expires:
            return f"it expired at {rfc3339(expires)}"
        return (f"it is valid until {rfc3339(expires)}, so it was revoked (its ServiceAccount or the Secret "
                f"{self.claims.bound_secret or '(none)'} it is bound to was deleted or recreated)")


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
