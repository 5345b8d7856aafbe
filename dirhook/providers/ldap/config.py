"""An LDAP or AD directory's connection settings, as an operator gives them."""

from __future__ import annotations

from urllib.parse import urlparse

from pydantic import Field, field_validator

from dirhook.strict_json import StrictJsonModel


class LdapConfig(StrictJsonModel):
    """Connection settings of an LDAP or AD directory (the bind password is stored apart)."""

    url: str = Field(
        description="ldap://host:port or ldaps://host:port", json_schema_extra={"pattern": r"^ldaps?://[^\s/?#]+/?$"}
    )
    bind_dn: str = Field(description="DN (or user@domain on AD) to bind as")
    start_tls: bool = False
    verify_tls: bool = True
    user_base_dn: str
    user_filter: str = "(objectClass=inetOrgPerson)"
    group_base_dn: str | None = Field(default=None, description="defaults to user_base_dn")
    group_filter: str = "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))"
    flavour: str = Field(
        default="openldap",
        description="openldap | active_directory (attribute defaults)",
        json_schema_extra={"enum": ["openldap", "active_directory"]},
    )
    live: bool = Field(
        default=True,
        description="a listener starts a pass on every change the server announces "
        "(OpenLDAP: syncrepl; Active Directory: change notifications)",
    )
    page_size: int = Field(default=500, ge=1, le=5000)
    timeout_seconds: float = Field(default=10, gt=0, le=300)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        v = v.strip()  # pasted with spaces around it
        parsed = urlparse(v)
        if parsed.scheme not in ("ldap", "ldaps") or not parsed.hostname:
            raise ValueError("must be ldap://host[:port] or ldaps://host[:port]")
        return v

    @field_validator("flavour")
    @classmethod
    def _flavour(cls, v: str) -> str:
        if v not in ("openldap", "active_directory"):
            raise ValueError("must be 'openldap' or 'active_directory'")
        return v

    @field_validator("user_filter", "group_filter")
    @classmethod
    def _filter(cls, v: str) -> str:
        from ldap3.operation.search import parse_filter

        try:
            parse_filter(v, None, auto_escape=True, auto_encode=True, validator=None, check_names=False)
        except Exception as exc:  # ldap3 raises several unrelated kinds for malformed filters
            raise ValueError(f"invalid LDAP filter: {exc}") from None
        return v

    @property
    def active_directory(self) -> bool:
        return self.flavour == "active_directory"

    @property
    def external_id_attribute(self) -> str:
        return "objectGUID" if self.active_directory else "entryUUID"

    @property
    def groups_base(self) -> str:
        return self.group_base_dn or self.user_base_dn

    @property
    def timestamp_attribute(self) -> str:
        """The attribute that says when an entry last changed."""
        return "whenChanged" if self.active_directory else "modifyTimestamp"
