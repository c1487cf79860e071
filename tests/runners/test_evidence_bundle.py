"""The diagnostics bundle of a real failing item run through ansible-runner: the failing task and the end of
its output, no secret, and capped in size saying so."""

from __future__ import annotations

import json
from pathlib import Path

from runner_harness import Runs

from agent.daemon.diagnostics import EvidenceSources, gather
from agent.decisions.evidence import BUNDLE_LIMIT
from agent.kits.logs import SecretRegistry

JOIN_TOKEN = "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx"
"""What a swarm join token looks like; the item gets it as a secret (the runner redacts it)."""
API_TOKEN = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImFnZW50In0.not-a-real-api-token.sig"
"""Known only to the agent's registry (the runner does not know it): the bundle's own redaction must hide
it wherever the playbook printed it."""


async def _failed_run(runs: Runs, lines: int) -> None:
    item = runs.item("ansible", {"playbook": "evidence.yml", "api_token": API_TOKEN, "lines": str(lines)},
                     name="install-engine", attempt=3, secrets={"token": JOIN_TOKEN})
    result = await runs.run(item)
    assert result.result == "failed"


def _sources(runs: Runs, tmp_path: Path, limit: int = BUNDLE_LIMIT) -> EvidenceSources:
    return EvidenceSources(state_dir=tmp_path, work_dir=runs.work_dir,
                           docker_host=f"unix://{tmp_path}/no-engine.sock", limit=limit)


async def test_the_bundle_names_the_failing_task_and_its_output_and_holds_no_secret(
    runs: Runs, tmp_path: Path,
) -> None:
    await _failed_run(runs, lines=10)
    secrets = SecretRegistry([API_TOKEN, JOIN_TOKEN])
    bundle = gather("install-engine", 3, _sources(runs, tmp_path), secrets)

    assert bundle["item"] == "install-engine"
    assert bundle["attempt"] == 3
    assert bundle["task"]["task"] == "fetch the engine package"
    assert bundle["task"]["event"] == "runner_on_failed"
    assert "Unable to fetch docker.io" in bundle["task"]["message"]
    assert "Unable to fetch docker.io" in bundle["outputTail"]
    assert bundle["outputTail"].index("0 1 2 3 4 5 6 7 8 9") < bundle["outputTail"].index("Unable to fetch")
    assert bundle["truncated"] is False
    assert "did not answer" in bundle["docker"]["error"]  # no engine here: said, not fatal
    assert bundle["host"]["disk"]["free"] > 0
    assert bundle["host"]["memory"]["available"] > 0
    text = json.dumps(bundle)
    assert JOIN_TOKEN not in text
    assert API_TOKEN not in text
    assert "api ***" in bundle["task"]["message"]


async def test_a_bundle_larger_than_its_cap_is_cut_keeping_the_end_and_says_so(
    runs: Runs, tmp_path: Path,
) -> None:
    await _failed_run(runs, lines=20_000)
    secrets = SecretRegistry([API_TOKEN, JOIN_TOKEN])
    limit = 6 * 1024
    bundle = gather("install-engine", 3, _sources(runs, tmp_path, limit), secrets)

    size = len(json.dumps(bundle, separators=(",", ":"), ensure_ascii=False).encode())
    assert size <= limit
    assert bundle["truncated"] is True
    assert "outputTail" in bundle["truncatedFields"]
    tail = bundle["outputTail"]
    assert tail.startswith("[truncated ")
    assert "Unable to fetch docker.io" in tail  # the end, where the error is, is what is kept
    assert bundle["task"]["task"] == "fetch the engine package"
    text = json.dumps(bundle)
    assert JOIN_TOKEN not in text
    assert API_TOKEN not in text
