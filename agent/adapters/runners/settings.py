"""Tunables shared by all runners, with the reason for each default."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunnerSettings:
    keep_attempts: int = 5
    """Artifact directories kept per item: enough to compare a few failed retries, bounded on disk."""
    grace: float = 5.0
    """Seconds between SIGTERM and SIGKILL of a cancelled or timed-out process group."""
    tail_lines: int = 40
    """Output lines kept in a result's ``log_tail`` and failure message (status objects must stay small)."""
    poll_interval: float = 0.2
    """Seconds between ansible-runner's checks for cancellation: the latency of a cancel request."""
    drain_seconds: float = 1.0
    """After a process exits, how long to keep reading output still held open by its leftover children."""
