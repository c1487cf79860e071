"""Fixtures for the runner tests (helpers live in ``runner_harness``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from runner_harness import PLAYBOOKS, Runs


@pytest.fixture
def runs(tmp_path: Path) -> Runs:
    """Items run against the playbooks in ``playbooks/``, with a fresh work dir."""
    work = tmp_path / "work"
    work.mkdir()
    return Runs(release_dir=PLAYBOOKS, work_dir=work)
