"""The reconciler's lab: a swarm of network-namespace nodes (``reconciler_lab``), formed once per module
(a swarm takes seconds to form); every test leaves the nodes converged, which the reconciler under test
does itself."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from reconciler_lab import SwarmLab, form

from testbed.lab.netns.nodes import missing_requirements, session_prefix, up


@pytest.fixture(scope="module")
def swarm_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwarmLab]:
    reason = missing_requirements()
    if reason:
        pytest.skip(reason)
    lab = up(["m1", "m2", "w1"], prefix=session_prefix("rc"))
    try:
        yield form(lab, tmp_path_factory.mktemp("reconciler"))
    finally:
        lab.down()
