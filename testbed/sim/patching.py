"""PATCH bodies applied to an object: JSON merge patch (RFC 7386) and JSON patch (RFC 6902).

Errors are sorted as the API server sorts them: a body that is not a patch at all is 400; a well-formed JSON
patch that does not apply (a failed ``test``, a missing path) is 422 "the server rejected our request",
with the patch library's reason as the cause.

Strategic merge patch needs the Go types' merge keys, which custom resources do not have: the API server
answers 415 for them. For built-in types the simulator applies it as a merge patch, which differs only for
lists with merge keys (a strategic patch merges such lists by key; here they are replaced); the project's
own clients never send one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import jsonpatch
import jsonpointer

from testbed.sim.errors import ApiError, Cause, bad_request
from testbed.sim.metadata import private

PatchType = Literal["merge", "json", "strategic"]
_CUSTOM_PATCH_TYPES = ("application/json-patch+json, application/merge-patch+json, "
                       "application/apply-patch+yaml")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, Mapping):
        return patch
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def check_patch_type(patch_type: PatchType, *, builtin: bool) -> None:
    """415 for a strategic merge patch of a custom resource, before anything else is looked at."""
    if patch_type == "strategic" and not builtin:
        raise ApiError(415, "UnsupportedMediaType",
                       f"the body of the request was in an unknown format - accepted media types include: "
                       f"{_CUSTOM_PATCH_TYPES}")


def apply_patch(current: Mapping[str, Any], patch_type: PatchType, patch: Any) -> dict[str, Any]:
    """A new object: ``current`` with ``patch`` applied. ``current`` is left alone; a merge patch shares its
    untouched subtrees with the result (neither is ever modified in place, see ``store``)."""
    if patch_type in ("merge", "strategic"):
        if not isinstance(patch, Mapping):
            raise bad_request("Invalid JSON Patch")
        result: dict[str, Any] = merge_patch(current, private(patch))
        return result
    if not isinstance(patch, list) or not all(isinstance(op, Mapping) for op in patch):
        raise bad_request("json: cannot unmarshal into Go value of type jsonpatch.Patch")
    try:
        patched = jsonpatch.JsonPatch(patch).apply(private(current), in_place=True)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        raise ApiError(422, "Invalid", "the server rejected our request due to an error in our request",
                       causes=(Cause("", "UnexpectedServerResponse", str(exc)),)) from exc
    if not isinstance(patched, dict):
        raise bad_request("the patched object must be a JSON object")
    return patched
