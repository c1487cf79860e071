"""The real regional API here: etcd, kube-apiserver and kube-controller-manager, started and stopped.

``ControlPlane.start`` runs the three binaries of ``testbed.kube.build``, each a process group of its own
logging to ``<state>/logs``: etcd on loopback with its own data folder; kube-apiserver with Node,RBAC
authorization, the admin's bearer token, a service-account issuer and signing key and its own serving CA
(``testbed.kube.pki``), on ``host`` (loopback, or the lab bridge's address so machines reach it); the
controller manager with the controllers the project needs (namespace deletion, garbage collection, service
accounts and their legacy token Secrets, the root CA ConfigMap). It returns once ``/readyz`` answers, the
controller manager has made the ``default`` ServiceAccount, and the project's CRDs are Established, with the
admin kubeconfig written. A component that exits, or a step that never completes, raises ``PlaneError``
with the component's log tail: the launcher never hangs.

The pids live in ``<state>/pids.json``, so ``stop_recorded`` (``lcmctl kube down``) stops a plane another
process started.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from agent.adapters.kube import KubeError, Resource, connect
from testbed.kube.crds import install_crds
from testbed.kube.pki import ADMIN, CONTROLLER_MANAGER, Pki, ensure_pki
from testbed.kubeconfig import write_kubeconfig

SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts")
SERVICE_RANGE = "10.0.0.0/24"
CONTROLLERS = ("namespace-controller", "garbage-collector-controller", "serviceaccount-controller",
               "serviceaccount-token-controller", "root-ca-certificate-publisher-controller")
"""What the project relies on: deleted namespaces emptied, owner references honoured, the ``default``
ServiceAccount and legacy ``kubernetes.io/service-account-token`` Secrets filled in, ``kube-root-ca.crt``."""
STOP_GRACE = 10.0
"""Seconds a component gets after SIGTERM before its process group is killed."""
POLL = 0.2
LOG_TAIL = 25
PR_SET_PDEATHSIG = 1


class PlaneError(RuntimeError):
    """The control plane could not start; the message says which part and carries its log tail."""


@dataclass(frozen=True)
class PlaneSettings:
    state_dir: Path
    host: str = "127.0.0.1"
    """Where kube-apiserver listens and what the kubeconfig names: loopback, or the lab bridge's address."""
    port: int = 0
    """kube-apiserver's port; 0: a free one."""
    crds: Sequence[Path] = ()
    """CRD manifests installed (created or replaced) and waited for until Established."""
    start_within: float = 180.0
    """Seconds from the first process to a usable API: kube-apiserver alone takes 10-30 s on 2 busy cores."""
    die_with_parent: bool = False
    """The components are killed when the starting process dies (tests, benchmarks: a killed pytest leaves
    no control plane behind); False for ``lcmctl kube up``, whose plane outlives the command."""

    @property
    def kubeconfig_path(self) -> Path:
        return self.state_dir / "admin.kubeconfig"

    @property
    def pids_path(self) -> Path:
        return self.state_dir / "pids.json"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"


