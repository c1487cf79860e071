"""The command lines build their parsers without the stack: ``--help`` and the light commands stay instant
(bench/cli_startup.py measures them) only as long as no parser module imports the API client, the Docker
SDK, the lab or the terminal library. Each check runs in a fresh interpreter, as an operator's command
does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("kubernetes_asyncio", "aiohttp", "docker", "rich", "ansible_runner", "aiomqtt", "pydantic")


def _loaded_after(code: str) -> list[str]:
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    return [m for m in json.loads(out.splitlines()[-1]) if m in HEAVY]


def _help_of(module: str) -> str:
    """Code printing the ``--help`` of the console script whose ``main`` is in ``module``."""
    return f"import {module} as cli\ntry:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass"


@pytest.mark.parametrize(("label", "code"), [
    ("lcmctl --help", "from regional.cli.ctl import build_parser; build_parser()"),
    ("lcm-agent --help", _help_of("agent.cli.node")),
    ("lcm-agent status", "from agent.cli import node_status"),
    ("lcm-scheduler --help", _help_of("regional.cli.scheduler")),
    ("lcmctl cloud-init render", "from regional.cli import cloudinit"),
])
def test_parsers_and_light_commands_import_no_heavy_library(label: str, code: str) -> None:
    assert _loaded_after(code) == [], f"{label} imports the stack"


def test_a_heavy_command_still_gets_its_handler() -> None:
    """The other side: running a command imports what it needs (here the simulator's handler)."""
    loaded = _loaded_after("from regional.cli.ctl import build_parser\n"
                           "args = build_parser().parse_args(['sim', 'fault', 'list'])\n"
                           "import importlib; importlib.import_module('testbed.cli.sim')")
    assert "kubernetes_asyncio" in loaded


def test_an_agent_reaching_the_api_with_a_token_file_never_loads_kubernetes_asyncio(tmp_path: Path) -> None:
    """A node's agent talks to the API through aiohttp alone: kubernetes_asyncio's client package would add
    37 MiB to every node's idle agent (bench/agent_idle.py) for a kubeconfig loader a node does not use."""
    token = tmp_path / "token"
    token.write_text("not-a-real-token\n")
    loaded = _loaded_after(
        "import asyncio, pathlib\nimport agent.daemon.app\nfrom agent.adapters.kube import connect, SECRETS\n"
        "async def main():\n"
        f"    async with await connect(server='https://127.0.0.1:9', token_file=pathlib.Path({str(token)!r}))"
        " as kube:\n"
        "        try:\n            await kube.list_objects(SECRETS, 'default')\n"
        "        except Exception as exc:\n            print(type(exc).__name__)\n"
        "asyncio.run(main())")
    assert "aiohttp" in loaded
    assert "kubernetes_asyncio" not in loaded
