"""Where a directory's source may point (dirhook/source_policy.py): on-premises LDAP on
private addresses by default, Entra's hosts public, and never a place nothing but a thief
would bind to."""

from __future__ import annotations

import pytest

from dirhook.config import Settings
from dirhook.services.directory_rules import check_source_targets as check_directory
from dirhook.services.errors import InvalidInput
from dirhook.source_policy import SourceTargetRefused, check_source_host

NEVER = [
    ("169.254.169.254", "cloud metadata"),
    ("100.100.100.200", "cloud metadata"),
    ("fd00:ec2::254", "cloud metadata"),
    ("fe80::1", "link-local"),
    ("224.0.0.1", "multicast"),
    ("0.0.0.0", "reserved"),
    ("2002:a00:1::", "6to4"),
    ("64:ff9b::a00:1", "NAT64"),
    ("2130706433", "numeric host"),
    ("127.1", "numeric host"),
    ("0x7f.1", "numeric host"),
]
PRIVATE = ["127.0.0.1", "10.1.2.3", "192.168.0.10", "172.16.5.4", "fd12:3456::1", "::ffff:10.0.0.1", "localhost"]


@pytest.mark.parametrize("allow_private", [True, False])
@pytest.mark.parametrize("host,why", NEVER)
def test_places_no_directory_lives_are_refused_whatever_the_setting(host, why, allow_private):
    with pytest.raises(SourceTargetRefused, match=why):
        check_source_host(host, allow_private, "DIRHOOK_ALLOW_PRIVATE_DIRECTORIES")


@pytest.mark.parametrize("host", PRIVATE)
def test_private_servers_are_allowed_only_when_the_setting_allows_them(host):
    check_source_host(host, True, "DIRHOOK_ALLOW_PRIVATE_DIRECTORIES")
    with pytest.raises(SourceTargetRefused, match="DIRHOOK_ALLOW_PRIVATE_DIRECTORIES is false"):
        check_source_host(host, False, "DIRHOOK_ALLOW_PRIVATE_DIRECTORIES")


def test_a_name_that_does_not_resolve_passes_only_where_private_names_may_live():
    check_source_host("ldap.corp.invalid", True, "X")  # the worker's resolver may know it; checked there again
    with pytest.raises(SourceTargetRefused, match="does not resolve"):
        check_source_host("ldap.corp.invalid", False, "X")


def test_the_defaults_allow_on_premises_ldap_and_refuse_private_entra_hosts():
    settings = Settings(admin_token="t" * 32)
    check_directory("ldap", {"url": "ldap://10.0.0.5:389"}, settings)
    check_directory("entra", {"authority_host": "https://8.8.8.8", "graph_base_url": "https://8.8.4.4/v1.0"}, settings)
    with pytest.raises(InvalidInput, match="DIRHOOK_ALLOW_PRIVATE_ENTRA_HOSTS"):
        check_directory(
            "entra", {"authority_host": "https://10.0.0.5", "graph_base_url": "https://8.8.4.4/v1.0"}, settings
        )
    locked = Settings(admin_token="t" * 32, allow_private_directories=False)
    with pytest.raises(InvalidInput, match="DIRHOOK_ALLOW_PRIVATE_DIRECTORIES"):
        check_directory("ldap", {"url": "ldaps://127.0.0.1"}, locked)
