"""The one module that talks Kubernetes HTTP: get, list, watch, create, patch, delete.

Everything else in the project calls this, never kubernetes_asyncio directly, so quirks of the client are
handled once: CustomObjectsApi picks ``application/json-patch+json`` for a dict body unless told otherwise,
so merge patches force their content type here; objects travel as plain JSON dicts (the API types parse
them), and errors surface as ``KubeError`` carrying the HTTP status and the server's ``Status`` reason.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiohttp
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from agent.adapters.credentials import Credentials

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"

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


class KubeError(Exception):
    """An API call failed: ``status`` is the HTTP code (0 when the server was not reached)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}" if status else message)
        self.status = status
        self.reason = reason
        self.message = message

    @classmethod
    def from_api(cls, exc: ApiException) -> KubeError:
        return cls.from_body(int(exc.status or 0), str(exc.reason or ""), getattr(exc, "body", None))

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
    cfg = client.Configuration()
    if kubeconfig is not None:
        await config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
        return Kube(client.ApiClient(cfg))
    if not server or token_file is None:
        raise ValueError("either a kubeconfig or a server URL and a token file are needed")
    cfg.host = server.rstrip("/")
    if ca_file is not None:
        cfg.ssl_ca_cert = str(ca_file)
    # The token is read here and kept only in the client's memory: never logged, never on argv.
    credentials = await asyncio.to_thread(Credentials.load, token_file)
    cfg.api_key = {"BearerToken": credentials.token}
    cfg.api_key_prefix = {"BearerToken": "Bearer"}
    cfg.refresh_api_key_hook = credentials.refresh
    return Kube(client.ApiClient(cfg), credentials=credentials)


class Kube:
    """Dict-in, dict-out calls over one ``ApiClient`` (one connection pool), for any kind, core or custom."""

    def __init__(
        self, api: client.ApiClient, *, request_timeout: float = 30.0, credentials: Credentials | None = None,
    ) -> None:
        self.api = api
        self.request_timeout = request_timeout
        """Seconds a non-watch request may wait for the server to connect or answer."""
        self.credentials = credentials
        """The token the client sends, when it came from a token file (None with a kubeconfig); told of
        every 401 and every success."""
        self.answered_at = 0.0
        """Unix time of the server's last answer (a 2xx response or a watch event); 0 before the first."""

    async def close(self) -> None:
        await self.api.close()

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

        ``timeout_seconds`` is always sent: without it kubernetes_asyncio silently retries a 410 once with
        the same stale version; with it a 410 reaches the caller, who must relist. A stream that sends
        nothing (not even a bookmark) for ``inactivity_timeout`` seconds raises ``KubeError(0, "Timeout")``.
        """
        path = _path(res, namespace)
        base_query = _selectors(field_selector, label_selector)

        async def list_fn(**kw: Any) -> Any:
            query = [*base_query, ("watch", "true"), ("resourceVersion", kw["resource_version"]),
                     ("timeoutSeconds", str(timeout_seconds)),
                     ("allowWatchBookmarks", "true" if bookmarks else "false")]
            return await self._raw("GET", path, query=query, read_timeout=inactivity_timeout)

        # No return type: events keep the dict json.loads made. return_type="object" would have
        # kubernetes_asyncio dump each object back to JSON and parse it again (list_fn has no docstring
        # naming a model, so nothing else is inferred); at fleet scale that cost a tenth of the
        # scheduler's CPU.
        # Watch builds a throwaway ApiClient (unused without a return type) from the process's default
        # configuration; with the stock default that loads the system's whole CA store, ~80 ms of CPU per
        # stream. Made from this client's own configuration it costs ~1.5 ms.
        client.Configuration.set_default(self.api.configuration)
        w = watch.Watch()
        try:
            stream = w.stream(list_fn, resource_version=resource_version, timeout_seconds=timeout_seconds)
            async with stream:
                async for event in stream:
                    self.answered_at = time.time()
                    yield {"type": event["type"], "object": event["raw_object"]}
        except ApiException as exc:
            raise KubeError.from_api(exc) from exc
        except TimeoutError as exc:
            raise KubeError(0, "Timeout", f"no event for {inactivity_timeout:g}s") from exc
        except (OSError, aiohttp.ClientError) as exc:
            raise KubeError(0, "Unreachable", str(exc)) from exc

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
            resp = await self._raw("GET", endpoint, query=[("verbose", "true")],
                                   read_timeout=self.request_timeout)
            async with resp:
                text = (await resp.read()).decode(errors="replace")
        except ApiException as exc:
            raise KubeError.from_api(exc) from exc
        except (OSError, aiohttp.ClientError, TimeoutError) as exc:
            raise KubeError(0, "Unreachable", str(exc) or type(exc).__name__) from exc
        if resp.status != 200:
            raise KubeError(resp.status, resp.reason or "", text[-2000:])
        return text

    async def _raw(
        self, method: str, path: str, *, query: list[tuple[str, str]] | None = None, body: Any = None,
        content_type: str = "application/json", read_timeout: float | None = None,
    ) -> aiohttp.ClientResponse:
        """One request through the client's own auth, TLS and pool; the response is not read yet."""
        sent = self.credentials.token if self.credentials is not None else ""
        resp: aiohttp.ClientResponse = await self.api.call_api(
            path, method, query_params=query or [], body=body,
            header_params={"Accept": "application/json", "Content-Type": content_type},
            auth_settings=["BearerToken"], _preload_content=False,
            _request_timeout=aiohttp.ClientTimeout(sock_connect=read_timeout, sock_read=read_timeout),
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
        """A request whose JSON answer is returned as a dict, or raised as ``KubeError`` when not 2xx.

        Raw responses skip the client's own status check, so the check is here, reading the server's
        ``Status`` body.
        """
        try:
            resp = await self._raw(method, path, query=query, body=body, content_type=content_type,
                                   read_timeout=self.request_timeout)
            async with resp:
                data = await resp.read()
        except ApiException as exc:
            raise KubeError.from_api(exc) from exc
        except (OSError, aiohttp.ClientError, TimeoutError) as exc:
            raise KubeError(0, "Unreachable", str(exc) or type(exc).__name__) from exc
        if not 200 <= resp.status <= 299:
            raise KubeError.from_body(resp.status, resp.reason or "", data)
        obj: Object = json.loads(data)
        return obj


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
