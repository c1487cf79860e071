"""The agent's API token on a real cluster's terms: a bound token that expires, renewed by the agent itself
and used from then on by every request and watch reconnect without a restart; a revoked or expired token
named as such in the log, and the agent back at work (and saying so in its LCMMachine) once a new token
is supplied. The machine is provisioned as ``lcmctl cloud-init provision`` does it."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from agent_harness import Node, status

from agent.adapters.atomic import write_atomic
from agent.adapters.kube import SECRETS, Kube
from agent.api.names import agent_account
from agent.daemon.renewal import CONDITION
from regional.provisioning import ROLES, credential_secret, provision
from testbed.sim.testing import token_answer, token_claims

pytestmark = pytest.mark.kube
BOTH_SERVERS = pytest.mark.parametrize("api_backend", ["kube", "sim"], indirect=True)
"""The real API server issues and checks tokens; the simulator must behave the same."""

REVOCATION_WAIT = 30.0
"""Seconds a real API server may take to see a deletion (its informers)."""


def condition(obj: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in status(obj).get("conditions") or [] if c.get("type") == CONDITION), {})


async def answer(admin: Kube, token: str, namespace: str) -> int:
    return (await token_answer(admin, token, namespace))[0]


async def until_refused(admin: Kube, token: str, namespace: str) -> None:
    deadline = time.monotonic() + REVOCATION_WAIT
    while await answer(admin, token, namespace) != 401:
        if time.monotonic() > deadline:
            pytest.fail("the API server kept taking a revoked token")
        await asyncio.sleep(0.2)


async def logged(caplog: pytest.LogCaptureFixture, words: str, within: float = 45.0) -> logging.LogRecord:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = [r for r in caplog.records if words in r.getMessage()]
        if found:
            return found[0]
        await asyncio.sleep(0.05)
    pytest.fail(f"the agent never logged {words!r}")


def private_token(path: Path, token: str) -> None:
    write_atomic(path, f"{token}\n".encode(), 0o600)


async def legacy_token(admin: Kube, namespace: str, account: str) -> str:
    """A ServiceAccount token Secret's token (no expiry), as clusters issued them before TokenRequest."""
    await admin.create(SECRETS, namespace, {
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
        "metadata": {"name": f"{account}-legacy",
                     "annotations": {"kubernetes.io/service-account.name": account}}})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        data = (await admin.get(SECRETS, namespace, f"{account}-legacy")).get("data") or {}
        if data.get("token"):
            return base64.b64decode(data["token"]).decode()
        await asyncio.sleep(0.05)
    pytest.fail("the token controller never filled the legacy token Secret")


@BOTH_SERVERS
async def test_a_token_without_expiry_is_replaced_and_the_new_one_used_from_then_on(
    node: Node, tmp_path: Path,
) -> None:
    admin, ns = node.admin, node.namespace
    await provision(admin, ns, node.name, cluster="demo", machine_type="worker")
    old = await legacy_token(admin, ns, agent_account(node.name))
    token_file = tmp_path / "token"
    private_token(token_file, old)
    cfg = await node.configure(token_file=token_file)
    async with node.agent(cfg):
        renewed = await node.wait_for(lambda o: condition(o).get("reason") == "Renewed", describe="a renewal")
        new = token_file.read_text().strip()
        assert new != old
        assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
        said = token_claims(new)
        assert said["sub"] == f"system:serviceaccount:{ns}:{agent_account(node.name)}"
        assert said["exp"] - said["iat"] == cfg.api.token_lifetime
        assert "valid until" in condition(renewed)["message"]

        await admin.delete(SECRETS, ns, f"{agent_account(node.name)}-legacy")  # the old token is revoked
        await until_refused(admin, old, ns)
        if node.kube_api.faults is not None:
            node.kube_api.faults.drop_watches()  # the reconnect must authenticate with the new token
        await node.patch_spec({"stateItems": [node.item("after-renewal")]})
        done = await node.wait_slot("after-renewal", lambda s: s.get("exitCode") == 0)
    assert done["attempt"] == 1
    assert node.runs("after-renewal") == ["after-renewal 1"]


