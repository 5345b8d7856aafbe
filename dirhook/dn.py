"""How dirhook compares DNs (and every source's references): one key, and containment on
RDN boundaries.

DNs compare case-insensitively and ignore spaces around the RDN separators, so
"uid=A, ou=People" and "uid=a,ou=people" are one entry. (Escaped commas inside a value,
``\\,``, are rare in directories and compare as written.)
"""

from __future__ import annotations


def dn_key(dn: str) -> str:
    """The form in which DNs are stored and compared."""
    return ",".join(part.strip() for part in dn.strip().lower().split(","))


def dn_within(dn: str, base: str) -> bool:
    """Whether ``dn`` is ``base`` or an entry below it: "ou=otherpeople,dc=x" is not within
    "people,dc=x" (a plain suffix test would say it is)."""
    key, base_key = dn_key(dn), dn_key(base)
    return key == base_key or key.endswith("," + base_key)


def common_base(*dns: str) -> str:
    """The deepest entry above all these DNs (compared case-insensitively)."""
    split = [[rdn.strip() for rdn in dn.split(",")][::-1] for dn in dns]
    common = []
    for parts in zip(*split):
        if len({p.lower() for p in parts}) != 1:
            break
        common.append(parts[0])
    return ",".join(reversed(common))


def naming_context(dn: str) -> str:
    """The domain a DN is in (its dc= components): where Active Directory's DirSync and
    notification searches must start."""
    return ",".join(p.strip() for p in dn.split(",") if p.strip().lower().startswith("dc="))
