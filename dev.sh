#!/usr/bin/env bash
# One entry point for newcomers and CI: installs what is missing, then runs the demo or the tests.
#   ./dev.sh demo     set up, start the regional API simulator with the sample objects, show them (Ctrl-C stops)
#   ./dev.sh test     set up, then static checks (ruff, mypy --strict, import-linter), the whole test suite
#                     under coverage (LCM_TEST_COVERAGE=0: without), and the coverage per package
#   ./dev.sh test --fast   the same checks, then the tests not marked slow (the inner loop; no coverage)
#   ./dev.sh setup    only install (apt packages when root, the Python venv in .venv, the real control plane)
#   ./dev.sh lock     recompile requirements/node.lock and dev.lock after a dependency changed (then commit them)
#   ./dev.sh vagrant  setup, then what real VMs need (libvirt, QEMU, vagrant-libvirt, GRUB; libvirtd started),
#                     then the opt-in VM smoke test (minutes under emulation); the normal tests never need it
set -euo pipefail
cd "$(dirname "$0")"

# docker.io, iproute2, busybox-static: the test nodes (a dockerd per network namespace, an image with no registry);
# mosquitto: the MQTT broker; systemd-container, debootstrap, dpkg-dev: the nspawn machines and their local apt mirror;
# vagrant: `vagrant validate` of the Vagrantfile; prometheus (and its promtool): the alert rules and the e2e scrape.
APT_PACKAGES=(ca-certificates python3-venv docker.io iproute2 busybox-static mosquitto systemd-container debootstrap dpkg-dev vagrant
  prometheus)
VENV=${LCM_VENV:-.venv}

# step LABEL COMMAND...: one line per step ("ok" and its time); the command's output only when it fails (its
# last lines, and the file holding all of it), then dev.sh exits with the command's code.
step() {
  local label=$1 log start=$SECONDS code
  shift
  log=$(mktemp "${TMPDIR:-/tmp}/lcm-agent-setup.XXXXXX")
  printf 'lcm-agent: %s ... ' "$label"
  if "$@" >"$log" 2>&1; then
    echo "ok ($((SECONDS - start))s)"
    rm -f "$log"
    return 0
  else
    code=$?
  fi
  echo "failed (exit $code)"
  tail -n 40 "$log" | sed 's/^/  | /' >&2
  echo "lcm-agent: '$*' failed; its whole output: $log" >&2
  exit "$code"
}

need_root_for() {
  echo "lcm-agent: '$1' needs root to install system packages (${APT_PACKAGES[*]}); run as root or with sudo" >&2
  exit 1
}

install_apt() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  # kubectl: the tests drive the simulator with it; Debian ships it as kubernetes-client.
  command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || need_root_for "${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  step "apt-get update" apt-get update
  step "installing ${missing[*]}" apt-get install -y --no-install-recommends "${missing[@]}"
}

install_python() {
  local stamp="$VENV/.installed-$(cat pyproject.toml regional/pyproject.toml testbed/pyproject.toml \
    requirements/dev.lock | sha256sum | cut -c1-16)"
  [ -e "$stamp" ] && return 0
  [ -x "$VENV/bin/python" ] || step "creating the venv $VENV" python3 -m venv "$VENV"
  step "installing the locked pip in $VENV" "$VENV/bin/pip" install -c requirements/dev.lock pip
  # The three distributions of this checkout, editable: the node package (what machines install), the
  # regional side and the testbed; the test tools ride on the node package's `test` extra.
  step "installing lcm-agent, lcm-regional, lcm-testbed (editable) and the test tools into $VENV" \
    "$VENV/bin/pip" install -c requirements/dev.lock -e '.[test]' -e ./regional -e ./testbed
  rm -f "$VENV"/.installed-* && touch "$stamp"
}

# The tests' real API server (etcd, kube-apiserver, kube-controller-manager) is built from testbed/kube's Go
# module into a cache keyed by go.mod+go.sum (testbed/kube/build.py); it says so, and how long, when it builds.
build_kube() { "$VENV/bin/python" -m testbed.kube.build >/dev/null; }

setup() { install_apt; install_python; build_kube; }

# The locks: requirements/node.lock (the node's dependencies with their hashes: what every machine installs)
# and requirements/dev.lock (everything the checkout's three distributions and their tests use, at the
# node's versions). Run after changing a dependency; the tests check that the locks satisfy the pyprojects.
lock() {
  install_python
  local compile=("$VENV/bin/pip-compile" --quiet --no-header --no-emit-index-url --no-emit-find-links
                 --strip-extras --allow-unsafe)
  "${compile[@]}" --generate-hashes --upgrade --output-file requirements/node.lock pyproject.toml
  "${compile[@]}" --upgrade --output-file requirements/dev.lock requirements/dev.in
  # pip takes no editable requirement as a constraint: the checkout's own distributions leave the lock.
  awk '/^-e /{skip=1; next} skip && /^ /{next} {skip=0; print}' requirements/dev.lock > requirements/dev.lock.new
  mv requirements/dev.lock.new requirements/dev.lock
  echo "lcm-agent: requirements/node.lock and requirements/dev.lock are written; review and commit them"
}

