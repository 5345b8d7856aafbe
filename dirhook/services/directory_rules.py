"""A directory's own rules, apart from Temporal and threads: how it is shown, found, given a
SCIM token, and how a PATCH of its source settings is validated and applied."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from dirhook import tokens
from dirhook.api.schemas import DirectoryIn, DirectoryOut, DirectoryPatch
from dirhook.api.schemas.directories import (
    ENTRA_SECRET_TARGETS,
    GOOGLE_SECRET_TARGETS,
    LDAP_SECRET_TARGETS,
    OWN_FIELDS,
    SOURCE_FIELDS,
)
from dirhook.config import Settings
from dirhook.db.schema import Directory
from dirhook.errors import MappingError
from dirhook.ids import new_id
from dirhook.normalize import effective_mapping
from dirhook.providers.entra_config import EntraConfig
from dirhook.providers.google_config import GoogleConfig, parse_service_account_key
from dirhook.providers.ldap import LdapConfig
from dirhook.services.errors import Conflict, InvalidInput, NotFound
from dirhook.services.scope import visible
from dirhook.source_policy import ENTRA_HOST_FIELDS, GOOGLE_HOST_FIELDS
from dirhook.sync_control import DirectoryRef

SCIM_TOKEN_PREFIX = "dhscim_"
# What each provider's PATCH may carry besides the shared fields, and its settings' model.
PROVIDER_FIELDS = OWN_FIELDS
SETTINGS_MODEL: dict[str, type[LdapConfig] | type[EntraConfig] | type[GoogleConfig]] = {
    "ldap": LdapConfig,
    "entra": EntraConfig,
    "google": GoogleConfig,
}
# Changing any of these points the directory at other objects: the stored cursor no longer
# describes them, so the next pass is a full one.
CURSOR_SCOPES = {
    "ldap": ("url", "user_base_dn", "group_base_dn", "user_filter", "group_filter", "flavour"),
    "entra": ("tenant_id", "graph_base_url"),
    "google": ("customer", "api_base_url", "admin_email"),
}
# Where and how the stored secret is sent: changing one of these without sending the secret
# again would let whoever may PATCH the directory (an organization key) point the next pass,
# and the stored password, at a server of their own (issue 14, finding 2).
SECRET_TARGETS = {"ldap": LDAP_SECRET_TARGETS, "entra": ENTRA_SECRET_TARGETS, "google": GOOGLE_SECRET_TARGETS}
# …and these, an LDAP live listener reconnects for.
LISTENER_SCOPE = (*CURSOR_SCOPES["ldap"], "live", "bind_dn", "start_tls")


def directory_out(d: Directory) -> DirectoryOut:
    return DirectoryOut(
        id=d.id,
        organization_id=d.organization_id,
        name=d.name,
        provider=d.provider,
        config=d.config,
        has_bind_password=d.provider == "ldap" and bool(d.secret),
        has_client_secret=d.provider == "entra" and bool(d.secret),
        has_service_account_key=d.provider == "google" and bool(d.secret),
        attribute_mapping=d.attribute_mapping,
        cursor=d.cursor,
        deletion_threshold_count=d.deletion_threshold_count,
        deletion_threshold_percent=d.deletion_threshold_percent,
        sync_interval_seconds=d.sync_interval_seconds,
        scim_path=f"/scim/v2/{d.id}" if d.provider == "scim" else None,
        created_at=d.created_at,
    )


def new_directory(body: DirectoryIn, settings: Settings) -> Directory:
    """The row a POST makes, not stored yet (its organization is resolved where it is inserted)."""
    default_interval = settings.default_sync_interval_seconds if body.provider != "scim" else 0
    interval = default_interval if body.sync_interval_seconds is None else body.sync_interval_seconds
    source_settings = body.ldap or body.entra or body.google
    return Directory(
        id=new_id("dir"),
        name=body.name,
        provider=body.provider,
        config=source_settings.model_dump(mode="json") if source_settings else {"flavour": "scim"},
        secret=body.bind_password or body.client_secret or body.service_account_key,
        attribute_mapping=body.attribute_mapping or {},
        sync_interval_seconds=interval or None,
    )


def ref(d: Directory) -> DirectoryRef:
    return DirectoryRef(id=d.id, organization_id=d.organization_id, name=d.name, provider=d.provider)


def get_directory(session: Session, directory_id: str) -> Directory:
    d = session.get(Directory, directory_id)
    if d is None or not visible(session, d.organization_id):
        raise NotFound(f"directory {directory_id} not found")
    return d


def new_scim_token(d: Directory) -> str:
    token = SCIM_TOKEN_PREFIX + tokens.new_secret()
    d.scim_token_digest = tokens.digest(token)
    return token


def check_mapping(flavour: str, mapping: dict[str, Any] | None) -> None:
    try:
        effective_mapping(flavour, mapping)
    except MappingError as exc:
        raise InvalidInput(f"attribute_mapping: {exc}") from None


def check_source_targets(provider: str, config: dict[str, Any], settings: Settings) -> None:
    """The hosts a directory's secret goes to, under the directory source policy (InvalidInput)."""
    from dirhook import source_policy

    try:
        source_policy.check_source_targets(
            provider,
            config,
            settings.allow_private_directories,
            settings.allow_private_entra_hosts,
            settings.allow_private_google_hosts,
        )
    except source_policy.SourceTargetRefused as exc:
        raise InvalidInput(f"{provider} source: {exc}") from None


