"""Item churn: thousands of items added to a machine and then removed leave nothing behind, neither in the
object (a real API server refuses objects over about 1.5 MiB, which would block every later status
write), nor on disk, nor in what ``kubectl get lcmm`` shows."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from agent_harness import Node, status

from testbed.sim.testing import KubeApi

KUBECTL = shutil.which("kubectl")
CHURN = 300
"""Enough to grow the object 20-fold; the bounds checked do not depend on the count (the status write
cost grows with the object, so 2,000 items take over 10 minutes here)."""


def bash_item(name: str) -> dict[str, Any]:
    return {"runner": "bash", "name": name, "version": "1", "phase": "deploy", "params": {"script": "true"}}


def disk_usage(path: Path) -> tuple[int, int]:
    """(entries, bytes) under ``path``."""
    entries = list(path.rglob("*"))
    return len(entries), sum(p.stat().st_size for p in entries if p.is_file())


async def kubectl_row(kube_api: KubeApi, namespace: str, name: str) -> dict[str, str]:
    """The machine's row of ``kubectl get lcmm``, by column name."""
    assert KUBECTL is not None
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, "--kubeconfig", str(kube_api.kubeconfig_path),
        "--cache-dir", str(kube_api.kubeconfig_path.parent / "kubectl-cache"),
        "get", "lcmm", "-n", namespace, name, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    header, row = out.decode().splitlines()
    # Columns by their header's position: an empty cell (PENDING on a machine waiting for nothing) is blank.
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    ends = [*starts[1:], None]
    return {header[a:b].strip(): row[a:b].strip() for a, b in zip(starts, ends, strict=True)}


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (Debian package kubernetes-client)")
async def test_items_churned_away_leave_no_slots_no_artifacts_and_a_true_ready_row(
    node: Node, kube_api: KubeApi,
) -> None:
    cfg = await node.configure()
    original = [bash_item(f"step-{n}") for n in range(7)]
    await node.create(original, release="swarm-1-0-0")
    artifacts = node.state_dir / "runs" / "artifacts"
    async with node.agent(cfg):
        before = await node.wait_for(lambda o: status(o).get("progress") == "7/7", within=60,
                                     describe="the original 7 done")
        size_before, disk_before = len(json.dumps(before)), disk_usage(artifacts)
        churned = original + [bash_item(f"churn-{n}") for n in range(CHURN)]
        await node.patch_spec({"stateItems": churned})
        total = f"{CHURN + 7}/{CHURN + 7}"
        grown = await node.wait_for(lambda o: status(o).get("progress") == total, within=600,
                                    describe=f"{total} done")
        assert len(status(grown)["stateItemStatuses"]) == CHURN + 7
        await node.patch_spec({"stateItems": original})
        after = await node.wait_for(lambda o: status(o).get("progress") == "7/7", within=60,
                                    describe="the status caught up with the restored spec")
        row = await kubectl_row(kube_api, node.namespace, node.name)
    assert sorted(status(after)["stateItemStatuses"]) == sorted(i["name"] for i in original)
    assert len(json.dumps(after)) <= size_before + 1024, "the object is back to its size before the churn"
    assert sorted(p.name for p in artifacts.iterdir()) == sorted(i["name"] for i in original)
    entries, used = disk_usage(artifacts)
    assert entries <= disk_before[0] + 7  # at most one more attempt directory per item
    assert used <= disk_before[1] + 64 * 1024
    assert (row["STATE"], row["ITEMS"], row["RELEASE"]) == ("Ready", "7/7", "swarm-1-0-0")
    assert len(json.dumps(grown)) > 20 * size_before  # the churn did grow it: the bound above means something
