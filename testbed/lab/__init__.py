"""Stand-ins for the machines and services of a real site, for tests and the demo: ``netns`` (nodes with
their own dockerd in network namespaces), ``machines`` (systemd-nspawn machines), ``mirrors`` (apt and PyPI
for an air-gapped site) and ``stack`` (the demo's regional services and the state of a run)."""
