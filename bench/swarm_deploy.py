"""Wall time of a three-node deploy from nothing (1 control + 2 workers on lab nodes, every item through the
agent's runner, in the scheduler's order), and the share of it during which a playbook was running.

    .venv/bin/python bench/swarm_deploy.py [--runs N]

Also prints what an empty playbook costs through ``run_item`` at the same moment, so figures taken on a busy
machine can be read against it. A measurement, not a test: speed is never asserted by the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "playbooks"))

from conftest import Cluster, deploy  # type: ignore[import-not-found]  # tests/playbooks, on sys.path above
from swarm_harness import Release, Run  # type: ignore[import-not-found]

from agent.adapters.runners import run_item
from agent.api.execution import ItemInput
from testbed.lab.netns import nodes

EMPTY = "- hosts: localhost\n  gather_facts: false\n  tasks: []\n"


def busy(runs: list[Run]) -> float:
    """Seconds during which at least one playbook ran (the union of the runs' intervals)."""
    total, end = 0.0, float("-inf")
    for started, ended in sorted((r.started, r.ended) for r in runs):
        if started > end:
            total += ended - started
        elif ended > end:
            total += ended - end
        end = max(end, ended)
    return total


async def empty_playbook(work: Path) -> float:
    release = work / "release"
    release.mkdir()
    (release / "empty.yml").write_text(EMPTY)
    item = ItemInput(machine="m", name="empty", runner="ansible", version="1", phase="deploy",
                     params={"playbook": "empty.yml"}, attempt=1, release_dir=release, work_dir=work / "w")
    started = time.monotonic()
    result = await run_item(item, lambda _: None)
    assert result.succeeded, result.message
    return time.monotonic() - started


def once(work: Path) -> tuple[float, float, int]:
    lab = nodes.up(["ctl-1", "wrk-1", "wrk-2"], prefix=nodes.session_prefix("md"))
    try:
        cluster = Cluster(lab, Release(work), [lab["ctl-1"]], [lab["wrk-1"], lab["wrk-2"]],
                          labels={n.name: '{"zone": "a"}' for n in lab.nodes})
        started = time.monotonic()
        asyncio.run(deploy(cluster))
        wall = time.monotonic() - started
        return wall, busy(cluster.release.runs) / wall, len(cluster.release.runs)
    finally:
        lab.down()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    reason = nodes.missing_requirements()
    if reason:
        print(f"cannot measure: {reason}", file=sys.stderr)
        return 2
    walls, shares = [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            empty = asyncio.run(empty_playbook(Path(tmp)))
            wall, share, items = once(Path(tmp) / "work")
        walls.append(wall)
        shares.append(share)
        print(f"deploy {wall:.1f} s, a playbook running {share:.0%} of it, {items} item runs; "
              f"an empty playbook through run_item: {empty:.2f} s")
    print(f"median: deploy {statistics.median(walls):.1f} s, in Ansible {statistics.median(shares):.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
