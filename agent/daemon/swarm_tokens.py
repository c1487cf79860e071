"""Swarm join tokens around the items that publish or consume them (docs/swarm.md, "Join tokens").

The item worker calls ``prepare`` before an item runs and ``finish`` after it:

* an item whose params name ``joinTokenSecret`` gets that Secret's ``token`` as its secret ``JOIN_TOKEN``
  (the playbook's ``LCM_SECRET_JOIN_TOKEN``). A Secret that is missing, unreadable (403) or without the key
  fails the item before anything runs, with a message that says which and why; the item is then retried
  with the usual backoff, so a swarm-join simply waits until the first control machine has published;
* an item whose params name ``managerTokenSecret``/``workerTokenSecret`` publishes, once its playbook has
  succeeded, the local engine's join tokens to those Secrets (created, or replaced whole). If that fails the
  item is reported failed: the playbook is idempotent, and its retry publishes again.

Every token value is registered with the log redaction before anything could log it, and is masked in the
item's result (a careless playbook printing ``docker swarm init``'s output cannot put it into status).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
from collections.abc import Callable, Mapping

from agent.adapters import swarm
from agent.adapters.kube import SECRETS, Kube, KubeError
from agent.api.execution import EXIT_FAILED, ItemInput, ItemResult
from agent.daemon.own_machine import OwnMachine
from agent.kits.logs import SecretRegistry

JOIN_SECRET_PARAM = "joinTokenSecret"  # noqa: S105 (param names, not secrets)
PUBLISH_PARAMS: Mapping[str, str] = {"manager": "managerTokenSecret", "worker": "workerTokenSecret"}
"""Swarm role → the param naming the Secret its join token is published to."""
JOIN_TOKEN = "JOIN_TOKEN"  # noqa: S105
"""The name the consuming item's playbook gets the token under (``LCM_SECRET_JOIN_TOKEN``)."""
TOKEN_KEY = "token"  # noqa: S105
CLUSTER_LABEL = "lcm.mirantis.com/cluster"

ReadTokens = Callable[[str], swarm.JoinTokens]


class TokenError(Exception):
    """A join token could not be read or published; the message is the item's status message."""


class SwarmTokens:
    """The worker's ``ItemSteps`` for swarm items; every other item passes through untouched."""

    def __init__(
        self, kube: Kube, own: OwnMachine, *, docker_host: str, secrets: SecretRegistry,
        read_tokens: ReadTokens = swarm.join_tokens,
    ) -> None:
        self.kube = kube
        self.own = own
        self.docker_host = docker_host
        self.secrets = secrets
        self.read_tokens = read_tokens

    @property
    def namespace(self) -> str:
        return self.own.namespace

    async def prepare(self, item: ItemInput) -> ItemInput | ItemResult:
        """The item with its join token added, or the failure that stops it from running."""
        name = item.params.get(JOIN_SECRET_PARAM)
        if not name:
            return item
        try:
            token = await self.join_token(name)
        except TokenError as exc:
            return ItemResult(EXIT_FAILED, "failed", f"not run: {exc}")
        return dataclasses.replace(item, secrets={**item.secrets, JOIN_TOKEN: token})

    async def join_token(self, name: str) -> str:
        """The ``token`` of Secret ``name``, registered with the log redaction; raises TokenError saying why
        it cannot be had (missing, forbidden, malformed)."""
        token = await self._read(name)
        self.secrets.add(token)
        return token

    async def finish(self, item: ItemInput, result: ItemResult) -> ItemResult:
        """After a successful publishing item: the tokens written, or the item turned into a failure."""
        targets = {role: item.params[p] for role, p in PUBLISH_PARAMS.items() if item.params.get(p)}
        if not targets or not result.succeeded:
            return result
        try:
            tokens = await asyncio.to_thread(self.read_tokens, self.docker_host)
        except swarm.SwarmError as exc:
            return ItemResult(EXIT_FAILED, "failed", f"the playbook succeeded, but {exc}", result.log_tail)
        self.secrets.add(*tokens.values())
        tail = self.secrets.redact(result.log_tail)
        try:
            for role, name in targets.items():
                await self._publish(name, tokens.manager if role == "manager" else tokens.worker)
        except TokenError as exc:
            reason = self.secrets.redact(str(exc))
            message = f"the playbook succeeded, but publishing the join tokens failed: {reason}"
            return ItemResult(EXIT_FAILED, "failed", message, tail)
        published = ", ".join(f"{self.namespace}/{name}" for name in targets.values())
        message = f"{self.secrets.redact(result.message)}; join tokens published to {published}"
        return dataclasses.replace(result, message=message, log_tail=tail)

    async def _read(self, name: str) -> str:
        where = f"Secret {self.namespace}/{name}"
        try:
            secret = await self.kube.get(SECRETS, self.namespace, name)
        except KubeError as exc:
            if exc.status == 404:
                raise TokenError(f"join token {where} does not exist (yet): the first control machine "
                                 "publishes it when its swarm-init item succeeds") from None
            if exc.status == 403:
                raise TokenError(f"this machine may not read the join token {where} ({exc.message}): "
                                 "its RBAC must allow get on that Secret") from None
            raise TokenError(f"cannot read the join token {where}: {exc}") from None
        encoded = (secret.get("data") or {}).get(TOKEN_KEY)
        if not encoded:
            raise TokenError(f"join token {where} has no key {TOKEN_KEY!r}")
        try:
            token = base64.b64decode(encoded, validate=True).decode().strip()
        except (binascii.Error, UnicodeDecodeError):
            raise TokenError(f"key {TOKEN_KEY!r} of join token {where} is not base64-encoded text") from None
        if not token:
            raise TokenError(f"key {TOKEN_KEY!r} of join token {where} is empty")
        return token

    async def _publish(self, name: str, token: str) -> None:
        """Replace the Secret whole, or create it: needs only RBAC ``update`` (on its name) and ``create``."""
        machine = self.own.latest
        cluster = machine.spec.cluster_name if machine is not None else ""
        labels = {CLUSTER_LABEL: cluster} if cluster else {}
        metadata = {"name": name, "namespace": self.namespace, "labels": labels}
        body = {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": "Opaque",
                "data": {TOKEN_KEY: base64.b64encode(token.encode()).decode()}}
        try:
            try:
                await self.kube.replace(SECRETS, self.namespace, name, body)
            except KubeError as exc:
                if exc.status != 404:
                    raise
                await self.kube.create(SECRETS, self.namespace, body)
        except KubeError as exc:
            hint = ": control machines need RBAC create and update on it" if exc.status == 403 else ""
            raise TokenError(f"cannot write Secret {self.namespace}/{name} ({exc}){hint}") from None
