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


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Globally routable, including what an IPv6 address embeds (mapped, 6to4, NAT64)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and not embedded.is_global:
            return False
    return address.is_global


async def ensure_public_url(url: str, *, param: str = "url") -> list[str] | None:
    """Raise 400 `url_not_allowed` for a URL this deployment must not call. Returns the checked
    addresses (a caller connects to one of those, not to a second lookup that DNS rebinding
    could answer differently), or None when any target is allowed."""
    settings = runtime.current().settings
    if settings.is_development or settings.allow_private_webhook_targets:
        return None
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise _refused(param, "must use https (what is sent there must not travel in clear)")
    host = parts.hostname or ""
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.wait_for(
                asyncio.get_running_loop().getaddrinfo(
                    host, parts.port or 443, type=socket.SOCK_STREAM
                ),
                timeout=10,
            )
        except (socket.gaierror, UnicodeError, TimeoutError):
            raise _refused(param, f"{host} does not resolve") from None
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in addresses:
        if not _public(address):
            raise _refused(param, f"{host} is a private, loopback or link-local address")
    return [str(address) for address in addresses]