def target_hosts(config: dict[str, Any]) -> tuple[str | None, ...]:
    """The hosts a directory's settings name (its LDAP URL's, Entra's login and Graph, Google's
    token endpoint and Admin SDK)."""
    from urllib.parse import urlparse

    fields = ("url", *ENTRA_HOST_FIELDS, *GOOGLE_HOST_FIELDS)
    return tuple(urlparse(config[k]).hostname if config.get(k) else None for k in fields)


def apply_source_settings(d: Directory, body: DirectoryPatch) -> bool:
    """Lays the PATCH's provider settings and secret over the directory's, validated whole
    (InvalidInput, nothing applied, on error). True when the LDAP listener must start again."""
    given = {name for name in SOURCE_FIELDS if getattr(body, name) is not None}
    foreign = given - set(PROVIDER_FIELDS[d.provider])
    if foreign:
        # Well-formed, but not for this directory's provider: a conflict with the resource.
        raise Conflict(f"this {d.provider} directory takes no {', '.join(sorted(foreign))}")
    settings_field, secret_field = PROVIDER_FIELDS[d.provider] or (None, None)
    old = d.config
    patch = getattr(body, settings_field) if settings_field else None
    if patch is not None:
        unknown = sorted(set(patch) - set(SETTINGS_MODEL[d.provider].model_fields))
        if unknown:
            raise InvalidInput(f"{settings_field}: no setting named {', '.join(map(repr, unknown))}")
        try:
            d.config = SETTINGS_MODEL[d.provider].model_validate({**old, **patch}).model_dump(mode="json")
        except ValidationError as exc:
            raise InvalidInput(
                [
                    {"loc": ["body", settings_field, *e["loc"]], "msg": e["msg"], "type": e["type"]}
                    for e in exc.errors(include_url=False, include_input=False)
                ]
            ) from None
        moved = [k for k in SECRET_TARGETS[d.provider] if d.config.get(k) != old.get(k)]
        if moved and secret_field and getattr(body, secret_field) is None:
            d.config = old
            names = ", ".join(f"{settings_field}.{k}" for k in moved)
            raise InvalidInput(
                f"changing {names} changes where or how the stored {secret_field} is sent: "
                f"send {secret_field} in the same request"
            )
        if any(d.config.get(k) != old.get(k) for k in CURSOR_SCOPES[d.provider]):
            d.cursor = None
    secret = getattr(body, secret_field) if secret_field else None
    if secret is not None and d.provider == "google":
        try:
            parse_service_account_key(secret)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
    if secret is not None:
        d.secret = secret
    return d.provider == "ldap" and (secret is not None or any(d.config.get(k) != old.get(k) for k in LISTENER_SCOPE))
