"""One DN key for every comparison, and containment on RDN boundaries."""

from dirhook.dn import common_base, dn_key, dn_within, naming_context
from dirhook.normalize import reference_key


def test_dns_that_differ_in_case_and_spacing_have_one_key():
    assert dn_key(" uid=A, ou=People ,dc=Example,dc=org") == "uid=a,ou=people,dc=example,dc=org"
    # Stored references use the same key, so a group's member value finds its user.
    assert reference_key("uid=A, ou=People,dc=x") == reference_key("uid=a,ou=people,dc=x")


def test_containment_stops_at_rdn_boundaries():
    base = "ou=People,dc=example,dc=org"
    assert dn_within("uid=a,ou=people,dc=example,dc=org", base)
    assert dn_within(base.upper(), base)  # the base itself
    # A plain suffix test takes these for entries under the base.
    assert not dn_within("uid=a,ou=OtherPeople,dc=example,dc=org", "People,dc=example,dc=org")
    assert not dn_within("uid=a,ou=xpeople,dc=example,dc=org", base)
    assert not dn_within("dc=example,dc=org", base)


def test_the_naming_context_and_the_common_base():
    assert naming_context("OU=Staff, DC=corp,DC=example") == "DC=corp,DC=example"
    assert common_base("ou=a,dc=x,dc=y", "OU=b,dc=X,dc=y") == "dc=x,dc=y"
