"""The real control plane's binaries, built from the Go module in ``testbed/kube`` into a cache.

No binary is committed: ``testbed/kube/go.mod`` (k8s.io/kubernetes with its staging modules pinned by replace
directives, and etcd's server module) and its ``go.sum`` say exactly what to build. The binaries land in
``<cache>/<digest>/bin``, the digest being that of go.mod and go.sum, so a second run costs nothing and a
changed module never reuses an old build. The cache is ``/var/cache/lcm-kube`` for root, else
``$XDG_CACHE_HOME/lcm-kube`` (``~/.cache``); ``LCM_KUBE_CACHE`` overrides both.

    python -m testbed.kube.build          build when missing (``dev.sh`` does this), print the bin folder
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

MODULE = Path(__file__).resolve().parent
PACKAGES = {
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
    "etcd": "go.etcd.io/etcd/server/v3",
}
"""Binary name → Go package. ``go build -o`` would name etcd's ``server``: each is built to its own name."""
COLD_BUILD = "about 8 minutes on 2 cores"
"""What a first build costs (measured: docs/kube.md); a rebuild with Go's build cache warm takes a minute."""


class BuildError(RuntimeError):
    """The Go toolchain is missing or the build failed; the message carries the tail of its output."""


def cache_root() -> Path:
    override = os.environ.get("LCM_KUBE_CACHE")
    if override:
        return Path(override)
    if os.geteuid() == 0:
        return Path("/var/cache/lcm-kube")
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lcm-kube"


def kubernetes_version(module: Path = MODULE) -> str:
    """The k8s.io/kubernetes release go.mod requires: the version the binaries report (``/version``)."""
    found = re.search(r"^\s*k8s\.io/kubernetes (v\S+)", (module / "go.mod").read_text(), re.MULTILINE)
    if found is None:
        raise BuildError(f"{module / 'go.mod'} requires no k8s.io/kubernetes version")
    return found.group(1)


def _ldflags(module: Path) -> str:
    """Stripped binaries that know their release: without it kube-apiserver says v0.0.0-master, and
    kubectl warns of a version skew."""
    version = kubernetes_version(module)
    major, minor = version.lstrip("v").split(".")[:2]
    base = "k8s.io/component-base/version"
    return (f"-s -w -X {base}.gitVersion={version} -X {base}.gitMajor={major} -X {base}.gitMinor={minor} "
            f"-X {base}.gitTreeState=clean")


def module_digest(module: Path = MODULE) -> str:
    """What the binaries are built from: go.mod and go.sum, and how they are linked, hashed together."""
    digest = hashlib.sha256(_ldflags(module).encode() + b"\0")
    for name in ("go.mod", "go.sum"):
        digest.update(name.encode() + b"\0" + (module / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def bin_dir(module: Path = MODULE) -> Path:
    return cache_root() / module_digest(module) / "bin"


def built(module: Path = MODULE) -> Path | None:
    """The folder holding all three binaries, or None when they are not built yet."""
    folder = bin_dir(module)
    return folder if all((folder / name).is_file() for name in PACKAGES) else None


def ensure_built(announce: Callable[[str], None], module: Path = MODULE) -> Path:
    """The binaries' folder, building them first (saying so, and for how long it may take) when missing."""
    found = built(module)
    if found is not None:
        return found
    go = shutil.which("go")
    if go is None:
        raise BuildError("the real control plane is built from Go modules, and no `go` is on PATH "
                         "(install Go 1.26 or newer)")
    folder = bin_dir(module)
    announce(f"building kube-apiserver, kube-controller-manager and etcd from {module} into {folder} "
             f"(once per go.mod/go.sum; {COLD_BUILD} cold)")
    began = time.monotonic()
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Built next to the final folder and renamed into place: an interrupted build never looks finished.
    staging = Path(tempfile.mkdtemp(prefix="bin.", dir=folder.parent))
    staging.chmod(0o755)
    try:
        for name, package in PACKAGES.items():
            _go_build(go, module, package, staging / name)
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    announce(f"built the control plane in {time.monotonic() - began:.0f}s")
    return folder


def _go_build(go: str, module: Path, package: str, output: Path) -> None:
    # -mod=readonly: the committed go.sum is the whole truth; a build never rewrites the module files.
    argv = [go, "build", "-mod=readonly", "-trimpath", f"-ldflags={_ldflags(module)}", "-o", str(output),
            package]
    done = subprocess.run(argv, cwd=module, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          check=False)
    if done.returncode != 0:
        tail = "\n".join(done.stdout.splitlines()[-20:])
        raise BuildError(f"`go build {package}` failed (exit {done.returncode}):\n{tail}")


def main() -> int:
    try:
        folder = ensure_built(lambda line: print(f"lcm-kube: {line}", file=sys.stderr, flush=True))
    except BuildError as exc:
        print(f"lcm-kube: {exc}", file=sys.stderr)
        return 1
    print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
