"""systemd-nspawn machines booted from a cached Debian image: real systemd and cloud-init, as on VMs."""
