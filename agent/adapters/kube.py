"""The one module that talks Kubernetes HTTP: get, list, watch, create, patch, delete.

Everything else in the project calls this. Requests go straight through one aiohttp session: objects travel
as plain JSON dicts (the API types parse them), merge patches carry their own content type, and errors
surface as ``KubeError`` with the HTTP status and the server's ``Status`` reason. kubernetes_asyncio is used
only to read a kubeconfig (its contexts, embedded certificates and exec plugins), and imported only then:
its client package loads every generated API and model, 37 MiB and a second of start-up, for requests this
module makes in a few lines; an agent configured with a server and a token file never imports it.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import aiohttp

from agent.adapters.credentials import Credentials

if TYPE_CHECKING:
    from kubernetes_asyncio.client import Configuration

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
READ_BUFFER = 2**21
"""Bytes one watch line may hold: an object may be as large as etcd's request limit, 1.5 MiB."""

Object = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the API: ``group`` is "" for the core group (Secrets, Namespaces)."""

    group: str
    version: str
    plural: str
    namespaced: bool = True


SECRETS = Resource("", "v1", "secrets")
SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts")


async def _no_authorization() -> str:
    return ""


def bearer(token: Callable[[], str]) -> Callable[[], Awaitable[str]]:
    """An ``Authorization`` provider sending whatever ``token`` returns at the time of each request."""
    async def header() -> str:
        return f"Bearer {token()}"
    return header


@dataclass(frozen=True)
class Endpoint:
    """Where an API server is and how to reach it: what a kubeconfig's context or the agent's config says."""

    server: str
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True
    tls_server_name: str | None = None
    authorization: Callable[[], Awaitable[str]] = field(default=_no_authorization, repr=False)
    """The ``Authorization`` header of the next request ("" for none): asked before every request, so a
    renewed token or an exec plugin's fresh one is used from then on."""
    connections: int = 100
    """Requests in flight at once, watches included."""

    @classmethod
    def with_token(cls, server: str, token: str, *, ca_file: str | None = None, verify: bool = True,
                   connections: int = 100) -> Endpoint:
        """A fixed bearer token (a test's, or a user's from a file read once)."""
        return cls(server.rstrip("/"), ca_file=ca_file, verify=verify, authorization=bearer(lambda: token),
                   connections=connections)

    def proxy(self) -> str | None:
        """The proxy for this server from ``HTTPS_PROXY`` and ``NO_PROXY`` (as kubectl reads them), looked up
        once: aiohttp's ``trust_env`` would look up proxies and netrc in a thread on every request, a tenth
        of a fleet's agents' CPU."""
        url = urllib.parse.urlsplit(self.server)
        if url.hostname is None or urllib.request.proxy_bypass(url.hostname):
            return None
        return urllib.request.getproxies().get(url.scheme)

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, keyfile=self.key_file)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


async def from_kubeconfig(kubeconfig: Path, *, connections: int = 100) -> Endpoint:
    """The current context of a kubeconfig, read by kubernetes_asyncio's loader (the one import of it)."""
    from kubernetes_asyncio import client, config

    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    return endpoint_of(cfg, connections=connections)


def endpoint_of(cfg: Configuration, *, connections: int = 100) -> Endpoint:
    """The endpoint a kubernetes_asyncio ``Configuration`` describes, its token refresh hooks kept."""
    async def authorization() -> str:
        header: str | None = await cfg.get_api_key_with_prefix("BearerToken")
        return header or ""
    return Endpoint(str(cfg.host).rstrip("/"), ca_file=cfg.ssl_ca_cert, cert_file=cfg.cert_file,
                    key_file=cfg.key_file, verify=cfg.verify_ssl, tls_server_name=cfg.tls_server_name,
                    authorization=authorization, connections=connections)


class KubeError(Exception):
    """An API call failed: ``status`` is the HTTP code (0 when the server was not reached)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}" if status else message)
        self.status = status
        self.reason = reason
        self.message = message

    @classmethod
    def from_body(cls, status: int, reason: str, body: bytes | str | None) -> KubeError:
        """Reads the ``Status`` body when there is one, so callers see the server's own reason."""
        message = ""
        if body:
            try:
                parsed = json.loads(body)
                reason, message = parsed.get("reason", reason), parsed.get("message", "")
            except (ValueError, AttributeError):
                message = (body.decode(errors="replace") if isinstance(body, bytes) else body)[:500]
        return cls(status, reason, message or reason)