@dataclass
class ControlPlane:
    settings: PlaneSettings
    binaries: Path
    """The folder holding ``etcd``, ``kube-apiserver`` and ``kube-controller-manager``."""
    url: str = ""
    pki: Pki | None = None
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def kubeconfig_path(self) -> Path:
        return self.settings.kubeconfig_path

    @property
    def ca_pem(self) -> bytes:
        if self.pki is None:
            raise RuntimeError("the control plane is not started")
        return self.pki.serving.ca_pem

    async def start(self) -> None:
        """All three components up and the CRDs Established; on any failure nothing is left running."""
        try:
            await self._start()
        except BaseException:
            self.stop()
            raise

    async def _start(self) -> None:
        s = self.settings
        s.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        s.log_dir.mkdir(exist_ok=True)
        self.pki = pki = ensure_pki(s.state_dir / "pki", [s.host])
        deadline = time.monotonic() + s.start_within
        client_port, peer_port = free_port("127.0.0.1"), free_port("127.0.0.1")
        port = s.port or free_port(s.host)
        self.url = f"https://{s.host}:{port}"
        self._spawn("etcd", [
            "--name=lcm", f"--data-dir={s.state_dir / 'etcd'}", "--log-level=warn",
            f"--listen-client-urls=http://127.0.0.1:{client_port}",
            f"--advertise-client-urls=http://127.0.0.1:{client_port}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=lcm=http://127.0.0.1:{peer_port}",
            # A throwaway store: without fsync a test session's thousands of writes do not wait on disk.
            "--unsafe-no-fsync",
        ])
        self._spawn("kube-apiserver", [
            f"--etcd-servers=http://127.0.0.1:{client_port}",
            f"--bind-address={s.host}", f"--advertise-address={s.host}", f"--secure-port={port}",
            # No Endpoints for the kubernetes Service: a loopback address is not a valid endpoint.
            "--endpoint-reconciler-type=none",
            f"--service-cluster-ip-range={SERVICE_RANGE}",
            f"--tls-cert-file={pki.serving.cert_path}", f"--tls-private-key-file={pki.serving.key_path}",
            f"--cert-dir={s.state_dir / 'apiserver'}",
            f"--token-auth-file={pki.token_file}", "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={pki.service_account_public}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            "--profiling=false",
        ])
        kcm_config = write_kubeconfig(s.state_dir / "controller-manager.kubeconfig", self.url,
                                      pki.controller_manager_token, ca_pem=pki.serving.ca_pem,
                                      user=CONTROLLER_MANAGER, cluster="lcm-kube")
        self._spawn("kube-controller-manager", [
            f"--kubeconfig={kcm_config}", f"--controllers={','.join(CONTROLLERS)}",
            f"--service-account-private-key-file={pki.service_account_key}",
            f"--root-ca-file={pki.ca_path}",
            "--use-service-account-credentials=true", "--leader-elect=false", "--secure-port=0",
        ])
        self._record_pids()
        write_kubeconfig(s.kubeconfig_path, self.url, pki.admin_token, ca_pem=pki.serving.ca_pem, user=ADMIN,
                         cluster="lcm-kube")
        async with await connect(kubeconfig=s.kubeconfig_path) as kube:
            kube.request_timeout = 10.0
            await self._until(deadline, "kube-apiserver", "answer /readyz", lambda: kube.health("/readyz"))
            await self._until(deadline, "kube-controller-manager", "create the default ServiceAccount",
                              lambda: kube.get(SERVICE_ACCOUNTS, "default", "default"))
            try:
                await install_crds(kube, s.crds, lambda what, attempt: self._until(
                    deadline, "kube-apiserver", what, attempt))
            except KubeError as exc:
                raise PlaneError(str(exc)) from exc

    async def _until(self, deadline: float, component: str, what: str,
                     attempt: Callable[[], Awaitable[object]]) -> None:
        """Retries ``attempt`` until it succeeds; a component exiting or the deadline passing raises."""
        last = ""
        while True:
            self._check_alive()
            try:
                await attempt()
                return
            except KubeError as exc:
                last = str(exc)
            if time.monotonic() > deadline:
                raise PlaneError(f"{component} did not {what} within {self.settings.start_within:g}s "
                                 f"(last answer: {last[-600:]})\n{self.log_tail(component)}")
            await asyncio.sleep(POLL)

    def _check_alive(self) -> None:
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                raise PlaneError(f"{name} exited with status {proc.returncode} before the control plane "
                                 f"was ready\n{self.log_tail(name)}")

    def log_tail(self, component: str) -> str:
        path = self.settings.log_dir / f"{component}.log"
        try:
            lines = path.read_text(errors="replace").splitlines()[-LOG_TAIL:]
        except FileNotFoundError:
            return f"(no log at {path})"
        return f"last lines of {path}:\n" + "\n".join(f"  {line}" for line in lines)

    def _spawn(self, name: str, args: list[str]) -> None:
        log: IO[bytes]
        with open(self.settings.log_dir / f"{name}.log", "ab") as log:
            self._procs[name] = subprocess.Popen(
                [str(self.binaries / name), *args], stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_term_with_parent if self.settings.die_with_parent else None)

    def pids(self) -> dict[str, int]:
        """Component → pid, of what this object started (for CPU and memory figures)."""
        return {name: proc.pid for name, proc in self._procs.items()}

    def _record_pids(self) -> None:
        self.settings.pids_path.write_text(json.dumps({"url": self.url, "pids": self.pids()}) + "\n")

    def stop(self) -> None:
        """Stops what this object started (controller manager, apiserver, then etcd); idempotent."""
        for name in reversed(list(self._procs)):
            _stop_group(self._procs[name].pid, self._procs[name].wait)
        self._procs.clear()
        self.settings.pids_path.unlink(missing_ok=True)


def stop_recorded(settings: PlaneSettings) -> list[str]:
    """Stops a plane started by another process, from its pid file; the names of what was running."""
    try:
        record = json.loads(settings.pids_path.read_text())
    except FileNotFoundError:
        return []
    stopped = []
    for name, pid in reversed(list(record["pids"].items())):
        if _is_component(pid, name):
            _stop_group(pid, functools.partial(_wait_gone, pid))
            stopped.append(name)
    settings.pids_path.unlink(missing_ok=True)
    return stopped


def recorded_url(settings: PlaneSettings) -> str:
    """The URL of a plane still running from ``settings.state_dir``, or "" when none is."""
    try:
        record = json.loads(settings.pids_path.read_text())
    except FileNotFoundError:
        return ""
    alive = all(_is_component(pid, name) for name, pid in record["pids"].items())
    return str(record["url"]) if alive else ""


def _term_with_parent() -> None:
    """In the child before exec: SIGKILL when the parent dies (Linux ``PR_SET_PDEATHSIG``): a throwaway plane
    needs no graceful stop, and kube-apiserver, told to stop once etcd is gone, would wait on it for good."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _is_component(pid: int, name: str) -> bool:
    """True when ``pid`` still runs that binary (a recycled pid is not ours to signal)."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]
    except OSError:
        return False
    return os.path.basename(argv0.decode(errors="replace")) == name


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists():
        if time.monotonic() > deadline:
            raise subprocess.TimeoutExpired(str(pid), timeout)
        time.sleep(0.05)


def _stop_group(pid: int, wait: Callable[[float], object]) -> None:
    """SIGTERM to the component's process group, a grace period, then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    try:
        wait(STOP_GRACE)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            wait(STOP_GRACE)
