"""A rolling drain of two workers under a two-replica web service: availability and wall time with the
disruption budget, against the same drain without it (today's rollout before budgets).

Each run builds a lab swarm (manager ``ctl``, workers ``wk0``, ``wk1``: network namespaces with their own
dockerd), an API simulator of its own, and the executor's agent on the manager with the release's
maintenance playbook, then plays the scheduler's rolling upgrade through LCMClusterStates (drain the first
worker, wait until swarm moved its task, undrain it, drain the second) while a probe asks the service every
0.1 s (``tests/swarm_agent/swarm_services.py``, the test's own scenario). "budget": the service as it is,
the default budget (never the last running replica); "none": the service labelled
``lcm.mirantis.com/max-unavailable: "2"`` (= its replicas), so every drain goes at once, as before budgets.
Both variants run in each run, alternately; the figures are medians of ``--runs``.

    .venv/bin/python bench/drain_budget.py [--runs 3]   (as root)
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import sys
import tempfile
from pathlib import Path

from agent.adapters.kube import connect
from testbed.lab.netns.nodes import missing_requirements, session_prefix, up
from testbed.sim.testing import open_kube_api

# The tests' swarm helpers, reused; the tests are outside mypy's files, hence the ignores.
TESTS = Path(__file__).parents[1] / "tests"
sys.path.insert(0, str(TESTS / "swarm_agent"))
_spec = importlib.util.spec_from_file_location("agent_harness", TESTS / "agent" / "agent_harness.py")
assert _spec is not None
assert _spec.loader is not None
sys.modules["agent_harness"] = _harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_harness)
from machine_harness import PLAYBOOKS, SwarmNode, apply_rbac  # type: ignore[import-not-found]  # noqa: E402
from swarm_services import (  # type: ignore[import-not-found]  # noqa: E402
    Rollout,
    eventually,
    form_swarm,
    import_busybox,
    rolling_drain,
    running_on,
    target_machine,
    web_service,
)

NO_BUDGET = {"lcm.mirantis.com/max-unavailable": "2"}
NAMES = ("demo-worker-0", "demo-worker-1")


async def one(variant: str, work: Path) -> Rollout:
    lab = up(("ctl", "wk0", "wk1"), prefix=session_prefix("bd"))
    try:
        manager, workers = lab["ctl"], [lab["wk0"], lab["wk1"]]
        form_swarm([manager], workers)
        import_busybox(workers, work)
        web_service(manager, labels=NO_BUDGET if variant == "none" else {})
        spread = {w.address: 1 for w in workers}
        await eventually(lambda: running_on(manager, "web") == spread, "web on both workers")
        async with open_kube_api(work / "api") as api, await connect(kubeconfig=api.kubeconfig_path) as admin:
            await apply_rbac(admin, api.namespace)
            control = SwarmNode(api, admin, work / "control", "demo-control-0", lab=manager,
                                release=(PLAYBOOKS,))
            for name, node in zip(NAMES, workers, strict=True):
                await target_machine(admin, api.namespace, name, node.address)
            await control.create([], type="control")
            async with control.agent(await control.configure()):
                rollout: Rollout = await rolling_drain(admin, api.namespace, manager, workers, NAMES)
                return rollout
    finally:
        lab.down()


async def main(runs: int) -> None:
    results: dict[str, list[Rollout]] = {"budget": [], "none": []}
    for run in range(runs):
        for variant in results:
            with tempfile.TemporaryDirectory(prefix="drain-budget-") as work:
                r = await one(variant, Path(work))
            results[variant].append(r)
            print(f"run {run + 1} {variant:6}: {r.answered}/{r.tried} answered "
                  f"({r.answered / r.tried:.1%}), {r.seconds:.1f} s", flush=True)
    for variant, rs in results.items():
        share = statistics.median(r.answered / r.tried for r in rs)
        failed = statistics.median(r.tried - r.answered for r in rs)
        seconds = statistics.median(r.seconds for r in rs)
        print(f"{variant:6}: median availability {share:.1%} ({failed:g} unanswered rounds of 0.1 s), "
              f"median wall time {seconds:.1f} s over {len(rs)} runs")


if __name__ == "__main__":
    if reason := missing_requirements():
        sys.exit(f"drain_budget: {reason}")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    asyncio.run(main(parser.parse_args().runs))
