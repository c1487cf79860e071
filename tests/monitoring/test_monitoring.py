"""``deploy/monitoring``: the alert rules pass ``promtool check rules`` and their own unit tests, the
dashboard is valid JSON, and every metric the rules and the dashboard name is one our code exports, checked
against the exposition of the agent's and the scheduler's collectors filled with a cluster's objects."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agent.daemon.metrics import AgentMetrics, HeldFigures
from regional.planning.liveness import LivenessBook
from regional.planning.planner import plan
from regional.scheduler.controller import Controller
from regional.scheduler.metrics import AgentsCollector, SchedulerCollector, plan_histogram
from regional.scheduler.settings import SchedulerSettings
from testbed.lab.stack.prometheus import PROMTOOL, available

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
RULES = MONITORING / "lcm-rules.yml"
DASHBOARD = MONITORING / "lcm-cluster-rollout.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "info": ("_info",),
            "gauge": ("",)}
"""The sample names a family of each type has in the text format."""
_NAME = re.compile(r"\blcm_[a-z0-9_]+")

needs_promtool = pytest.mark.skipif(bool(available()), reason=available() or "promtool is there")


@needs_promtool
def test_promtool_checks_the_rules() -> None:
    done = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_the_rules_pass_their_unit_tests() -> None:
    done = subprocess.run([PROMTOOL, "test", "rules", "lcm-rules.test.yml"], cwd=MONITORING,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def dashboard_queries() -> list[str]:
    """Every PromQL expression of the dashboard: its panels' targets and its variables' queries."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return exprs


def rule_queries() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def test_the_dashboard_is_a_grafana_dashboard_with_unique_panels() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)) > 0
    assert all(panel["targets"] for panel in dashboard["panels"])
    assert {v["name"] for v in dashboard["templating"]["list"]} >= {"namespace", "cluster"}


def cluster_objects() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A cluster of two machines, one of them stuck and unreachable, as the scheduler's caches hold them."""
    def machine(name: str, rv: str, **status: Any) -> dict[str, Any]:
        return {"apiVersion": "lcm.mirantis.com/v1alpha1", "kind": "LCMMachine",
                "metadata": {"name": name, "namespace": "prod", "resourceVersion": rv},
                "spec": {"clusterName": "east", "type": "worker"}, "status": status}
    unreachable = {"type": "AgentReachable", "status": "False", "reason": "HeartbeatMissed"}
    machines = [machine("w0", "1", state="Ready"),
                machine("w1", "2", state="Deploy", lcmOperationStuck=True, conditions=[unreachable])]
    cluster = {"apiVersion": "lcm.mirantis.com/v1alpha1", "kind": "LCMCluster",
               "metadata": {"name": "east", "namespace": "prod", "resourceVersion": "3"},
               "spec": {"release": "swarm-1.0.0"},
               "status": {"requestedNodes": 2, "readyNodes": 1, "lcmOperationStuck": True, "release": ""}}
    return machines, cluster


async def exported_names() -> set[str]:
    """Every sample name the agent's and the scheduler's registries can expose, from their families."""
    agent = AgentMetrics()
    agent.registry.register(HeldFigures(buffered=lambda: 0, dropped=lambda: 0, write_failures=lambda: 0,
                                        api_contact=time.time))
    scheduler = CollectorRegistry()
    controller = Controller(None, SchedulerSettings(), plan, fence=lambda: True)  # no I/O: caches fed here
    machines, cluster = cluster_objects()
    for raw in machines:
        controller.machines.answered(raw)
    controller.clusters.answered(cluster)
    scheduler.register(SchedulerCollector([controller], lambda: True))
    book = LivenessBook(grace=1.5, settle=0.0, default_interval=10.0)
    book.heard(("prod", "w0"), 0.0)
    scheduler.register(AgentsCollector(book, clock=lambda: 1.0))
    plan_histogram(scheduler)
    names = set()
    for registry in (agent.registry, scheduler):
        for family in text_string_to_metric_families(generate_latest(registry).decode()):
            names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return names


async def test_every_metric_the_rules_and_the_dashboard_name_is_exported() -> None:
    named = {name for expr in rule_queries() + dashboard_queries() for name in _NAME.findall(expr)}
    exported = await exported_names()
    assert named, "the rules and the dashboard name metrics"
    assert sorted(named - exported) == []