# Opt-in: real Vagrant VMs (docs/machines.md). libvirt's and QEMU's packages, GRUB's BIOS images and the tools
# that build the box; libvirtd and virtlogd started when no service manager runs them (a container, CI).
VM_PACKAGES=(vagrant-libvirt libvirt-daemon-system libvirt-daemon-driver-qemu qemu-system-x86 qemu-utils grub-pc-bin
  grub2-common genisoimage fdisk dnsmasq-base)
install_vm() {
  APT_PACKAGES+=("${VM_PACKAGES[@]}")
  install_apt
  if ! virsh -c qemu:///system uri >/dev/null 2>&1; then
    pgrep -x virtlogd >/dev/null || step "starting virtlogd" virtlogd -d
    step "starting libvirtd" libvirtd -d
  fi
}

# pytest-xdist workers for the fast loop (LCM_TEST_WORKERS=0: none; the full suite runs in one process unless
# LCM_TEST_WORKERS is set: on 2 cores two workers each start a real control plane and rebuild the module
# swarms, and were not faster). loadgroup keeps each xdist_group on one worker: tests/conftest.py groups the
# nspawn machines (fixed names) and every module's or session's costly fixture.
FAST_WORKERS=${LCM_TEST_WORKERS:-2}
FULL_WORKERS=${LCM_TEST_WORKERS:-0}
# The full suite runs under coverage.py (branch, the agent's own processes too: about a tenth slower), with the
# per-package report at the end; LCM_TEST_COVERAGE=0 runs it without.
COVERAGE=${LCM_TEST_COVERAGE:-1}
COVERAGE_DIR=${LCM_COVERAGE_DIR:-.coverage-data}
# The full suite ends with its 40 costliest tests (setup, call and teardown apart): where CI's time goes, on
# record with every run, and the input of tests/slow_from_durations.py.
DURATIONS=(--durations=40)

run_tests() {
  local fast=0 code=0
  if [ "${1:-}" = "--fast" ]; then fast=1; shift; fi
  setup
  "$VENV/bin/ruff" check agent regional testbed tests bench
  "$VENV/bin/mypy"
  "$VENV/bin/lint-imports"
  local workers=$FULL_WORKERS parallel=()
  [ "$fast" = 1 ] && workers=$FAST_WORKERS
  [ "$workers" = 0 ] || parallel=(-n "$workers" --dist loadgroup)
  if [ "$fast" = 1 ]; then
    "$VENV/bin/python" -m pytest "${parallel[@]}" -m "not slow" "$@"
    return
  fi
  if [ "$COVERAGE" != 1 ]; then
    "$VENV/bin/python" -m pytest "${parallel[@]}" "${DURATIONS[@]}" "$@"
    return
  fi
  # Coverage's data files land in one folder (the agent's own processes write theirs there too: patch =
  # subprocess in pyproject.toml); the report follows the tests' outcome, which stays dev.sh's exit code.
  rm -rf "$COVERAGE_DIR" && mkdir -p "$COVERAGE_DIR"
  COVERAGE_FILE="$PWD/$COVERAGE_DIR/data" "$VENV/bin/python" -m coverage run -m pytest "${parallel[@]}" "${DURATIONS[@]}" "$@" \
    || code=$?
  COVERAGE_FILE="$PWD/$COVERAGE_DIR/data" "$VENV/bin/python" -m coverage combine -q "$COVERAGE_DIR" \
    && COVERAGE_FILE="$PWD/$COVERAGE_DIR/data" "$VENV/bin/python" -m coverage json -q -o "$COVERAGE_DIR/coverage.json" \
    && "$VENV/bin/python" tests/coverage_by_package.py "$COVERAGE_DIR/coverage.json" \
    || echo "lcm-agent: no coverage report (see above)" >&2
  return "$code"
}

case "${1:-}" in
  setup) setup ;;
  test) shift; run_tests "$@" ;;
  lock) lock ;;
  demo) shift; install_apt; install_python; exec "$VENV/bin/lcmctl" demo "$@" ;;
  vagrant) shift; setup; install_vm
    LCM_VAGRANT_SMOKE=1 exec "$VENV/bin/python" -m pytest -x -q -s tests/machines/test_vagrant_smoke.py "$@" ;;
  *) sed -n '2,9p' "$0" >&2; exit 2 ;;
esac