@BOTH_SERVERS
async def test_a_renewal_the_role_refuses_is_reported_while_the_old_token_still_works(
    node: Node, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    admin, ns = node.admin, node.namespace
    caplog.set_level(logging.INFO)
    await provision(admin, ns, node.name, cluster="demo", machine_type="worker")
    account = agent_account(node.name)
    role = await admin.get(ROLES, ns, account)
    kept = [r for r in role["rules"] if "serviceaccounts/token" not in r["resources"]]
    await admin.patch(ROLES, ns, account, {"rules": kept})  # an old Role, from before renewal
    token_file = tmp_path / "token"
    private_token(token_file, await legacy_token(admin, ns, account))
    async with node.agent(await node.configure(token_file=token_file)):
        failed = await node.wait_for(lambda o: condition(o).get("reason") == "RenewalFailed",
                                     describe="the RenewalFailed condition")
        await logged(caplog, "cannot renew the API token (403 Forbidden")
        await node.patch_spec({"stateItems": [node.item("with-the-old-token")]})
        await node.wait_slot("with-the-old-token", lambda s: s.get("exitCode") == 0)
    mine = condition(failed)
    assert mine["status"] == "False"
    assert "serviceaccounts/token" in mine["message"]
    assert "the current one still works, it has no expiry" in mine["message"]


@BOTH_SERVERS
async def test_a_revoked_token_is_named_in_the_log_and_a_new_one_recovers_the_agent(
    node: Node, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    admin, ns = node.admin, node.namespace
    caplog.set_level(logging.INFO)
    token_file = tmp_path / "token"
    private_token(token_file, await provision(admin, ns, node.name, cluster="demo", machine_type="worker"))
    async with node.agent(await node.configure(token_file=token_file)):
        await node.wait_for(lambda o: bool(status(o).get("addresses")), describe="registration")
        revoked = token_file.read_text().strip()
        await admin.delete(SECRETS, ns, credential_secret(agent_account(node.name)))  # the operator revokes
        await until_refused(admin, revoked, ns)
        if node.kube_api.faults is not None:
            node.kube_api.faults.drop_watches()
        await node.patch_spec({"stateItems": [node.item("during-revocation")]})
        record = await logged(caplog, "refuses this machine's token (401 Unauthorized)")
        assert "revoked" in record.getMessage()
        assert str(token_file) in record.getMessage()
        assert revoked not in caplog.text

        # The operator re-provisions the machine and puts the new token where the old one was.
        fresh = await provision(admin, ns, node.name, cluster="demo", machine_type="worker")
        private_token(token_file, fresh)
        recovered = await node.wait_for(lambda o: condition(o).get("reason") == "Recovered",
                                        describe="the Recovered condition")
        await node.wait_slot("during-revocation", lambda s: s.get("exitCode") == 0)
    mine = condition(recovered)
    assert mine["status"] == "True"
    assert "a new token in the token file" in mine["message"]
    assert fresh not in caplog.text


@pytest.mark.simulator("the token is issued in the past and then expired by moving the simulator's clock")
async def test_a_token_near_its_expiry_is_renewed_and_the_agent_outlives_it(
    node: Node, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    simulator = node.kube_api.simulator
    assert simulator is not None
    admin, ns, issuer = node.admin, node.namespace, simulator.token_issuer
    issuer.clock = lambda: time.time() - 500
    provisioned = await provision(admin, ns, node.name, cluster="demo", machine_type="worker", lifetime=600)
    issuer.clock = time.time
    token_file = tmp_path / "token"
    private_token(token_file, provisioned)
    async with node.agent(await node.configure(token_file=token_file)):
        await node.wait_for(lambda o: condition(o).get("reason") == "Renewed", describe="a renewal")
        issuer.clock = lambda: time.time() + 200  # the provisioned token is expired, the renewed one is not
        assert await answer(admin, provisioned, ns) == 401
        simulator.faults.drop_watches()
        await node.patch_spec({"stateItems": [node.item("after-expiry")]})
        await node.wait_slot("after-expiry", lambda s: s.get("exitCode") == 0)
    assert not [r for r in caplog.records if "refuses this machine's token" in r.getMessage()]

