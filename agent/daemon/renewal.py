"""The agent renews its own API token before it expires, and says in the LCMMachine how that goes.

A root task of the daemon when the agent authenticates with a token file. A ServiceAccount token from a
TokenRequest carries its expiry; after 80% of its life (kubelet's rule for projected tokens) the agent asks
for a new one for its own ServiceAccount (``serviceaccounts/token`` create, the one thing its Role allows
beyond its own objects), bound to the same Secret as the old one, and ``Credentials`` writes it to the
token file and sends it from the next request on. A token without an expiry (a legacy Secret token, or an
opaque one) is replaced by a bound one right away.

The ``APICredentials`` condition tells the operator what the node cannot: ``True``/``Renewed`` with the
current token's expiry; ``False``/``RenewalFailed`` while renewing fails and the old token still works
(it says until when); ``True``/``Recovered`` once a token is accepted again after the API refused one,
naming when that began and what ended it. While the API refuses the token nothing can be written: that
episode is in the journal (``Credentials``), and here once it is over.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.adapters.credentials import Credentials, TokenClaims
from agent.adapters.kube import Kube, KubeError
from agent.api.models import LCMMachine
from agent.api.names import agent_account
from agent.daemon.own_machine import OwnMachine
from agent.kits.backoff import Backoff
from agent.kits.tasks import first_of
from agent.kits.timestamps import rfc3339

log = logging.getLogger(__name__)

CONDITION = "APICredentials"
RENEW_FRACTION = 0.8
"""A token is renewed once this share of its lifetime has passed."""
IDLE_CHECK = 30.0
"""Seconds between looks at the credentials while there is nothing to renew (a refused token): the renewal
task wakes sooner when they change."""


def renew_at(claims: TokenClaims, now: float) -> float:
    """When a token with these claims is renewed: at once when it has no expiry."""
    if claims.expires is None:
        return now
    issued = claims.issued if claims.issued is not None else now
    return issued + RENEW_FRACTION * (claims.expires - issued)


@dataclass(frozen=True)
class RenewalSettings:
    namespace: str
    machine: str
    lifetime: int
    """Seconds a new token is asked to live (``api.token_lifetime``)."""
    backoff: Backoff


class TokenRenewal:
    """Renews ``credentials`` and reports on them; ``run`` returns once ``stopping`` is set."""

    def __init__(
        self, kube: Kube, credentials: Credentials, own: OwnMachine, settings: RenewalSettings, *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kube, self.credentials, self.own, self.settings = kube, credentials, own, settings
        self.clock = clock
        self._fields = {"machine": settings.machine, "namespace": settings.namespace}
        self._pending: tuple[str, str, str] | None = None
        """The condition (status, reason, message) not written yet: the object was not known, or the write
        failed; written when the loop next wakes, which it does when the object moves."""

    async def run(self, stopping: asyncio.Event) -> None:
        failures = 0
        while not stopping.is_set():
            await self._report_recovery()
            await self._flush()
            creds = self.credentials
            due = renew_at(creds.claims, self.clock())
            refused = creds.rejection is not None and creds.rejection.until is None
            if refused or due > self.clock():
                delay = IDLE_CHECK if refused else due - self.clock()
                await self._sleep(stopping, min(delay, IDLE_CHECK), creds.generation)
                continue
            try:
                await self._renew()
                failures = 0
            except KubeError as exc:
                if exc.status == 401:
                    continue  # Credentials logged it; the loop waits for a token that works
                delay = self.settings.backoff.delay(failures, random.uniform)
                failures += 1
                await self._renewal_failed(exc, delay)
                await self._sleep(stopping, delay, creds.generation)

    async def _renew(self) -> None:
        creds, s = self.credentials, self.settings
        account = creds.claims.account or agent_account(s.machine)
        namespace = creds.claims.namespace or s.namespace
        answer = await self.kube.request_token(namespace, account, seconds=s.lifetime,
                                               bound_secret=creds.claims.bound_secret)
        token = str((answer.get("status") or {}).get("token", ""))
        if not token:
            raise KubeError(0, "NoToken", "the TokenRequest's answer has no token")
        await creds.replace(token)
        expires = creds.claims.expires
        until = rfc3339(expires) if expires is not None else "(no expiry)"
        log.info("API token renewed; valid until %s", until, extra=self._fields)
        await self._condition("True", "Renewed", f"token of ServiceAccount {namespace}/{account} renewed at "
                                                 f"{rfc3339(self.clock())}, valid until {until}")

    async def _renewal_failed(self, exc: KubeError, delay: float) -> None:
        expires = self.credentials.claims.expires
        until = f"it expires at {rfc3339(expires)}" if expires is not None else "it has no expiry"
        message = f"cannot renew the API token ({exc}); the current one still works, {until}"
        log.error("%s; retrying in %.0fs", message, delay, extra=self._fields)
        await self._condition("False", "RenewalFailed", message)

    async def _report_recovery(self) -> None:
        """An ended episode of refused tokens, into the status now that writes work again."""
        episode = self.credentials.rejection
        if episode is None or episode.until is None:
            return
        message = (f"the API refused this machine's token from {rfc3339(episode.since)} to "
                   f"{rfc3339(episode.until)} (expired or revoked); recovered by {episode.cure}")
        if await self._condition("True", "Recovered", message):
            self.credentials.rejection = None

    async def _condition(self, status: str, reason: str, message: str) -> bool:
        self._pending = (status, reason, message)
        return await self._flush()

    async def _flush(self) -> bool:
        """Write the pending condition, if any and if the object is known; True once nothing is pending."""
        machine: LCMMachine | None = self.own.latest
        if self._pending is None:
            return True
        if machine is None or not await self.own.write_condition(machine, CONDITION, *self._pending):
            return False
        self._pending = None
        return True

    async def _sleep(self, stopping: asyncio.Event, seconds: float, generation: int) -> None:
        """Until ``seconds`` pass, ``stopping`` is set, or the credentials change."""
        waits = [stopping.wait(), self.credentials.moved_from(generation)]
        if self._pending is not None:
            waits.append(self.own.moved_from(self.own.version))
        await first_of(*waits, seconds=seconds)