async def connect(
    *, kubeconfig: Path | None = None, server: str = "", ca_file: Path | None = None,
    token_file: Path | None = None,
) -> Kube:
    """A client from a kubeconfig, or from a server URL, CA file and token file (the agent's config); the
    latter's ``credentials`` follow the file and the agent's renewals."""
    if kubeconfig is not None:
        return Kube(await from_kubeconfig(kubeconfig))
    if not server or token_file is None:
        raise ValueError("either a kubeconfig or a server URL and a token file are needed")
    # The token is read here and kept only in the client's memory: never logged, never on argv.
    credentials = await asyncio.to_thread(Credentials.load, token_file)
    endpoint = Endpoint(server.rstrip("/"), ca_file=str(ca_file) if ca_file is not None else None,
                        authorization=bearer(lambda: credentials.token))
    return Kube(endpoint, credentials=credentials)


class Kube:
    """Dict-in, dict-out calls over one connection pool, for any kind, core or custom."""

    def __init__(
        self, endpoint: Endpoint, *, request_timeout: float = 30.0, credentials: Credentials | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.request_timeout = request_timeout
        """Seconds a non-watch request may wait for the server to connect or answer."""
        self.credentials = credentials
        """The token the client sends, when it came from a token file (None with a kubeconfig); told of
        every 401 and every success."""
        self.answered_at = 0.0
        """Unix time of the server's last answer (a 2xx response or a watch event); 0 before the first."""
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Kube:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def get(self, res: Resource, namespace: str, name: str) -> Object:
        return await self._call("GET", _path(res, namespace, name))

    async def list_objects(
        self, res: Resource, namespace: str = "", *, field_selector: str = "", label_selector: str = "",
    ) -> Object:
        """The whole ``<Kind>List`` (its ``metadata.resourceVersion`` is where a watch starts)."""
        query = _selectors(field_selector, label_selector)
        return await self._call("GET", _path(res, namespace), query=query)

    async def watch(
        self, res: Resource, namespace: str, *, resource_version: str, field_selector: str = "",
        label_selector: str = "", timeout_seconds: int, inactivity_timeout: float,
        bookmarks: bool = True,
    ) -> AsyncGenerator[Object, None]:
        """Raw watch events (``type``, ``object``) from ``resource_version`` until the server ends the stream.

        An ``ERROR`` event (410 Gone for a version too old) raises ``KubeError`` with its code: the caller
        must relist. A stream that sends nothing (not even a bookmark) for ``inactivity_timeout`` seconds
        raises ``KubeError(0, "Timeout")``.
        """
        query = [*_selectors(field_selector, label_selector), ("watch", "true"),
                 ("resourceVersion", resource_version), ("timeoutSeconds", str(timeout_seconds)),
                 ("allowWatchBookmarks", "true" if bookmarks else "false")]
        try:
            async with await self._raw("GET", _path(res, namespace), query=query,
                                       read_timeout=inactivity_timeout) as resp:
                if not 200 <= resp.status <= 299:
                    raise KubeError.from_body(resp.status, resp.reason or "", await resp.read())
                while line := await resp.content.readline():
                    event = _watch_event(line)
                    self.answered_at = time.time()
                    yield event
        except TimeoutError as exc:
            raise KubeError(0, "Timeout", f"no event for {inactivity_timeout:g}s") from exc
        except (OSError, aiohttp.ClientError) as exc:
            raise KubeError(0, "Unreachable", str(exc) or type(exc).__name__) from exc

    async def create(self, res: Resource, namespace: str, body: Mapping[str, Any]) -> Object:
        return await self._call("POST", _path(res, namespace), body=body)

    async def replace(self, res: Resource, namespace: str, name: str, body: Mapping[str, Any]) -> Object:
        return await self._call("PUT", _path(res, namespace, name), body=body)

    async def patch(
        self, res: Resource, namespace: str, name: str, patch: Any, *,
        subresource: Literal["", "status"] = "", kind: Literal["merge", "json"] = "merge",
    ) -> Object:
        """A merge patch (a dict) or a JSON patch (a list of operations), optionally on ``/status``."""
        ctype = MERGE_PATCH if kind == "merge" else JSON_PATCH
        path = _path(res, namespace, name, subresource)
        return await self._call("PATCH", path, body=patch, content_type=ctype)

    async def delete(self, res: Resource, namespace: str, name: str) -> Object:
        return await self._call("DELETE", _path(res, namespace, name))

    async def request_token(
        self, namespace: str, account: str, *, seconds: int, bound_secret: str = "",
    ) -> Object:
        """A TokenRequest for ServiceAccount ``account``, valid ``seconds`` (the server may shorten it: the
        answer's ``status.expirationTimestamp`` is the truth), bound to Secret ``bound_secret`` if given."""
        spec: dict[str, Any] = {"expirationSeconds": seconds}
        if bound_secret:
            spec["boundObjectRef"] = {"apiVersion": "v1", "kind": "Secret", "name": bound_secret}
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        return await self._call("POST", _path(SERVICE_ACCOUNTS, namespace, account, "token"), body=body)

    async def health(self, endpoint: str = "/readyz") -> str:
        """The text of a health endpoint (``/readyz``, ``/livez``); a failing check raises ``KubeError``."""
        try:
            async with await self._raw("GET", endpoint, query=[("verbose", "true")],
                                       read_timeout=self.request_timeout) as resp:
                text = (await resp.read()).decode(errors="replace")
        except (OSError, aiohttp.ClientError, TimeoutError) as exc:
            raise KubeError(0, "Unreachable", str(exc) or type(exc).__name__) from exc
        if resp.status != 200:
            raise KubeError(resp.status, resp.reason or "", text[-2000:])
        return text

    def _pool(self) -> aiohttp.ClientSession:
        """The session, made on first use (inside the loop that will run it)."""
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.endpoint.connections, ssl=self.endpoint.ssl_context())
            self._session = aiohttp.ClientSession(connector=connector, proxy=self.endpoint.proxy(),
                                                  read_bufsize=READ_BUFFER)
        return self._session

    async def _raw(
        self, method: str, path: str, *, query: list[tuple[str, str]] | None = None, body: Any = None,
        content_type: str = "application/json", read_timeout: float | None = None,
    ) -> aiohttp.ClientResponse:
        """One request with the endpoint's auth and TLS, through the pool; the response is not read yet."""
        sent = self.credentials.token if self.credentials is not None else ""
        headers = {"Accept": "application/json", "Content-Type": content_type}
        if authorization := await self.endpoint.authorization():
            headers["Authorization"] = authorization
        resp = await self._pool().request(
            method, self.endpoint.server + path, params=query or [], headers=headers,
            data=json.dumps(body) if body is not None else None,
            server_hostname=self.endpoint.tls_server_name,
            timeout=aiohttp.ClientTimeout(sock_connect=read_timeout, sock_read=read_timeout),
        )
        if self.credentials is not None:
            if resp.status == 401:
                self.credentials.rejected(sent)
            elif 200 <= resp.status <= 299:
                self.credentials.accepted()
        if 200 <= resp.status <= 299:
            self.answered_at = time.time()
        return resp

    async def _call(
        self, method: str, path: str, *, query: list[tuple[str, str]] | None = None, body: Any = None,
        content_type: str = "application/json",
    ) -> Object:
        """A request whose JSON answer is returned as a dict, or raised as ``KubeError`` (with the server's
        ``Status`` reason) when not 2xx."""
        try:
            async with await self._raw(method, path, query=query, body=body, content_type=content_type,
                                       read_timeout=self.request_timeout) as resp:
                data = await resp.read()
        except (OSError, aiohttp.ClientError, TimeoutError) as exc:
            raise KubeError(0, "Unreachable", str(exc) or type(exc).__name__) from exc
        if not 200 <= resp.status <= 299:
            raise KubeError.from_body(resp.status, resp.reason or "", data)
        obj: Object = json.loads(data)
        return obj


