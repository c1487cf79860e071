"""A real Prometheus (Debian's ``prometheus``, on loopback, its own config and storage) scrapes lcm-scheduler
and the three agents of the end-to-end stack on netns nodes while the cluster deploys from nothing, with the
repository's alert rules loaded; what it holds is read back through its HTTP query API, as a dashboard
would: three machines Ready, items run on every agent, every target up without a scrape error, the agents
reachable, the fleet's item runs rolled up from MQTT, the rules evaluating cleanly, every query of the
dashboard answered. The swarm's join token, which exists only once the first manager has initialised the
swarm, appears in no scrape."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from e2e_scenario import NS, staged_stack, wait_for
from stages import stage

from agent.adapters.kube import SECRETS, Kube
from testbed.cli.demo import missing_prerequisites
from testbed.lab.netns.nodes import session_prefix
from testbed.lab.stack import prometheus
from testbed.lab.stack.mosquitto import free_port
from testbed.lab.stack.netns import NetnsNodes
from testbed.lab.stack.prometheus import Job, PrometheusServer
from testbed.lab.stack.stack import Stack, StackSettings

missing = [*missing_prerequisites("netns"), *filter(None, [prometheus.available()])]
pytestmark = [pytest.mark.dockerd, pytest.mark.slow,
              pytest.mark.skipif(bool(missing), reason="; ".join(missing))]

PATIENCE = 900.0
"""Seconds the deploy may take: some twenty Ansible runs on two cores shared with other work."""
AGENT_PORT = 9737
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "monitoring" / "lcm-cluster-rollout.json"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[tuple[Stack, Kube]]:
    settings = StackSettings(tmp_path / "demo", prefix=session_prefix("e2m"),
                             scheduler_metrics=f"127.0.0.1:{free_port()}", agent_metrics_port=AGENT_PORT)
    async with staged_stack(settings, "netns") as running:
        yield running


@pytest.fixture
def server(stack: tuple[Stack, Kube], tmp_path: Path) -> PrometheusServer:
    lab = stack[0]
    assert isinstance(lab.nodes, NetnsNodes)
    agents = [f"{lab.nodes.node(m).address}:{AGENT_PORT}" for m in lab.settings.machines]
    return PrometheusServer(tmp_path / "prometheus", [Job("lcm-scheduler", [lab.settings.scheduler_metrics]),
                                                       Job("lcm-agent", agents)])


async def test_prometheus_scrapes_the_scheduler_and_every_agent_through_a_deploy(
    stack: tuple[Stack, Kube], server: PrometheusServer,
) -> None:
    lab, kube = stack
    await asyncio.to_thread(server.start)
    try:
        with stage("deploy to 3 Ready, scraped by Prometheus"):
            await lab.wait(kube, lambda r: r.ready("swarm-1.0.0"), within=PATIENCE)
        await _figures_read_back(server, lab)
        await _no_join_token_in_any_scrape(server, kube)
    finally:
        await asyncio.to_thread(server.stop)


async def _figures_read_back(server: PrometheusServer, lab: Stack) -> None:
    where = f'namespace="{NS}", cluster="{lab.settings.cluster}"'
    await wait_for(lambda: _scalar(server, f'sum(lcm_scheduler_machines{{{where}, state="Ready"}})', 3),
                "Prometheus to hold 3 machines Ready")
    ready = await server.query(f"lcm_scheduler_cluster_ready_machines{{{where}}}")
    assert [(dict(labels)["job"], count) for labels, count in ready.items()] == [("lcm-scheduler", 3.0)]
    runs = await server.query('sum by (instance) (lcm_agent_item_runs_total{outcome="success"})')
    assert len(runs) == 3
    assert all(count > 0 for count in runs.values()), runs
    await wait_for(lambda: _scalar(server, 'sum(lcm_scheduler_agents{reachable="true"})', 3),
                   "the liveness subscriber's 3 reachable agents")
    # The fleet's roll-up from the agents' MQTT events, served on the scheduler's own registry.
    fleet = await server.query('sum(lcm_fleet_item_runs_total{outcome="success"})')
    assert [count > 0 for count in fleet.values()] == [True], fleet
    ups = await server.query("up")
    assert sorted(dict(labels)["job"] for labels in ups) == ["lcm-agent"] * 3 + ["lcm-scheduler"]
    assert set(ups.values()) == {1.0}
    targets = await server.targets()
    assert [(t["health"], t["lastError"]) for t in targets] == [("up", "")] * 4, [
        (t["scrapeUrl"], t["health"], t["lastError"], t["lastScrapeDuration"]) for t in targets]
    rules = [rule for group in await server.rules() for rule in group["rules"]]
    assert rules
    assert [(r["name"], r.get("lastError", "")) for r in rules if r["health"] != "ok"] == []
    firing = {r["name"] for r in rules if r.get("state") == "firing"}
    assert not firing & {"LCMRolloutHalted", "LCMMachineStuck", "LCMAgentUnreachable"}, firing
    for expr in _dashboard_queries():
        await server.query(expr)  # raises if the server refuses the query


async def _no_join_token_in_any_scrape(server: PrometheusServer, kube: Kube) -> None:
    secrets = (await kube.list_objects(SECRETS, NS, label_selector="lcm.mirantis.com/cluster"))["items"]
    tokens = [base64.b64decode(s["data"]["token"]).decode() for s in secrets
              if "token" in (s.get("data") or {})]
    assert tokens, "the first manager published the join tokens"
    for job in server.jobs:
        for target in job.targets:
            page = await asyncio.to_thread(prometheus.fetch, target)
            assert page
            assert not [t for t in tokens if t in page], f"a join token in {job.name} {target}'s metrics"


def _dashboard_queries() -> list[str]:
    """The dashboard's queries with its variables set to the demo cluster and the agents' job."""
    dashboard = json.loads(DASHBOARD.read_text())
    values = {"namespace": NS, "cluster": "demo", "agents": "lcm-agent"}
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    return [re.sub(r"\$(\w+)", lambda m: values[m.group(1)], e) for e in exprs]


async def _scalar(server: PrometheusServer, expr: str, wanted: float) -> bool:
    return list((await server.query(expr)).values()) == [wanted]
