"""The Kubernetes REST protocol over aiohttp, on top of the registry: routes, verbs, watch streams, tables.

Every request goes the API server's way: authenticate the bearer token, work out the request's verb and
resource (``RequestInfo``), apply injected faults, authorize with RBAC, then serve. Errors from any layer are
``ApiError`` and leave as a ``Status`` body with its HTTP code, which is what kubernetes_asyncio and kubectl
parse. Watches are chunked JSON lines; a 410 on watch is HTTP 200 followed by an ``ERROR`` event, as the API
server sends it.

Bodies are JSON (or YAML). Two encodings a real API server takes are refused with 415 and a hint instead:
server-side apply, and protobuf, which kubectl's typed commands (``kubectl create secret``) send;
``kubectl apply``, ``get``, ``label``, ``delete`` and every kubernetes_asyncio call use JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import yaml
from aiohttp import web

from testbed.sim.auth import ANONYMOUS, MASTERS, AccessControl, Authenticator
from testbed.sim.discovery import discovery_document, not_found_path
from testbed.sim.errors import ApiError, bad_request
from testbed.sim.faults import Faults
from testbed.sim.rbac import RequestAttributes, UserInfo
from testbed.sim.registry import Registry
from testbed.sim.resources import ResourceType
from testbed.sim.store import WatchEvent
from testbed.sim.tables import to_table
from testbed.sim.tokens import TokenIssuer

log = logging.getLogger(__name__)

PATCH_TYPES: Mapping[str, Literal["merge", "json", "strategic"]] = {
    "application/merge-patch+json": "merge",
    "application/json-patch+json": "json",
    "application/strategic-merge-patch+json": "strategic",
}
BODY_TYPES = ("application/json", "application/yaml")
PROTOBUF = "application/vnd.kubernetes.protobuf"
NAMESPACE_SUBRESOURCES = ("status", "finalize")
HEALTH_PATHS = ("/healthz", "/readyz", "/livez")
TOKEN_SUBRESOURCE = "token"  # noqa: S105 (a subresource's name)
MAX_BODY = 3 * 1024 * 1024
"""The API server's own request size limit (etcd's 1.5 MiB object limit, doubled for the JSON framing)."""


def method_not_allowed() -> ApiError:
    return ApiError(405, "MethodNotAllowed",
                    "the server does not allow this method on the requested resource")


@dataclass(frozen=True)
class Target:
    """Where a resource request points: ``namespace`` is None when the path names none."""

    group: str
    version: str
    namespace: str | None
    plural: str
    name: str
    subresource: str


def parse_path(path: str) -> Target | tuple[str, ...]:
    """A resource target, or the path's parts when it is a discovery path (``/api``, ``/apis/GROUP``...)."""
    parts = tuple(p for p in path.split("/") if p)
    if parts[:1] == ("api",) and len(parts) > 2:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ("apis",) and len(parts) > 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return parts
    namespace = None
    if rest[0] == "namespaces" and len(rest) > 2 and rest[2] not in NAMESPACE_SUBRESOURCES:
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        raise not_found_path()
    rest += ("",) * (3 - len(rest))
    return Target(group, version, namespace, rest[0], rest[1], rest[2])


@dataclass(frozen=True)
class Query:
    """The list, watch and write options of one request, checked the way the API server checks them."""

    label_selector: str = ""
    field_selector: str = ""
    limit: int = 0
    continue_token: str = ""
    resource_version: str = ""
    timeout_seconds: int | None = None
    watch: bool = False
    bookmarks: bool = False
    dry_run: bool = False
    include_object: str = "Metadata"

    @classmethod
    def parse(cls, q: Mapping[str, str]) -> Query:
        dry_run = q.get("dryRun", "")
        if dry_run not in ("", "All"):
            raise bad_request(f'dryRun: Unsupported value: "{dry_run}": supported values: "All"')
        include = q.get("includeObject", "Metadata") or "Metadata"
        if include not in ("None", "Metadata", "Object"):
            raise bad_request(f'includeObject: Unsupported value: "{include}"')
        timeout = q.get("timeoutSeconds", "")
        return cls(
            label_selector=q.get("labelSelector", ""), field_selector=q.get("fieldSelector", ""),
            limit=_non_negative(q, "limit"), continue_token=q.get("continue", ""),
            resource_version=q.get("resourceVersion", ""),
            timeout_seconds=(_non_negative(q, "timeoutSeconds") or None) if timeout else None,
            watch=_boolean(q, "watch"), bookmarks=_boolean(q, "allowWatchBookmarks"), dry_run=bool(dry_run),
            include_object=include,
        )

    def named(self) -> str:
        """The name a list or watch is limited to by ``metadata.name=X``: RBAC's resourceNames apply to it."""
        for term in self.field_selector.split(","):
            field, op, value = term.replace("==", "=").partition("=")
            if op and field.strip() == "metadata.name":
                return value.strip()
        return ""