def _watch_event(line: bytes) -> Object:
    """One line of a watch stream as ``{"type", "object"}``; an ``ERROR`` event, or a bare ``Status`` the
    server sent in place of events, raises ``KubeError`` with its code and reason."""
    try:
        event = json.loads(line)
    except ValueError as exc:
        raise KubeError(0, "Malformed", f"a watch line is not JSON: {line[:200]!r}") from exc
    if not isinstance(event, dict):
        raise KubeError(0, "Malformed", f"a watch line is not an event: {line[:200]!r}")
    if "type" not in event or "object" not in event:
        if "code" in event:
            raise _status_error(event)
        raise KubeError(0, "Malformed", f"a watch line has no type or object: {line[:200]!r}")
    if event["type"] == "ERROR":
        raise _status_error(event["object"])
    return {"type": event["type"], "object": event["object"]}


def _status_error(status: Mapping[str, Any]) -> KubeError:
    code, reason, message = status.get("code", 0), status.get("reason", ""), status.get("message", "")
    return KubeError(int(code), str(reason), str(message))


def _path(res: Resource, namespace: str, name: str = "", subresource: str = "") -> str:
    """``/api/v1/namespaces/NS/secrets/NAME`` or ``/apis/GROUP/VERSION/...``; empty parts are left out."""
    parts = ["/api/v1" if not res.group else f"/apis/{res.group}/{res.version}"]
    if res.namespaced and namespace:
        parts.append(f"namespaces/{namespace}")
    parts.append(res.plural)
    if name:
        parts.append(name)
        if subresource:
            parts.append(subresource)
    return "/".join(parts)


def _selectors(field_selector: str, label_selector: str) -> list[tuple[str, str]]:
    query = []
    if field_selector:
        query.append(("fieldSelector", field_selector))
    if label_selector:
        query.append(("labelSelector", label_selector))
    return query
