"""Outbound URLs the merchant gives us (stores now, webhooks later) must not point the service
at its own network: in production they must be https and resolve only to public addresses,
unless `SYNCAUCTION_ALLOW_PRIVATE_WEBHOOK_TARGETS` is set. Development allows anything, so the
built-in simulators on 127.0.0.1 work."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from app import runtime
from app.errors import InvalidInput


def _refused(param: str, why: str) -> InvalidInput:
    return InvalidInput(f"Invalid {param}: {why}.", code="url_not_allowed", param=param)


async def ensure_public_url(url: str, *, param: str = "url") -> None:
    """Raise 400 `url_not_allowed` for a URL this deployment must not call."""
    settings = runtime.current().settings
    if settings.is_development or settings.allow_private_webhook_targets:
        return
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise _refused(param, "must use https (credentials would travel in clear)")
    host = parts.hostname or ""
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, parts.port or 443, type=socket.SOCK_STREAM
            )
        except (socket.gaierror, UnicodeError):
            raise _refused(param, f"{host} does not resolve") from None
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in addresses:
        if not address.is_global:
            raise _refused(param, f"{host} is a private, loopback or link-local address")
