"""Back-channel HTTP for the ``oidc`` connector: one request through the shared client, bounded.

Every call has a total deadline, never follows redirects and reads at most
``MAX_RESPONSE_BYTES`` of body, so a slow or hostile upstream cannot hold a worker or
exhaust memory. It asks for ``identity`` encoding and refuses a compressed answer, so no
decompression bomb gets past the size cap. Failures become ``ConnectorError``s whose
messages name the endpoint's role, never a secret, a token or the upstream's raw body.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from idp_connectors.base import ConnectorError

MAX_RESPONSE_BYTES = 1 << 20
_UNSAFE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")  # RFC 6749 error / error_description charset


@dataclass(frozen=True, slots=True)
class Fetched:
    status: int
    content_type: str
    body: bytes


def sanitise(value: object, limit: int = 200) -> str:
    """An upstream-supplied string made safe to log and show: printable ASCII, bounded length."""
    text = value if isinstance(value, str) else ""
    return _UNSAFE.sub("?", text[:limit])


async def send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    what: str,
    deadline: float,
    invalid_code: str,
    headers: Mapping[str, str] | None = None,
    data: Mapping[str, str] | None = None,
) -> Fetched:
    """Send one request; ``upstream_unavailable`` on network failure, deadline or a 5xx answer.

    A body over ``MAX_RESPONSE_BYTES`` or a redirect raises ``invalid_code``. Other
    statuses are returned for the caller to judge.
    """
    try:
        async with asyncio.timeout(deadline):
            async with client.stream(
                method,
                url,
                headers={**(headers or {}), "accept-encoding": "identity"},
                data=data,
                timeout=httpx.Timeout(deadline),
                follow_redirects=False,
            ) as response:
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
                    raise ConnectorError(f"the {what} response is too large", code=invalid_code)
                if response.headers.get("content-encoding", "identity").lower() != "identity":
                    raise ConnectorError(f"the {what} response is compressed", code=invalid_code)
                body = bytearray()
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) > MAX_RESPONSE_BYTES:
                        raise ConnectorError(f"the {what} response is too large", code=invalid_code)
                status = response.status_code
                content_type = response.headers.get("content-type", "")
    except TimeoutError as exc:
        raise ConnectorError(
            f"the {what} did not answer within {deadline:g} seconds", code="upstream_unavailable"
        ) from exc
    except httpx.TimeoutException as exc:
        raise ConnectorError(
            f"the {what} did not answer within {deadline:g} seconds", code="upstream_unavailable"
        ) from exc
    except httpx.HTTPError as exc:
        raise ConnectorError(
            f"the {what} could not be reached ({type(exc).__name__})", code="upstream_unavailable"
        ) from exc
    if status >= 500:
        raise ConnectorError(f"the {what} failed (HTTP {status})", code="upstream_unavailable")
    if 300 <= status < 400:
        raise ConnectorError(f"the {what} answered with a redirect (HTTP {status})", code=invalid_code)
    return Fetched(status=status, content_type=content_type.split(";")[0].strip().lower(), body=bytes(body))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("a number out of range")
    return value


def json_object(body: bytes, *, what: str, code: str) -> dict[str, Any]:
    """``body`` parsed as a JSON object (strict JSON: no NaN/Infinity), else ``code``."""
    try:
        value = json.loads(body, parse_constant=_no_constant, parse_float=_finite)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ConnectorError(f"the {what} response is not JSON", code=code) from exc
    if not isinstance(value, dict):
        raise ConnectorError(f"the {what} response is not a JSON object", code=code)
    return value
