"""Bound ServiceAccount tokens (TokenRequest) as the agent meets them: issued with the expiry asked for,
refused below the API server's ten minutes, bound to a Secret whose deletion revokes them, and, on the
simulator, refused once expired. Each test but the last runs on both servers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import pytest

from agent.adapters.kube import SECRETS, SERVICE_ACCOUNTS, Kube, KubeError
from testbed.sim.testing import KubeApi, token_answer, token_claims
from testbed.sim.tokens import LEEWAY

pytestmark = pytest.mark.kube

ACCOUNT, BOUND = "node-a", "node-a-credential"
REVOCATION_WAIT = 30.0
"""Seconds a real API server may take to see a deletion (its informers); the simulator sees it at once."""


@pytest.fixture
async def admin(kube_api: KubeApi) -> Kube:
    kube = await kube_api.kube()
    await kube.create(SERVICE_ACCOUNTS, kube_api.namespace, {"metadata": {"name": ACCOUNT}})
    await kube.create(SECRETS, kube_api.namespace, {"metadata": {"name": BOUND}})
    return kube


async def whoami(kube_api: KubeApi, token: str) -> tuple[int, str]:
    return await token_answer(await kube_api.kube(), token, kube_api.namespace)


async def until(check: Callable[[], Awaitable[bool]], within: float) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail("the API server never refused the revoked token")
        await asyncio.sleep(0.2)


async def test_a_token_request_gives_a_bound_token_of_the_asked_lifetime(
    kube_api: KubeApi, admin: Kube,
) -> None:
    ns = kube_api.namespace
    answer = await admin.request_token(ns, ACCOUNT, seconds=1200, bound_secret=BOUND)
    assert (answer["kind"], answer["apiVersion"]) == ("TokenRequest", "authentication.k8s.io/v1")
    assert answer["spec"]["expirationSeconds"] == 1200
    assert answer["spec"]["audiences"]
    token = answer["status"]["token"]
    said = token_claims(token)
    assert said["exp"] - said["iat"] == 1200
    expires = datetime.fromisoformat(answer["status"]["expirationTimestamp"].replace("Z", "+00:00"))
    assert abs(expires.timestamp() - said["exp"]) <= 1
    assert said["sub"] == f"system:serviceaccount:{ns}:{ACCOUNT}"
    assert said["kubernetes.io"]["serviceaccount"]["name"] == ACCOUNT
    assert said["kubernetes.io"]["secret"]["name"] == BOUND
    status, message = await whoami(kube_api, token)
    assert status == 403
    assert f'User "system:serviceaccount:{ns}:{ACCOUNT}"' in message


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"seconds": 599}, 422, "may not specify a duration less than 10 minutes"),
    ({"seconds": 600, "account": "nobody"}, 404, 'serviceaccounts "nobody" not found'),
    ({"seconds": 600, "bound_secret": "gone"}, 404, 'secrets "gone" not found'),
])
async def test_a_bad_token_request_is_refused_as_the_api_server_refuses_it(
    kube_api: KubeApi, admin: Kube, body: dict[str, Any], status: int, words: str,
) -> None:
    with pytest.raises(KubeError) as refused:
        await admin.request_token(kube_api.namespace, body.get("account", ACCOUNT), seconds=body["seconds"],
                                  bound_secret=body.get("bound_secret", ""))
    assert refused.value.status == status
    assert words in refused.value.message


@pytest.mark.parametrize("deleted", ["bound Secret", "ServiceAccount"])
async def test_deleting_the_bound_secret_or_the_account_revokes_the_token(
    kube_api: KubeApi, admin: Kube, deleted: str,
) -> None:
    ns = kube_api.namespace
    token = (await admin.request_token(ns, ACCOUNT, seconds=3600, bound_secret=BOUND))["status"]["token"]
    assert (await whoami(kube_api, token))[0] == 403
    if deleted == "bound Secret":
        await admin.delete(SECRETS, ns, BOUND)
    else:
        await admin.delete(SERVICE_ACCOUNTS, ns, ACCOUNT)

    async def refused() -> bool:
        return (await whoami(kube_api, token))[0] == 401
    await until(refused, REVOCATION_WAIT)


@pytest.mark.simulator("a real server's shortest token lives ten minutes, and its clock cannot be moved")
async def test_an_expired_token_is_refused(kube_api: KubeApi, admin: Kube) -> None:
    assert kube_api.simulator is not None
    issuer = kube_api.simulator.token_issuer
    token = (await admin.request_token(kube_api.namespace, ACCOUNT, seconds=600))["status"]["token"]
    expires = token_claims(token)["exp"]
    issuer.clock = lambda: expires + LEEWAY - 1
    assert (await whoami(kube_api, token))[0] == 403  # go-jose's minute of leeway, as on the real server
    issuer.clock = lambda: expires + LEEWAY
    assert (await whoami(kube_api, token))[0] == 401
