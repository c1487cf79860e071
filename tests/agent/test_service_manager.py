"""What systemd sees of ``lcm-agent run``: readiness once registered, watchdog pings, STOPPING on SIGTERM,
and SIGHUP re-reading the configuration without a restart."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path

import yaml
from agent_harness import Node

from agent.daemon.app import ExitCode


async def _messages(sock: socket.socket, until: str, within: float = 30.0) -> list[str]:
    """Datagrams received on the notify socket until one contains ``until``."""
    loop = asyncio.get_running_loop()
    seen: list[str] = []
    async with asyncio.timeout(within):
        while not any(until in m for m in seen):
            seen.append((await loop.sock_recv(sock, 4096)).decode())
    return seen


async def test_ready_after_registration_watchdog_pings_and_stopping(node: Node, tmp_path: Path) -> None:
    await node.configure(create_if_missing=True)
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.setblocking(False)
        agent = await node.spawn({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"})
        try:
            ready = await _messages(sock, "READY=1")
            # Readiness means registered: the machine exists and reports its addresses.
            assert (await node.get())["status"]["addresses"]
            pings = await _messages(sock, "WATCHDOG=1")
            pings += await _messages(sock, "WATCHDOG=1")
            assert sum("WATCHDOG=1" in m for m in ready + pings) >= 2
            agent.send_signal(signal.SIGTERM)
            await _messages(sock, "STOPPING=1")
            assert await asyncio.wait_for(agent.wait(), 15) == ExitCode.OK
        finally:
            if agent.returncode is None:
                agent.kill()
                await agent.wait()


async def test_sighup_rereads_the_config_and_refuses_a_broken_one(node: Node) -> None:
    await node.configure()
    await node.create([node.item("one", "deploy")])
    agent = await node.spawn()
    log = node.tmp / "agent.log"
    try:
        await node.wait_state("Ready")
        doc = yaml.safe_load(node.config_path.read_text())
        doc["timings"]["backoff_cap"] = 7.0
        node.config_path.write_text(yaml.safe_dump(doc))
        agent.send_signal(signal.SIGHUP)
        await node.wait_for(lambda _: "apply after a restart" in log.read_text(), within=10,
                            describe="the reload to be logged")
        node.config_path.write_text("api: [not, a, mapping]\n")
        agent.send_signal(signal.SIGHUP)
        await node.wait_for(lambda _: "reload refused" in log.read_text(), within=10,
                            describe="the broken config to be refused")
        assert agent.returncode is None, "a bad reload keeps the agent running"
        # Still serving: a new item runs.
        await node.patch_spec({"stateItems": [node.item("one", "deploy"), node.item("two", "deploy")]})
        await node.wait_slot("two", lambda s: s.get("exitCode") == 0, describe="two done")
        assert node.runs("two") == ["two 1"]
    finally:
        agent.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(agent.wait(), 15) == ExitCode.OK
