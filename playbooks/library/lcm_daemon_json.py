#!/usr/bin/python
"""Set the ``daemon.json`` keys a release owns, from item params (strings), and say what applying them takes.

Only the keys of the item's ``group`` are touched (see GROUPS, LEFT_ALONE); every other key of the file
(the node's own: hosts, data-root on a lab node, the operator's tuning) is kept. Params are checked before anything is written, so an
invalid one fails with a message naming it and the file unchanged; dockerd 20.10 itself would accept an
unknown log driver and only fail containers later. ``apply`` is ``none``, ``reload`` (SIGHUP: every changed
key is one dockerd re-reads live) or ``restart``. The file is replaced atomically; ``backup`` holds the
previous content, for ``restore`` when dockerd refuses the new file.
"""

from __future__ import annotations

import json
import os
import re
import tempfile

from ansible.module_utils.basic import AnsibleModule

RELOADABLE = {"labels", "registry-mirrors", "insecure-registries", "live-restore", "debug",
              "max-concurrent-downloads"}
"""Keys dockerd applies on SIGHUP (docs: "Configuration reload behavior"); any other change needs a restart."""
LOG_DRIVERS = {"json-file", "local", "journald", "syslog", "gelf", "fluentd", "awslogs", "splunk", "gcplogs",
               "logentries", "etwlogs", "none"}
_SIZE = re.compile(r"[0-9]+[kmg]?", re.IGNORECASE)
_LABEL_KEY = re.compile(r"[a-z0-9]([a-z0-9._-]*[a-z0-9])?")
_REGISTRY = re.compile(r"[A-Za-z0-9.-]+(:[0-9]+)?(/[0-9]{1,2})?")


class Invalid(ValueError):
    pass


def _json_object(name, text):
    try:
        value = json.loads(text or "{}")
    except ValueError as exc:
        raise Invalid(f"{name} is not JSON: {exc}") from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise Invalid(f'{name} must be a JSON object of strings, e.g. {{"zone": "a"}}; got {text!r}')
    return value


def _csv(text):
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def log_driver(text):
    if text not in LOG_DRIVERS and "/" not in text:  # a plugin is named like an image, "vendor/plugin"
        raise Invalid(f"logDriver {text!r} is not a Docker log driver ({', '.join(sorted(LOG_DRIVERS))})")
    return text


def log_opts(text):
    opts = _json_object("logOpts", text)
    if "max-size" in opts and not _SIZE.fullmatch(opts["max-size"]):
        raise Invalid(f"logOpts max-size {opts['max-size']!r} is not a size like 10m")
    if "max-file" in opts and not opts["max-file"].isdigit():
        raise Invalid(f"logOpts max-file {opts['max-file']!r} is not a number")
    return opts or None


def data_root(text):
    if not os.path.isabs(text):
        raise Invalid(f"dataRoot {text!r} is not an absolute path")
    return text


def registry_mirrors(text):
    mirrors = _csv(text)
    for url in mirrors:
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
            raise Invalid(f"registryMirrors entry {url!r} is not an http(s) URL")
    return mirrors or None


def insecure_registries(text):
    registries = _csv(text)
    for entry in registries:
        if not _REGISTRY.fullmatch(entry):
            raise Invalid(f"insecureRegistries entry {entry!r} is not a host[:port] or CIDR")
    return registries or None


def live_restore(text):
    if text not in ("true", "false"):
        raise Invalid(f'liveRestore must be "true" or "false", got {text!r}')
    return text == "true"


def labels(text):
    values = _json_object("labels", text)
    for key in values:
        if not _LABEL_KEY.fullmatch(key):
            raise Invalid(f"label key {key!r} must be lower-case letters, digits, '.', '-' or '_'")
    return [f"{k}={v}" for k, v in sorted(values.items())] or None


# option -> (daemon.json key, parser); a parser returning None removes the key (empty means docker's default)
OPTIONS = {
    "log_driver": ("log-driver", log_driver),
    "log_opts": ("log-opts", log_opts),
    "data_root": ("data-root", data_root),
    "registry_mirrors": ("registry-mirrors", registry_mirrors),
    "insecure_registries": ("insecure-registries", insecure_registries),
    "live_restore": ("live-restore", live_restore),
    "labels": ("labels", labels),
}
GROUPS = {
    "engine": ("log_driver", "log_opts", "data_root", "registry_mirrors", "insecure_registries", "live_restore"),
    "labels": ("labels",),
}
"""Which item owns which keys: docker-engine and daemon-config the engine settings, node-labels the labels."""
LEFT_ALONE = {"log_driver", "data_root", "live_restore"}
"""Owned keys a missing param leaves as they are (a node-local value, e.g. a lab node's data-root); a
missing list or map param (mirrors, log options, labels) removes the key: the release no longer wants it."""


def desired(params, current):
    """The new file content: ``current`` with the group's options set (or removed)."""
    config = dict(current)
    for option in GROUPS[params["group"]]:
        key, parse = OPTIONS[option]
        text = params.get(option)
        if text is None and option in LEFT_ALONE:
            continue
        text = text or ""
        value = parse(text.strip()) if text.strip() else None
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    return config


def _write(path, text):
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".daemon.json.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def main():
    spec = {option: {"type": "str"} for option in OPTIONS}
    spec.update(path={"type": "path", "required": True}, restore={"type": "str"},
                group={"type": "str", "default": "engine", "choices": sorted(GROUPS)})
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    path = module.params["path"]
    before_text = open(path).read() if os.path.exists(path) else ""
    if module.params["restore"] is not None:
        changed = before_text != module.params["restore"]
        if changed and not module.check_mode:
            _write(path, module.params["restore"])
        module.exit_json(changed=changed)
    try:
        current = json.loads(before_text or "{}")
    except ValueError as exc:
        module.fail_json(msg=f"{path} is not valid JSON ({exc}); fix or remove it first")
    try:
        config = desired(module.params, current)
    except Invalid as exc:
        module.fail_json(msg=f"invalid daemon setting: {exc}; {path} was not changed")
    changed_keys = sorted(k for k in set(current) | set(config) if current.get(k) != config.get(k))
    if not changed_keys:
        module.exit_json(changed=False, apply="none", changed_keys=[], backup=before_text)
    apply = "reload" if set(changed_keys) <= RELOADABLE else "restart"
    if not module.check_mode:
        _write(path, json.dumps(config, indent=2, sort_keys=True) + "\n")
    module.exit_json(changed=True, apply=apply, changed_keys=changed_keys, backup=before_text,
                     diff={"before": before_text, "after": json.dumps(config, indent=2, sort_keys=True) + "\n"})


if __name__ == "__main__":
    main()
