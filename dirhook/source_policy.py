"""Where a directory's source may point: the SSRF guard's rules, shaped for directories.

An LDAP or AD server on premises sits on a private address by nature, so private and
loopback targets are allowed by default (``allow_private_directories``); Entra's login and
Graph hosts (and Google's token and Admin SDK hosts) are cloud services, public unless
``allow_private_entra_hosts`` (``allow_private_google_hosts``) says otherwise (a test
server, a proxy). Whatever the settings, a source never points at a cloud metadata
service, a link-local, multicast or unspecified address, an IPv6 transition address, or a
host written as a number in disguise (``2130706433``): nothing a directory needs lives
there, and a bind password or client secret sent there is stolen.

Checked when a directory is created or its target changes (API), and again each time a
source connects (worker), on what the host resolves to then.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlparse

from dirhook.ssrf import METADATA_ADDRESSES, TRANSITION_NETWORKS, address_refusal, numeric_host_refusal

ENTRA_HOST_FIELDS = ("authority_host", "graph_base_url")
GOOGLE_HOST_FIELDS = ("token_uri", "api_base_url")


class SourceTargetRefused(ValueError):
    pass


def _allowed_when_private(ip: str) -> bool:
    """Private, loopback and unique-local addresses: where on-premises servers live."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address):
        if any(addr in network for network in TRANSITION_NETWORKS):
            return False
        addr = addr.ipv4_mapped or addr
    if addr in METADATA_ADDRESSES or addr.is_link_local or addr.is_multicast or addr.is_unspecified:
        return False
    return addr.is_loopback or addr.is_private


def address_refusal_for_source(ip: str, allow_private: bool) -> str | None:
    """Why a directory source may not be at this address, or None if it may."""
    reason = address_refusal(ip)
    if reason and allow_private and _allowed_when_private(ip):
        return None
    return reason


def check_source_host(host: str, allow_private: bool, setting: str) -> None:
    """Refuse a host that is, or resolves to, an address this source may not reach. A name
    that does not resolve passes when private targets are allowed (the worker's resolver,
    on the directory's network, may know it; it is checked again there)."""
    reason = numeric_host_refusal(host)
    if reason is None:
        try:
            addresses = [str(ipaddress.ip_address(host))]
        except ValueError:  # a name
            try:
                infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
            except socket.gaierror:
                if allow_private:
                    return
                raise SourceTargetRefused(f"{host} does not resolve") from None
            addresses = sorted({str(info[4][0]) for info in infos})
        found = [(a, r) for a in addresses if (r := address_refusal_for_source(a, allow_private))]
        if found:
            address, reason = found[0]
            if not allow_private and _allowed_when_private(address):
                reason += f" ({setting} is false)"
    if reason:
        raise SourceTargetRefused(f"{host} is refused: {reason}")


def check_source_targets(
    provider: str,
    config: dict[str, Any],
    allow_private_directories: bool,
    allow_private_entra: bool,
    allow_private_google: bool = False,
) -> None:
    """Every host a directory's settings send its secret to, checked (SourceTargetRefused)."""
    if provider == "ldap":
        host = urlparse(config["url"]).hostname or ""
        check_source_host(host, allow_private_directories, "DIRHOOK_ALLOW_PRIVATE_DIRECTORIES")
    elif provider == "entra":
        for field in ENTRA_HOST_FIELDS:
            if field in config:
                host = urlparse(config[field]).hostname or ""
                check_source_host(host, allow_private_entra, "DIRHOOK_ALLOW_PRIVATE_ENTRA_HOSTS")
    elif provider == "google":
        for field in GOOGLE_HOST_FIELDS:
            if field in config:
                host = urlparse(config[field]).hostname or ""
                check_source_host(host, allow_private_google, "DIRHOOK_ALLOW_PRIVATE_GOOGLE_HOSTS")
