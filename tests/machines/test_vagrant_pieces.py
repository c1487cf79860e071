"""The Vagrant VMs' parts that need no VM: the network libvirt is given is isolated, the box is rebuilt when
what goes into it changes, the VMs' release installs from the lab's mirror, and bad input to
``lcmctl vagrant`` is refused before anything is made."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from testbed.kube.objects import documents
from testbed.lab.box import disk, libvirt, vagrant_box
from testbed.lab.machines import rootfs
from testbed.lab.machines.network import Subnet
from testbed.lab.stack.machines import PACKAGES_PLAYBOOK, with_apt_source

ROOT = Path(__file__).parents[2]
LCMCTL = str(Path(sys.executable).with_name("lcmctl"))


def test_the_vms_network_neither_routes_nor_nats_and_hands_out_addresses_after_the_host() -> None:
    root = ElementTree.fromstring(libvirt.network_xml())  # noqa: S314 - our own document
    assert root.find("forward") is None  # no <forward>: isolated, the host's ip_forward is never touched
    assert root.findtext("name") == libvirt.NETWORK
    ip = root.find("ip")
    assert ip is not None
    assert ip.get("address") == "10.80.0.1"
    dhcp = ip.find("dhcp/range")
    assert dhcp is not None
    assert (dhcp.get("start"), dhcp.get("end")) == ("10.80.0.10", "10.80.0.254")
    dns = root.find("dns")
    assert dns is not None
    assert dns.get("enable") == "no"


def test_the_vms_subnet_is_not_the_nspawn_machines() -> None:
    assert not libvirt.SUBNET.network.overlaps(Subnet().network)
    assert libvirt.SUBNET.bridge != Subnet().bridge


def test_a_change_to_the_disks_inputs_makes_a_new_box(monkeypatch: pytest.MonkeyPatch) -> None:
    before = vagrant_box.box_key()
    assert vagrant_box.box_key() == before  # stable for the same inputs
    monkeypatch.setattr(disk, "VM_PACKAGES", (*disk.VM_PACKAGES, "htop"))
    assert vagrant_box.box_key() != before
    monkeypatch.undo()
    monkeypatch.setattr(disk, "INITRD_MODULES", ("virtio_blk",))
    assert vagrant_box.box_key() != before


async def test_the_newest_build_is_where_the_vagrantfiles_box_url_points(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # On a host's first `vagrant up`, Vagrant adds the box from box_url: the link must follow each new build.
    builds = []
    for packages in (disk.VM_PACKAGES, (*disk.VM_PACKAGES, "htop")):
        monkeypatch.setattr(disk, "VM_PACKAGES", packages)
        box = vagrant_box.box_path(tmp_path) / vagrant_box.BOX_FILE
        box.parent.mkdir()
        box.write_bytes(b"a built box")
        assert await vagrant_box.ensure_box(tmp_path) == box
        assert (tmp_path / vagrant_box.CURRENT_LINK).resolve() == box
        builds.append(box)
    assert builds[0] != builds[1]
    box_url = re.search(r'^BOX_URL = "file://(.+)"$', (ROOT / "Vagrantfile").read_text(), re.M)
    assert box_url is not None
    assert Path(box_url[1]) == rootfs.CACHE_ROOT / vagrant_box.CURRENT_LINK


def test_the_vms_release_installs_its_packages_from_the_lab_mirror_only() -> None:
    source = "deb [trusted=yes] http://10.80.0.1:8080/apt ./"
    docs = [with_apt_source(doc, source) for doc in documents([ROOT / "deploy" / "vagrant"])]
    release = next(d for d in docs if d["kind"] == "ClusterRelease")
    cluster = next(d for d in docs if d["kind"] == "LCMCluster")
    assert cluster["spec"]["release"] == release["metadata"]["name"]
    for items in release["spec"]["machineTypes"].values():
        assert {item["phase"] for item in items} == {"prepare", "deploy"}  # Ready is the deploy phase done
        # small: no Docker Engine, no swarm (no deploy playbook)
        assert [i["name"] for i in items if i["params"].get("playbook", "").startswith("deploy/")] == []
        packages = [i for i in items if i["params"].get("playbook") == PACKAGES_PLAYBOOK]
        assert [p["params"]["aptSource"] for p in packages] == [source]


@pytest.mark.parametrize("nodes", ["", ",", "node-1,node-1"])
def test_lcmctl_vagrant_refuses_bad_node_names_before_making_anything(nodes: str) -> None:
    done = subprocess.run([LCMCTL, "vagrant", "serve", "--nodes", nodes], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 1
    assert "give distinct VM names, comma-separated" in done.stderr
