"""How a machine gets the release's playbooks and its package source: the agent's wheel carries the playbooks
and the config's default ``release_dir`` finds them; ``prepare/packages.yml`` takes a whole sources line
(``aptSource``, as an air-gapped flat repository needs) over the mirror/suite/components triple; the machine
stack rewrites the sample releases to name the lab's mirror that way."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from agent.daemon.config import BUNDLED_RELEASE_DIR, CHECKOUT_RELEASE_DIR, default_release_dir
from testbed import CHECKOUT
from testbed.lab.stack.machines import with_apt_source
from testbed.lab.stack.stack import PLAYBOOKS

LAB_SOURCE = "deb [trusted=yes] http://10.79.0.1:8080/apt ./"
ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))


def test_the_agent_wheel_carries_the_release_playbooks(tmp_path: Path) -> None:
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "--quiet", "--wheel-dir", str(tmp_path), str(CHECKOUT)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("lcm_agent-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"agent/release/playbooks/{p.relative_to(PLAYBOOKS).as_posix()}" for p in PLAYBOOKS.rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}
    assert "agent/release/playbooks/prepare/docker-engine.yml" in shipped
    assert shipped <= names, sorted(shipped - names)


def test_the_default_release_dir_is_the_first_tree_present(tmp_path: Path) -> None:
    system, bundled, checkout = tmp_path / "usr-share", tmp_path / "bundled", tmp_path / "checkout"
    assert default_release_dir((system, bundled, checkout)) == BUNDLED_RELEASE_DIR  # none: names the wheel's
    checkout.mkdir()
    assert default_release_dir((system, bundled, checkout)) == checkout
    bundled.mkdir()
    assert default_release_dir((system, bundled, checkout)) == bundled
    system.mkdir()  # an operator's own tree wins
    assert default_release_dir((system, bundled, checkout)) == system
    # In this source checkout (an editable install, no bundled tree) the agent runs the repository's.
    assert CHECKOUT_RELEASE_DIR == PLAYBOOKS
    assert default_release_dir().is_dir()


def apt_sources(tmp_path: Path, **params: str) -> str | None:
    """What prepare/packages writes to sources.list.d with ``params`` (base packages already present)."""
    sources = tmp_path / "apt" / "sources.list.d"
    sources.mkdir(parents=True)  # as on every Debian host
    extra = {"lcm_etc_dir": str(tmp_path), "basePackages": "dpkg",
             "ansible_python_interpreter": sys.executable}
    argv = [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", "prepare/packages.yml",
            "-e", json.dumps({**extra, **params})]
    done = subprocess.run(argv, cwd=PLAYBOOKS, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    written = sources / "lcm-mirror.list"
    return written.read_text().splitlines()[-1] if written.exists() else None


@pytest.mark.parametrize(("params", "line"), [
    ({"aptSource": LAB_SOURCE, "aptMirror": "http://mirror.demo.internal/debian"}, LAB_SOURCE),
    ({"aptMirror": "http://m/debian", "aptSuite": "trixie", "aptComponents": "main contrib"},
     "deb http://m/debian trixie main contrib"),
    ({"aptMirror": "http://m/debian"}, "deb http://m/debian bookworm main"),
    ({}, None),
])
def test_packages_takes_a_whole_sources_line_over_the_mirror_triple(
    tmp_path: Path, params: dict[str, str], line: str | None,
) -> None:
    assert apt_sources(tmp_path, **params) == line


def test_the_machine_stack_points_every_packages_item_of_a_release_at_the_lab_mirror() -> None:
    sample = CHECKOUT / "deploy" / "samples" / "10-clusterrelease-swarm-1.0.0.yaml"
    release = yaml.safe_load(sample.read_text())
    rewritten = with_apt_source(release, LAB_SOURCE)
    for machine_type, items in rewritten["spec"]["machineTypes"].items():
        packages = [i for i in items if i["name"] == "packages"]
        assert [p["params"]["aptSource"] for p in packages] == [LAB_SOURCE], machine_type
        others = [i for i in items if i["name"] != "packages"]
        assert not any("aptSource" in (i.get("params") or {}) for i in others)
    assert "aptSource" not in json.dumps(release)  # the loaded sample itself is left as it was
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}}
    assert with_apt_source(namespace, LAB_SOURCE) == namespace
