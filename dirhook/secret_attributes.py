"""Source attributes that carry credentials: never stored, never mapped, never sent.

A directory hands its reader whatever the bind account may read, and a generous account (or
a schema extension) can read password hashes, private keys, LAPS passwords and Kerberos
keys. They are dropped where a source record enters dirhook (``normalize.source_record`` and
the mapping step), so neither ``raw_attributes``, a custom mapping, the stored record nor an
event can hold one.

Kept per flavour so the lists stay reviewable against each schema; applied as one set to
every directory, since schemas travel (Samba AD carries the RFC 2307 attributes, OpenLDAP
can load Samba's and Microsoft's): a credential is one whatever server serves it. Matching
is case-insensitive, as LDAP's attribute names are; a name may end in ``*`` to cover a
family (``msLAPS-*``), and attribute options (``userCertificate;binary``) match their base.
"""

from __future__ import annotations

from functools import lru_cache

# RFC 2256/2307/3112/4523, OpenLDAP's ppolicy and Kerberos and Samba schemas, and the Entra
# and SCIM names a mapping could be pointed at.
OPENLDAP = (
    "userPassword",
    "authPassword",
    "unixUserPassword",  # NIS schema
    "pwdHistory",  # ppolicy: earlier hashes
    "userPKCS12",  # RFC 2798: a private key with its certificate
    "krbPrincipalKey",
    "krbExtraData",
    "krbPwdHistory",
    "krbMKey",
    "sambaNTPassword",
    "sambaLMPassword",
    "sambaPasswordHistory",
    "sambaClearTextPassword",
    "olcRootPW",
    "password",
)
# Active Directory (and Samba AD): hashes, supplemental credentials, LAPS, key credentials,
# DPAPI and BitLocker material.
ACTIVE_DIRECTORY = (
    "unicodePwd",
    "dBCSPwd",
    "ntPwdHistory",
    "lmPwdHistory",
    "supplementalCredentials",
    "currentValue",  # trust and secret objects
    "priorValue",
    "initialAuthIncoming",
    "initialAuthOutgoing",
    "trustAuthIncoming",
    "trustAuthOutgoing",
    "ms-Mcs-AdmPwd",  # legacy LAPS
    "msLAPS-*",  # Windows LAPS: Password, EncryptedPassword, EncryptedPasswordHistory…
    "msDS-KeyCredentialLink",  # Windows Hello / shadow credentials
    "msDS-ManagedPassword",  # gMSA
    "msFVE-RecoveryPassword",  # BitLocker
    "msFVE-KeyPackage",
    "msPKIAccountCredentials",  # credential roaming
    "msPKIDPAPIMasterKeys",
    "msTPM-OwnerInformation",
    "msDS-ExecuteScriptPassword",
    "userPKCS12",
    "unixUserPassword",
    "userPassword",
    "msSFU30Password",
)
# Pushed or read records (SCIM, Microsoft Graph): a mapping could point at these.
PUSHED = (
    "password",
    "passwordProfile",
)

DENY_LISTS: dict[str, tuple[str, ...]] = {
    "openldap": OPENLDAP,
    "active_directory": ACTIVE_DIRECTORY,
    "scim": PUSHED,
    "entra": PUSHED,
    "google": (*PUSHED, "hashFunction"),
}

_EXACT = frozenset(a.lower() for names in DENY_LISTS.values() for a in names if not a.endswith("*"))
_PREFIXES = tuple(sorted({a[:-1].lower() for names in DENY_LISTS.values() for a in names if a.endswith("*")}))


@lru_cache(maxsize=4096)  # a pass asks about the same few dozen names for every entry
def is_secret(name: str) -> bool:
    """Whether the attribute ``name`` (any case, with or without ``;options``) holds credentials."""
    base = name.split(";", 1)[0].lower()
    return base in _EXACT or base.startswith(_PREFIXES)