def _non_negative(q: Mapping[str, str], key: str) -> int:
    raw = q.get(key, "") or "0"
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f'{key}: Invalid value: "{raw}": must be an integer') from None
    return max(value, 0)  # as kube-apiserver: a negative limit or timeout is none


def _boolean(q: Mapping[str, str], key: str) -> bool:
    raw = q.get(key, "").lower()
    if raw not in ("", "true", "1", "false", "0"):
        raise bad_request(f'{key}: Invalid value: "{raw}": must be true or false')
    return raw in ("true", "1")


def verb_of(method: str, target: Target, query: Query) -> str:
    """The Kubernetes verb for RBAC, from the method and whether the path names an object; a POST to a
    named object's ``token`` subresource is a ``create`` (TokenRequest)."""
    named = bool(target.name)
    if method == "POST" and target.subresource == TOKEN_SUBRESOURCE:
        return "create"
    verbs = {"GET": "get" if named else "list", "POST": "" if named else "create",
             "PUT": "update" if named else "", "PATCH": "patch" if named else "",
             "DELETE": "delete" if named else "deletecollection"}
    verb = verbs.get(method, "")
    if verb in ("get", "list") and query.watch:
        verb = "watch"
    if not verb or (target.subresource and verb not in ("get", "update", "patch")):
        raise method_not_allowed()
    return verb


