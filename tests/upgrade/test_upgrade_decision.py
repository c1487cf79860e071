"""The pure self-upgrade decision: whether, when and as which attempt the agent upgrades itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.api.models import AgentConfig, AgentUpgradeStatus
from agent.decisions.self_upgrade import (
    Nothing,
    Upgrade,
    Wait,
    build_key,
    finished_patch,
    next_upgrade,
    redact_url,
    started_patch,
    wheel_name,
)
from agent.kits.backoff import Backoff

NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
BACKOFF = Backoff(base=10.0, cap=300.0)
SHA = "a" * 64
URL = "https://mirror.example/agent/lcm_agent-0.2.0-py3-none-any.whl"
WANTED = AgentConfig.model_validate({"version": "0.2.0", "downloadURL": URL, "sha256": SHA})
KEY = build_key(WANTED)


def ago(seconds: float) -> str:
    return (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def status(attempt: int, *, started: str | None = None, finished: str | None = None,
           error: str = "boom") -> AgentUpgradeStatus:
    return AgentUpgradeStatus(attempt=attempt, started_at=started, finished_at=finished, error=error)


@pytest.mark.parametrize(
    ("config", "running", "upgrade_status", "last_build", "expected"),
    [
        pytest.param(AgentConfig(), "0.1.0", None, None, Nothing, id="no version requested"),
        pytest.param(WANTED, "0.2.0", None, None, Nothing, id="already running it"),
        pytest.param(WANTED, "0.1.0", None, None, Upgrade("0.2.0", URL, SHA, 1), id="first request"),
        pytest.param(WANTED, "0.3.0", None, None, Upgrade("0.2.0", URL, SHA, 1), id="downgrade is allowed"),
        pytest.param(WANTED, "0.1.0", status(4, finished=ago(1)), "another build",
                     Upgrade("0.2.0", URL, SHA, 1), id="spec changed: at once, counting from 1"),
        pytest.param(WANTED, "0.1.0", status(4, finished=ago(1)), None,
                     Upgrade("0.2.0", URL, SHA, 1), id="record lost: treated as a new request"),
        pytest.param(WANTED, "0.1.0", status(1, finished=ago(1)), KEY, Wait, id="failed just now: backoff"),
        pytest.param(WANTED, "0.1.0", status(1, finished=ago(3600)), KEY,
                     Upgrade("0.2.0", URL, SHA, 2), id="failed long ago: next attempt"),
        pytest.param(WANTED, "0.1.0", status(3, started=ago(1)), KEY, Wait,
                     id="interrupted just now: backoff from its start"),
        pytest.param(WANTED, "0.1.0", status(3, started=ago(3600)), KEY,
                     Upgrade("0.2.0", URL, SHA, 4), id="interrupted long ago: next attempt"),
        pytest.param(WANTED, "0.1.0", status(2, finished=ago(1), error=""), KEY, Wait,
                     id="succeeded yet another version runs: paced like a failure"),
        pytest.param(WANTED, "0.1.0", status(2, finished="not a time"), KEY,
                     Upgrade("0.2.0", URL, SHA, 3), id="unreadable times: next attempt"),
    ],
)
def test_next_upgrade(
    config: AgentConfig, running: str, upgrade_status: AgentUpgradeStatus | None, last_build: str | None,
    expected: object,
) -> None:
    decision = next_upgrade(config, running, upgrade_status, last_build, NOW, BACKOFF)
    if isinstance(expected, type):
        assert isinstance(decision, expected)
    else:
        assert decision == expected


@pytest.mark.parametrize("attempt", [1, 2, 5, 30])
def test_retry_waits_within_the_backoff_window_of_the_attempt(attempt: int) -> None:
    decision = next_upgrade(WANTED, "0.1.0", status(attempt, finished=ago(0)), KEY, NOW, BACKOFF)
    assert isinstance(decision, Wait)
    assert decision.attempt == attempt + 1
    assert NOW < decision.until <= NOW + timedelta(seconds=BACKOFF.window(attempt - 1))


def test_a_changed_checksum_or_url_is_a_new_build() -> None:
    assert len({build_key(WANTED), build_key(WANTED.model_copy(update={"sha256": "b" * 64})),
                build_key(WANTED.model_copy(update={"download_url": URL + "?v=2"}))}) == 3


@pytest.mark.parametrize(
    ("version", "url", "expected"),
    [
        ("0.2.0", URL, "lcm_agent-0.2.0-py3-none-any.whl"),
        ("0.2.0rc1", "file:///m/lcm_agent-0.2.0rc1-py3-none-any.whl?x=1",
         "lcm_agent-0.2.0rc1-py3-none-any.whl"),
        ("../../etc", URL, ValueError),
        ("0.2/0", URL, ValueError),
        ("..", URL, ValueError),
        (".hidden", URL, ValueError),
        ("0.2.0", "https://mirror.example/agent/", ValueError),
        ("0.2.0", "https://mirror.example/agent.tar.gz", ValueError),
        ("0.2.0", "https://mirror.example/.whl", ValueError),
    ],
)
def test_wheel_name(version: str, url: str, expected: str | type[Exception]) -> None:
    step = Upgrade(version, url, SHA, 1)
    if isinstance(expected, str):
        assert wheel_name(step) == expected
    else:
        with pytest.raises(expected):
            wheel_name(step)


@pytest.mark.parametrize(
    ("text", "url", "expected"),
    [
        ("download of https://bob:pa55@m.example/a.whl failed", "https://bob:pa55@m.example/a.whl",
         "download of https://***@m.example/a.whl failed"),
        ("auth failed for pa55 and bob", "https://bob:pa55@m.example/a.whl", "auth failed for *** and ***"),
        ("GET https://tok3n@m.example:8443/a.whl: 403", "https://tok3n@m.example:8443/a.whl",
         "GET https://***@m.example:8443/a.whl: 403"),
        ("download of https://m.example/a.whl failed", "https://m.example/a.whl",
         "download of https://m.example/a.whl failed"),
    ],
)
def test_redact_url_masks_user_information(text: str, url: str, expected: str) -> None:
    assert redact_url(text, url) == expected


def test_status_patches_report_the_attempt_and_never_the_credentials() -> None:
    started = NOW - timedelta(seconds=30)
    assert started_patch(3, started) == {"status": {"lcmAgentUpgradeStatus": {
        "attempt": 3, "startedAt": "2026-11-21T11:59:30Z", "finishedAt": None, "error": ""}}}
    url = "https://bob:pa55@m.example/a.whl"
    patch = finished_patch(3, started, NOW, f"download of {url} failed: " + "x" * 10_000, url)
    body = patch["status"]["lcmAgentUpgradeStatus"]
    assert body["attempt"] == 3
    assert (body["startedAt"], body["finishedAt"]) == ("2026-11-21T11:59:30Z", "2026-11-21T12:00:00Z")
    assert "pa55" not in body["error"]
    assert len(body["error"]) <= 4096
    assert finished_patch(3, started, NOW, "", url)["status"]["lcmAgentUpgradeStatus"]["error"] == ""
