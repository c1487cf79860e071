"""Vagrant test VMs: a libvirt box built from the nspawn machines' own Debian image, the isolated libvirt
network the VMs live on, and the host-side regional side (API, scheduler, mirrors) the project's Vagrantfile
starts before ``vagrant up``. docs/machines.md ("Vagrant VMs") says how they fit together."""

BOX_NAME = "lcm/bookworm"
"""The name the box is added to Vagrant under, and the one the Vagrantfile asks for."""
