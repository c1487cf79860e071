"""The control plane's credentials: its own serving CA, the service-account signing key, the token file.

Everything is made once per state directory, files 0600 in a 0700 folder. The admin and the controller
manager authenticate with bearer tokens from ``--token-auth-file`` (the admin in ``system:masters``, the
controller manager as ``system:kube-controller-manager``, which the bootstrap RBAC policy binds to its role);
the service-account key is an ECDSA P-256 key that signs (apiserver) and mints legacy token Secrets
(controller manager).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from testbed.tls import ServerCertificate, ensure_certificate, write_private

SERVICE_IP = "10.0.0.1"
"""The ``kubernetes`` Service's address in ``--service-cluster-ip-range``; in-cluster clients dial it."""
SERVICE_NAMES = ("kubernetes", "kubernetes.default", "kubernetes.default.svc", SERVICE_IP)
ADMIN = "lcm-admin"
CONTROLLER_MANAGER = "system:kube-controller-manager"


@dataclass(frozen=True)
class Pki:
    """The files the components are started with, and the tokens that go into kubeconfigs."""

    serving: ServerCertificate
    ca_path: Path
    service_account_key: Path
    service_account_public: Path
    token_file: Path
    admin_token: str
    controller_manager_token: str


def ensure_pki(directory: Path, hosts: Sequence[str]) -> Pki:
    """The credentials in ``directory``, made where missing; the serving certificate covers ``hosts``."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    serving = ensure_certificate(directory, (*hosts, *SERVICE_NAMES))
    key_path, public_path = directory / "service-account.key", directory / "service-account.pub"
    if not key_path.exists() or not public_path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        write_private(key_path, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        write_private(public_path, key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    token_file = directory / "tokens.csv"
    if not token_file.exists():
        rows = [f"{secrets.token_urlsafe(32)},{ADMIN},{ADMIN},system:masters",
                f"{secrets.token_urlsafe(32)},{CONTROLLER_MANAGER},{CONTROLLER_MANAGER}"]
        write_private(token_file, ("\n".join(rows) + "\n").encode())
    tokens = {row.split(",")[1]: row.split(",")[0] for row in token_file.read_text().splitlines() if row}
    return Pki(serving, directory / "ca.crt", key_path, public_path, token_file, tokens[ADMIN],
               tokens[CONTROLLER_MANAGER])
