"""Items the agent must refuse, and machines it must leave alone: each fails with a clear message in its
status, nothing runs outside the release directory, and the agent keeps serving."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path
from typing import Any

import pytest
from agent_harness import Node, slot, status

from agent import __version__
from agent.daemon.own_machine import LCMMACHINES

OUTSIDE = """- name: must never run
  hosts: all
  gather_facts: false
  tasks:
    - name: leave a trace
      ansible.builtin.file: {path: "{{ trace }}", state: touch}
"""


def _outside(node: Node) -> Path:
    """A playbook outside the release directory, and a symlink to it from inside."""
    path = node.tmp / "outside.yml"
    path.write_text(OUTSIDE)
    (node.release_dir / "link.yml").symlink_to(path)
    return path


# An unknown runner or a non-string param never reaches the agent: the CRD's schema refuses them (422).
@pytest.mark.parametrize(("playbook", "message"), [
    ("../outside.yml", "resolves outside the release directory"),
    ("{outside}", "is absolute"),
    ("link.yml", "resolves outside the release directory"),
    ("missing.yml", "not found in the release directory"),
    ("broken.yml", "YAML parsing failed"),
])
async def test_refused_item_fails_clearly_and_fixing_the_spec_proceeds(
    node: Node, playbook: str, message: str,
) -> None:
    cfg = await node.configure()
    trace = node.tmp / "trace"
    bad: dict[str, Any] = node.item("bad", "deploy", trace=str(trace))
    bad["params"]["playbook"] = playbook.format(outside=_outside(node))
    await node.create([bad])
    async with node.agent(cfg):
        entry = await node.wait_slot("bad", lambda s: s.get("exitCode", -1) > 0, describe="bad failed")
        assert message in entry["message"]
        assert entry["result"] == {"outcome": "failed"}
        await node.patch_spec({"stateItems": [node.item("bad", "deploy")]})
        machine = await node.wait_state("Ready")
    assert not trace.exists(), "nothing ran outside the release directory"
    assert slot(machine, "bad")["exitCode"] == 0


async def test_halted_agent_runs_nothing_but_still_reports(node: Node) -> None:
    cfg = await node.configure()
    await node.create([node.item("held", "deploy")], haltAgent=True)
    async with node.agent(cfg):
        machine = await node.wait_state("Deploy")
        assert any(a["type"] == "InternalIP" for a in status(machine)["addresses"])
        # A second item is a new generation: once the agent reported on it, it had decided on the first
        # (one spec at a time), and a run it started would have taken the item's slot.
        await node.patch_spec({"stateItems": [node.item("held", "deploy"), node.item("later", "deploy")]})
        machine = await node.wait_observed()
        assert (slot(machine, "held"), slot(machine, "later")) == ({}, {})
        assert node.runs("held") == node.runs("later") == []
        await node.patch_spec({"haltAgent": False})
        await node.wait_state("Ready")
    assert (node.runs("held"), node.runs("later")) == (["held 1"], ["later 1"])


async def test_agent_creates_its_machine_as_unassigned_and_registers(node: Node) -> None:
    cfg = await node.configure(create_if_missing=True)
    async with node.agent(cfg):
        machine = await node.wait_state("Pending")
    assert machine["spec"]["type"] == "unassigned"
    st = status(machine)
    kinds = {a["type"]: a["address"] for a in st["addresses"]}
    assert kinds["Hostname"] == socket.gethostname()
    assert kinds["InternalIP"]
    assert st["agentVersion"] == __version__
    assert st["hostInfo"]["architecture"]
    assert st["hostInfo"]["hardware"]["memory"]["total"] > 0
    assert st["progress"] == "0/0"
    # The object is the agent's: it lives in the configured namespace under the configured name.
    assert (await node.admin.get(LCMMACHINES, node.namespace, node.name))["metadata"]["uid"]


async def test_download_with_a_wrong_checksum_never_replaces_its_destination(node: Node) -> None:
    cfg = await node.configure()
    payload = node.tmp / "payload.bin"
    payload.write_bytes(b"the real thing\n")
    dest = node.tmp / "installed.bin"
    dest.write_bytes(b"old version\n")

    def download(sha: str) -> dict[str, Any]:
        return {"runner": "downloader", "name": "fetch", "version": "1", "phase": "deploy",
                "params": {"url": payload.as_uri(), "sha256": sha, "dest": str(dest)}}

    await node.create([download("0" * 64)])
    async with node.agent(cfg):
        entry = await node.wait_slot("fetch", lambda s: s.get("exitCode", -1) > 0, describe="fetch failed")
        assert "sha256 mismatch" in entry["message"]
        assert dest.read_bytes() == b"old version\n"
        await node.patch_spec({"stateItems": [download(hashlib.sha256(payload.read_bytes()).hexdigest())]})
        await node.wait_state("Ready")
    assert dest.read_bytes() == b"the real thing\n"
