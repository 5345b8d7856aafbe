"""The SSRF guard refuses what reaches a private address in disguise, whatever the Python
version's idea of "global": IPv6 transition addresses that embed IPv4, and IPv4 written in
numeric forms the resolver accepts."""

from __future__ import annotations

import pytest

from dirhook.ssrf import UnsafeURL, address_refusal, check_url, literal_address_refusal

DISGUISED = [
    ("http://[2002:7f00:1::]/hook", "6to4"),  # 6to4 of 127.0.0.1
    ("http://[2002:a00:1::]/hook", "6to4"),  # 6to4 of 10.0.0.1
    ("http://[64:ff9b::7f00:1]/hook", "NAT64"),  # NAT64 of 127.0.0.1
    ("http://[64:ff9b::a9fe:a9fe]/hook", "NAT64"),  # NAT64 of 169.254.169.254
    ("http://[64:ff9b:1::a00:1]/hook", "NAT64"),  # local-use NAT64 prefix
    ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook", "Teredo"),
    ("http://2130706433/hook", "numeric host"),  # 127.0.0.1 as one number
    ("http://127.1/hook", "numeric host"),
    ("http://0x7f.1/hook", "numeric host"),
    ("http://0177.0.0.1/hook", "numeric host"),
    ("http://167772161/hook", "numeric host"),  # 10.0.0.1
]


@pytest.mark.parametrize("url,what", DISGUISED)
async def test_refused_at_creation(url, what):
    with pytest.raises(UnsafeURL, match=what):
        await check_url(url, allow_private=False)


@pytest.mark.parametrize("url,what", DISGUISED)
def test_refused_again_at_delivery(url, what):
    refusal = literal_address_refusal(url)
    assert refusal and "SSRF guard" in refusal and what in refusal


def test_ordinary_public_addresses_still_pass():
    for address in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "8.8.8.8"):
        assert address_refusal(address) is None, address
    assert literal_address_refusal("https://93.184.216.34/hook") is None
    assert literal_address_refusal("https://hooks.example.com/x") is None  # names: checked once resolved