class ApiServer:
    """One aiohttp application serving one registry; ``faults`` is its live fault-injection handle."""

    def __init__(
        self, registry: Registry, *, admin_token: str, issuer: TokenIssuer, bookmark_interval: float = 60.0,
    ) -> None:
        self.registry = registry
        self.bookmark_interval = bookmark_interval
        self.issuer = issuer
        self._authn = Authenticator(registry, admin_token, issuer)
        self._access = AccessControl(registry)
        self._watches: set[asyncio.Task[None]] = set()
        self.faults = Faults(drop=self.drop_watches, compact=registry.compact)
        self.app = web.Application(client_max_size=MAX_BODY)
        self.app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self.app.on_shutdown.append(self._on_shutdown)

    def drop_watches(self) -> int:
        """Ends every open watch stream cleanly, as an API server restart does; returns how many."""
        pumps = list(self._watches)
        for pump in pumps:
            pump.cancel()
        return len(pumps)

    async def _on_shutdown(self, _app: web.Application) -> None:
        self.drop_watches()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._serve(request)
        except ApiError as exc:
            return error_response(exc)
        except Exception as exc:
            log.exception("internal error serving %s %s", request.method, request.path)
            return error_response(ApiError(500, "InternalError", f"Internal error occurred: {exc}"))

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        if request.path in HEALTH_PATHS:
            return web.Response(text="ok")
        user = self._authn.authenticate(request.headers.get("Authorization"))
        if request.path.startswith("/sim/"):
            return await self._admin(request, user)
        target = parse_path(request.path)
        if not isinstance(target, Target):
            if request.method != "GET":
                raise method_not_allowed()
            if user == ANONYMOUS:  # system:discovery is bound to authenticated users only
                raise ApiError(403, "Forbidden", f'forbidden: User "{user.name}" cannot get path '
                                                 f'"{request.path}"')
            await self.faults.apply(verb="get", resource="", path=request.path, user=user.name)
            return json_response(discovery_document(target, self.registry.resource_types()))
        rt = self.registry.resolve(target.group, target.version, target.plural)
        if (target.namespace is not None and not rt.namespaced) or (
                target.name and rt.namespaced and target.namespace is None) or (
                target.subresource and not _has_subresource(rt, target.subresource)):
            raise not_found_path()
        query = Query.parse(request.query)
        verb = verb_of(request.method, target, query)
        if verb not in rt.verbs:
            raise method_not_allowed()
        resource = f"{target.plural}/{target.subresource}" if target.subresource else target.plural
        answer_delay = await self.faults.apply(verb=verb, resource=resource, path=request.path,
                                               user=user.name)
        self._access.check(RequestAttributes(
            user=user, verb=verb, api_group=target.group, resource=target.plural,
            subresource=target.subresource, namespace=target.namespace or "",
            name=target.name or (query.named() if verb in ("list", "watch") else "")))
        response = await self._resource(request, verb, rt, target, query)
        if answer_delay:
            await asyncio.sleep(answer_delay)  # served, watch events sent: only the answer is late
        return response

    async def _resource(
        self, request: web.Request, verb: str, rt: ResourceType, target: Target, query: Query,
    ) -> web.StreamResponse:
        reg, ns, name, sub = self.registry, target.namespace or "", target.name, target.subresource
        table = _wants_table(request)
        if verb == "watch":
            return await self._watch(request, rt, target, query, table)
        if verb == "get":
            obj = reg.get(rt, ns, name)
            return json_response(self._table(rt, [obj], query) if table else obj)
        if verb == "list":
            listing = reg.list(rt, target.namespace, label_selector=query.label_selector,
                               field_selector=query.field_selector, limit=query.limit,
                               continue_token=query.continue_token, resource_version=query.resource_version)
            return json_response(self._table(rt, listing["items"], query, listing) if table else listing)
        if verb == "create" and sub == TOKEN_SUBRESOURCE:
            body = await _object_body(request, optional=True)
            return json_response(self.issuer.request(ns, reg.get(rt, ns, name), body,
                                                     lambda ns, name: reg.stored("secrets", ns, name)), 201)
        if verb == "create":
            return json_response(reg.create(rt, ns, await _object_body(request), dry_run=query.dry_run), 201)
        if verb == "update":
            body = await _object_body(request)
            return json_response(reg.replace(rt, ns, name, body, subresource=sub, dry_run=query.dry_run))
        if verb == "patch":
            patch_type, patch = await _patch_body(request)
            return json_response(reg.patch(rt, ns, name, patch_type, patch, subresource=sub,
                                           dry_run=query.dry_run))
        options = await _object_body(request, optional=True)
        if verb == "delete":
            return json_response(reg.delete(rt, ns, name, preconditions=options.get("preconditions"),
                                            dry_run=query.dry_run))
        listing = reg.list(rt, target.namespace, label_selector=query.label_selector,
                           field_selector=query.field_selector)
        listing["items"] = [reg.delete(rt, o["metadata"].get("namespace", ""), o["metadata"]["name"],
                                       dry_run=query.dry_run) for o in listing["items"]]
        return json_response(listing)

    def _table(
        self, rt: ResourceType, objects: list[dict[str, Any]], query: Query,
        listing: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        rv = (listing or objects[0])["metadata"].get("resourceVersion", "")
        table = to_table(objects, rt.printer_columns, now=dt.datetime.now(dt.UTC), resource_version=rv,
                         include_object=query.include_object)
        if listing is not None and listing["metadata"].get("continue"):
            table["metadata"]["continue"] = listing["metadata"]["continue"]
        return table

    async def _watch(
        self, request: web.Request, rt: ResourceType, target: Target, query: Query, table: bool,
    ) -> web.StreamResponse:
        """Streams events until ``timeoutSeconds``, a fault, server shutdown, or the client leaving."""
        field_selector = query.field_selector
        if target.name:
            field_selector = ",".join(filter(None, (f"metadata.name={target.name}", field_selector)))
        events = self.registry.watch(
            rt, target.namespace, resource_version=query.resource_version,
            label_selector=query.label_selector, field_selector=field_selector,
            bookmark_interval=self.bookmark_interval if query.bookmarks else None)
        encode = self._table_encoder(rt, query) if table else _encoded
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        pump = asyncio.create_task(_pump(events, response, encode))
        self._watches.add(pump)
        try:
            await asyncio.wait({pump}, timeout=query.timeout_seconds)
        finally:
            self._watches.discard(pump)
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response

    def _table_encoder(self, rt: ResourceType, query: Query) -> Callable[[WatchEvent], bytes]:
        def encode(event: WatchEvent) -> bytes:
            if event.type == "BOOKMARK":
                return _encoded(event)
            rows = self._table(rt, [event.object], query)
            return json.dumps({"type": event.type, "object": rows}).encode() + b"\n"
        return encode

    async def _admin(self, request: web.Request, user: UserInfo) -> web.StreamResponse:
        """``/sim/v1/faults``: GET lists the rules, POST runs one command; admins (system:masters) only."""
        if MASTERS not in user.groups:
            raise ApiError(403, "Forbidden", f'forbidden: User "{user.name}" cannot {request.method.lower()} '
                                             f'path "{request.path}"')
        if request.path != "/sim/v1/faults":
            raise not_found_path()
        if request.method == "GET":
            return json_response(self.faults.command({"action": "list"}))
        if request.method != "POST":
            raise method_not_allowed()
        return json_response(self.faults.command(await _object_body(request)))


async def _pump(
    events: AsyncGenerator[WatchEvent, None], response: web.StreamResponse,
    encode: Callable[[WatchEvent], bytes],
) -> None:
    """Copies events to the response; a 410 (any ``ApiError``) becomes an ``ERROR`` event, as on a real
    server. Anything else ends the stream (the client resumes from its last version) and is logged."""
    try:
        async with contextlib.aclosing(events):
            async for event in events:
                await response.write(encode(event))
    except ApiError as exc:
        with contextlib.suppress(ConnectionError):
            await response.write(json.dumps({"type": "ERROR", "object": exc.to_status()}).encode() + b"\n")
    except ConnectionError:
        return
    except Exception:
        log.exception("watch stream failed; ending it")


def _encoded(event: WatchEvent) -> bytes:
    return event.encoded + b"\n"


def _wants_table(request: web.Request) -> bool:
    return any("as=Table" in part for part in request.headers.get("Accept", "").split(","))


def _has_subresource(rt: ResourceType, subresource: str) -> bool:
    """``status`` where the type has one; ``token`` of ServiceAccounts (TokenRequest)."""
    if subresource == TOKEN_SUBRESOURCE:
        return rt.key == "serviceaccounts"
    return subresource == "status" and rt.status_subresource


def json_response(body: Mapping[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(body, separators=(",", ":")).encode(), status=status,
                        content_type="application/json")


def error_response(exc: ApiError) -> web.Response:
    response = json_response(exc.to_status(), exc.code)
    if exc.retry_after_seconds is not None:
        response.headers["Retry-After"] = str(exc.retry_after_seconds)
    return response


async def _read_json(request: web.Request, accepted: tuple[str, ...]) -> Any:
    if request.content_type == PROTOBUF:
        raise ApiError(415, "UnsupportedMediaType",
                       "the API simulator does not decode protobuf request bodies (kubectl's typed commands "
                       "such as 'kubectl create secret' send them); send JSON, e.g. 'kubectl create ... "
                       "--dry-run=client -o yaml | kubectl apply -f -'")
    if request.content_type not in accepted:
        raise ApiError(415, "UnsupportedMediaType",
                       f'the body of the request was in an unknown format - accepted media types include: '
                       f'{", ".join(accepted)}')
    raw = await request.read()
    try:
        if request.content_type == "application/yaml":
            return yaml.safe_load(raw)
        return json.loads(raw or b"null")
    except (ValueError, yaml.YAMLError) as exc:
        raise bad_request(f"the body of the request could not be decoded: {exc}") from None


async def _object_body(request: web.Request, *, optional: bool = False) -> dict[str, Any]:
    """The body's object; ``optional`` for a delete, whose ``DeleteOptions`` clients often leave out."""
    body = await _read_json(request, BODY_TYPES) if request.can_read_body or not optional else None
    if optional and body is None:
        return {}
    if not isinstance(body, dict):
        raise bad_request("the body of the request must be a JSON object")
    return body


async def _patch_body(request: web.Request) -> tuple[Literal["merge", "json", "strategic"], Any]:
    if request.content_type == "application/apply-patch+yaml":
        raise ApiError(415, "UnsupportedMediaType",
                       "server-side apply (application/apply-patch+yaml) is not supported by the simulator: "
                       "use client-side kubectl apply, a merge patch or a JSON patch")
    body = await _read_json(request, tuple(PATCH_TYPES))
    patch_type = PATCH_TYPES[request.content_type]
    if patch_type == "json" and not isinstance(body, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    if patch_type != "json" and not isinstance(body, dict):
        raise bad_request(f"a {patch_type} patch must be a JSON object")
    return patch_type, body
