"""Server-side request forgery guard: webhooks go to the public internet only.

Checked at endpoint creation (the URL, and what its host resolves to) and again at every
delivery, on the addresses the connection actually uses (a DNS answer can change between
the two). ``allow_private_endpoints`` lifts it (on in ``dirhook dev``).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from urllib.parse import urlparse

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

# Cloud metadata services that sit on otherwise routable addresses.
METADATA_ADDRESSES = {ipaddress.ip_address("100.100.100.200"), ipaddress.ip_address("fd00:ec2::254")}


# IPv6 ranges that carry an IPv4 address inside (6to4, Teredo, NAT64): whether Python's
# ipaddress calls them global changed between 3.11 and 3.13, and through a gateway they reach
# the IPv4 address they embed, private ones included. Refused outright, whatever the version.
TRANSITION_NETWORKS = {
    ipaddress.ip_network("2002::/16"): "a 6to4 address",
    ipaddress.ip_network("2001::/32"): "a Teredo address",
    ipaddress.ip_network("64:ff9b::/96"): "a NAT64 address",
    ipaddress.ip_network("64:ff9b:1::/48"): "a NAT64 address",
}


class UnsafeURL(ValueError):
    pass


def numeric_host_refusal(host: str) -> str | None:
    """A host the resolver reads as an IPv4 address though it is not written as one
    (``2130706433``, ``127.1``, ``0x7f.1``, ``0177.0.0.1``): refused, never resolved."""
    try:
        ipaddress.ip_address(host)
        return None  # a canonical address: judged as an address
    except ValueError:
        pass
    try:
        packed = socket.inet_aton(host)
    except OSError:
        return None  # a name
    return f"{host} is a numeric host ({ipaddress.IPv4Address(packed)} written another way)"


def address_refusal(ip: str) -> str | None:
    """Why this address may not receive webhooks, or None if it may."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address):
        for network, what in TRANSITION_NETWORKS.items():
            if addr in network:
                return f"{addr} is {what}, which embeds an IPv4 address"
        if addr.ipv4_mapped:
            addr = addr.ipv4_mapped
    if addr in METADATA_ADDRESSES or addr == ipaddress.ip_address("169.254.169.254"):
        return f"{addr} is a cloud metadata address"
    if addr.is_loopback:
        return f"{addr} is a loopback address"
    if addr.is_link_local:
        return f"{addr} is a link-local address"
    if addr.is_multicast:
        return f"{addr} is a multicast address"
    if addr.is_private or addr.is_reserved or addr.is_unspecified or not addr.is_global:
        return f"{addr} is a private or reserved address"
    return None


def check_url_syntax(url: str) -> str:
    """The URL's host, if it is an http(s) URL with one."""
    if not url.strip():
        raise UnsafeURL("the URL is empty: give the receiver's http:// or https:// URL")
    parsed = urlparse(url)
    if not parsed.scheme:
        raise UnsafeURL(f"{url!r} has no scheme: give the receiver's http:// or https:// URL")
    if parsed.scheme not in ("http", "https"):
        raise UnsafeURL(f"only http:// and https:// URLs can receive webhooks, not {parsed.scheme}://")
    if not parsed.hostname:
        raise UnsafeURL("the URL has no host")
    try:
        parsed.port  # noqa: B018  (raises on a malformed port)
    except ValueError as exc:
        raise UnsafeURL(f"bad port: {exc}") from None
    return parsed.hostname


async def check_url(url: str, allow_private: bool) -> None:
    """Refuse a URL whose host is, or resolves to, an address webhooks may not reach."""
    host = check_url_syntax(url)
    if allow_private:
        return
    try:
        reason = numeric_host_refusal(host) or address_refusal(host)
    except ValueError:  # a name, not an address
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except socket.gaierror:
            raise UnsafeURL(f"{host} does not resolve") from None
        reasons = (address_refusal(str(address)) for address in sorted({str(info[4][0]) for info in infos}))
        reason = next((r for r in reasons if r), None)
    if reason:
        raise UnsafeURL(f"{host} is refused: {reason} (private endpoints are not allowed here)")


def literal_address_refusal(url: str) -> str | None:
    """At delivery: why a URL whose host is an address (or whose scheme is not http) may not
    be sent to. Names are checked on their resolved addresses by GuardedResolver."""
    try:
        host = check_url_syntax(url)
    except UnsafeURL as exc:
        return f"refused by the SSRF guard: {exc}"
    try:
        reason = numeric_host_refusal(host) or address_refusal(host)
    except ValueError:
        return None
    return f"refused by the SSRF guard: {reason}" if reason else None


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that drops addresses webhooks may not reach, and fails when none is left."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if address_refusal(r["host"]) is None]
        if not allowed:
            reasons = "; ".join(sorted({address_refusal(r["host"]) or "" for r in results}))
            # (errno, message): aiohttp shows strerror in the error it raises for the connection
            raise OSError(errno.EACCES, f"refused by the SSRF guard: {host} resolves to {reasons}")
        return allowed

    async def close(self) -> None:
        await self._inner.close()
