"""The real regional control plane (etcd, kube-apiserver, kube-controller-manager) for tests, the demo and
people: built from the Go module in ``testbed/kube`` (``build``), its credentials (``pki``), started and
stopped (``plane``)."""
