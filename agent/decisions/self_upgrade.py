"""Whether and when the agent upgrades itself to ``spec.agentConfig``, and what it reports about it.

A pure function of the requested build, the running version, ``status.lcmAgentUpgradeStatus``, the local
record of which build those attempts were for, and the time (docs/self-upgrade.md has the table):

- no version requested, or the running agent is that version → nothing to do;
- a build that differs from the one the status's attempts were for (the spec changed, or nothing was
  tried yet) → upgrade now, as attempt 1: a fixed spec must not wait out the backoff of a broken one;
- the same build again (a failed attempt, one that was interrupted, or one that "succeeded" and still left
  another version running) → retry after a capped, jittered backoff from the last attempt's end.

Any version other than the running one is a valid target, older ones included: an operator rolling a fleet
back to the previous agent is legitimate, and the release, not the agent, decides which builds are allowed.

The status does not say which build its attempts were for (mcc-api's ``LCMAgentUpgradeStatus`` has no such
field, and the CRD prunes unknown ones), hence the local record: ``build_key`` of the last attempted build.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from agent.api.models import AgentConfig, AgentUpgradeStatus
from agent.decisions.execution import stable_uniform
from agent.decisions.reporting import clip
from agent.kits.backoff import Backoff
from agent.kits.timestamps import parse_time, rfc3339

_VERSION_NAME = re.compile(r"[0-9A-Za-z][0-9A-Za-z._+-]{0,63}")
"""A version also names a directory (``versions/<version>``): no separators, no ``..``, no hidden names."""


@dataclass(frozen=True)
class Nothing:
    """No upgrade; ``reason`` is for logs."""

    reason: str


@dataclass(frozen=True)
class Upgrade:
    """Install ``version`` from ``url`` (verified against ``sha256``) and restart into it, as ``attempt``."""

    version: str
    url: str
    sha256: str
    attempt: int


@dataclass(frozen=True)
class Wait:
    """The last attempt at this build failed: try again (as ``attempt``) at ``until``, or on a spec change."""

    until: datetime
    attempt: int


Decision = Nothing | Upgrade | Wait


def build_key(config: AgentConfig) -> str:
    """Identifies a requested build: a change of version, URL or checksum is a new request."""
    return hashlib.sha256(f"{config.version}\n{config.download_url}\n{config.sha256}".encode()).hexdigest()


def next_upgrade(
    config: AgentConfig, running: str, status: AgentUpgradeStatus | None, last_build: str | None,
    now: datetime, backoff: Backoff,
) -> Decision:
    """The one thing to do about the agent's own version; see the module docstring for the rules."""
    if not config.version:
        return Nothing("no agent version requested")
    if config.version == running:
        return Nothing(f"running the requested version {running}")
    key = build_key(config)
    if status is None or last_build != key:
        return Upgrade(config.version, config.download_url, config.sha256.lower(), 1)
    attempt = status.attempt + 1
    ended = parse_time(status.finished_at) or parse_time(status.started_at)
    if ended is not None:
        delay = backoff.delay(max(status.attempt - 1, 0), stable_uniform(f"{key}/{status.attempt}"))
        until = ended + timedelta(seconds=delay)
        if now < until:
            return Wait(until, attempt)
    return Upgrade(config.version, config.download_url, config.sha256.lower(), attempt)


def wheel_name(step: Upgrade) -> str:
    """The wheel's file name, from the URL: pip reads name and version from it, so it must be kept.

    Raises ValueError when the version cannot name a directory or the URL does not name a wheel.
    """
    if not _VERSION_NAME.fullmatch(step.version) or ".." in step.version:
        raise ValueError(f"spec.agentConfig.version {step.version!r} is not a version name")
    name = urlsplit(step.url).path.rsplit("/", 1)[-1]
    if not name.endswith(".whl") or name.startswith("."):
        raise ValueError("spec.agentConfig.downloadURL must name a wheel file (…/lcm_agent-<version>-….whl)")
    return name


def redact_url(text: str, url: str) -> str:
    """``text`` with the URL's user information (a user name can be a token as well as a password) masked."""
    parts = urlsplit(url)
    userinfo, _, host = parts.netloc.rpartition("@")
    if not userinfo:
        return text
    text = text.replace(url, parts._replace(netloc=f"***@{host}").geturl())
    for secret in sorted({userinfo, *userinfo.split(":", 1)} - {""}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def started_patch(attempt: int, now: datetime) -> dict[str, Any]:
    """Written before anything is downloaded, so a crash mid-upgrade shows as an attempt with no end."""
    return {"status": {"lcmAgentUpgradeStatus": {
        "attempt": attempt, "startedAt": rfc3339(now), "finishedAt": None, "error": ""}}}


def finished_patch(attempt: int, started: datetime, now: datetime, error: str, url: str) -> dict[str, Any]:
    """The outcome: ``error`` is "" on success; a failure's reason never carries the URL's credentials."""
    return {"status": {"lcmAgentUpgradeStatus": {
        "attempt": attempt, "startedAt": rfc3339(started), "finishedAt": rfc3339(now),
        "error": clip(redact_url(error, url))}}}
