"""The project's CRD manifests, found both in a source checkout and in an installed wheel.

The manifests live in ``deploy/crds`` so that ``kubectl apply -f deploy/crds/`` installs them;
``agent/api/crds`` is a symlink to that folder, so the wheel carries the same files as package data (an
editable install sees the checkout's), and the API simulator and the tests read exactly what an operator
applies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

_PACKAGED = Path(__file__).with_name("crds")
_CHECKOUT = Path(__file__).resolve().parents[2] / "deploy" / "crds"


def crds_dir() -> Path:
    """The directory holding the manifests: the wheel's package data if present, else the checkout's."""
    for candidate in (_PACKAGED, _CHECKOUT):
        if candidate.is_dir() and any(candidate.glob("*.yaml")):
            return candidate
    raise FileNotFoundError(f"no CRD manifests in {_PACKAGED} or {_CHECKOUT}")


def crd_paths() -> list[Path]:
    """Every CRD manifest, sorted by file name so that loading order is stable."""
    return sorted(crds_dir().glob("*.yaml"))


def load_crds() -> list[dict[str, Any]]:
    """The parsed CustomResourceDefinition objects, one per manifest."""
    crds = []
    for path in crd_paths():
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
            raise ValueError(f"{path} is not a CustomResourceDefinition manifest")
        crds.append(crd)
    return crds
