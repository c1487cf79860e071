"""The install root: switching ``current``, pruning old versions, recognising a reusable version."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from upgrade_harness import RUNNING, fake_version

from agent.adapters.install import MARKER, InstallError, Layout, activate, installed, prune


def test_switching_current_is_a_rename_of_a_relative_link(layout: Layout) -> None:
    new = fake_version(layout, "0.2.0")
    previous = activate(layout, "0.2.0")

    assert previous == layout.version_dir(RUNNING)
    assert os.readlink(layout.current) == "versions/0.2.0"
    assert layout.active() == new
    assert sorted(p.name for p in layout.root.iterdir()) == ["current", "versions"], "no temporary link left"


def test_a_current_that_is_not_a_link_is_never_replaced(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    fake_version(layout, "0.2.0")
    (layout.current / "bin").mkdir(parents=True)

    with pytest.raises(InstallError, match="not a symlink"):
        activate(layout, "0.2.0")
    assert (layout.current / "bin").is_dir()


def test_prune_keeps_only_what_it_is_told(layout: Layout) -> None:
    for version in ("0.0.8", "0.0.9", "0.2.0"):
        fake_version(layout, version)
    removed = prune(layout, [layout.version_dir("0.2.0"), layout.current])

    assert sorted(p.name for p in removed) == ["0.0.8", "0.0.9"]
    assert {p.name for p in layout.versions.iterdir()} == {"0.2.0", RUNNING}


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (None, True),
        ("wrong digest", False),
        ("no marker", False),
        ("no agent", False),
    ],
)
def test_a_version_is_reusable_only_if_built_from_that_very_wheel(
    layout: Layout, damage: str | None, expected: bool,
) -> None:
    tree = fake_version(layout, "0.2.0", sha256="2" * 64)
    if damage == "wrong digest":
        (tree / MARKER).write_text("3" * 64)
    elif damage == "no marker":
        (tree / MARKER).unlink()
    elif damage == "no agent":
        (tree / "bin" / "lcm-agent").unlink()
    assert installed(layout, "0.2.0", "2" * 64) is expected
