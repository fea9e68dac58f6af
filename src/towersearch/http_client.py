"""A minimal JSON client for a running towersearch service, on the standard library (no extra dependency).

:class:`JsonClient` has the small part of httpx's interface that ``refresh --reload`` and the demo replay use
(``get(path, params=..., headers=...)`` and ``post(path, json=..., headers=...)`` returning a response with
``status_code``, ``text`` and ``json()``), so tests pass FastAPI's ``TestClient`` (an httpx client) in its place and
run the same code in process.
"""

from __future__ import annotations

import json as jsonlib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from towersearch.errors import ConfigError, ServiceError


class Response(Protocol):
    """What a client's ``get`` and ``post`` return (httpx's and :class:`JsonResponse` both have it)."""

    status_code: int

    @property
    def text(self) -> str: ...

    def json(self) -> Any: ...


class Client(Protocol):
    """An HTTP client with httpx's ``get`` and ``post``: :class:`JsonClient`, ``httpx.Client`` or ``TestClient``."""

    def get(self, url: str, *, params: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None): ...

    def post(self, url: str, *, json: Any = None, headers: Mapping[str, str] | None = None): ...


@dataclass
class JsonResponse:
    """A response of :class:`JsonClient`: status code and body."""

    status_code: int
    text: str

    def json(self) -> Any:
        return jsonlib.loads(self.text)


class JsonClient:
    """GET and POST JSON to a service at ``base_url`` (``http://127.0.0.1:8000``) with :mod:`urllib`.

    An HTTP error status is returned as a response like any other (the caller reads ``status_code``); only a
    service that cannot be reached raises.

    Args:
        base_url: The service's address, ``http://`` or ``https://``.
        timeout: Seconds to wait for each answer.

    Raises:
        ConfigError: ``base_url`` is not an http(s) URL.
    """

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigError(f"service URL must be http(s)://host[:port], got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _send(self, request: urllib.request.Request) -> JsonResponse:
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310 (http(s) checked)
                return JsonResponse(answer.status, answer.read().decode("utf-8", "replace"))
        except urllib.error.HTTPError as exc:
            return JsonResponse(exc.code, exc.read().decode("utf-8", "replace"))
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServiceError(f"cannot reach the service at {self.base_url}: {reason}") from None

    def get(
        self, url: str, *, params: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None
    ) -> JsonResponse:
        """GET ``url`` (a path under ``base_url``) with query ``params``."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        request = urllib.request.Request(f"{self.base_url}{url}{query}", headers=dict(headers or {}), method="GET")
        return self._send(request)

    def post(self, url: str, *, json: Any = None, headers: Mapping[str, str] | None = None) -> JsonResponse:
        """POST ``json`` (any JSON value; None sends no body) to ``url``, a path under ``base_url``."""
        body = None if json is None else jsonlib.dumps(json).encode("utf-8")
        all_headers = {"Content-Type": "application/json", **dict(headers or {})} if body else dict(headers or {})
        request = urllib.request.Request(f"{self.base_url}{url}", data=body, headers=all_headers, method="POST")
        return self._send(request)


def detail(response: Response) -> str:
    """The ``detail`` of a service's JSON error body, else the body's first 200 characters."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("detail", body)) if isinstance(body, dict) else str(body)[:200]
