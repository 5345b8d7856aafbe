"""Builds the source for a directory row; the only place that reads its secret."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from dirhook.config import Settings
from dirhook.db.schema import Directory
from dirhook.providers.base import DirectorySource, SourceConfigError


def mapping_for(directory: Directory) -> dict[str, Any]:
    """The directory's effective attribute mapping (its flavour's defaults plus its overrides)."""
    from dirhook.normalize import effective_mapping

    flavour = (directory.config or {}).get("flavour", "openldap")
    return effective_mapping(flavour, directory.attribute_mapping or None)


def build_source(
    directory: Directory, settings: Settings, sessions: sessionmaker[Session] | None = None
) -> DirectorySource:
    if directory.provider == "ldap":
        from dirhook.providers.ldap import LdapConfig, LdapSource

        return LdapSource(
            LdapConfig.model_validate(directory.config),
            directory.secret,
            directory.attribute_mapping or None,
            timestamp_overlap_seconds=settings.ldap_timestamp_overlap_seconds,
            allow_private=settings.allow_private_directories,
        )
    if directory.provider == "entra":
        from dirhook.providers.entra import EntraSource
        from dirhook.providers.entra_config import EntraConfig

        return EntraSource(
            EntraConfig.model_validate(directory.config),
            directory.secret,
            directory.attribute_mapping or None,
            _sessions(sessions),
            directory.id,
            ca_bundle=settings.entra_ca_bundle,
            allow_private_hosts=settings.allow_private_entra_hosts,
        )
    if directory.provider == "google":
        from dirhook.providers.google import GoogleSource
        from dirhook.providers.google_config import GoogleConfig

        return GoogleSource(
            GoogleConfig.model_validate(directory.config),
            directory.secret,
            directory.attribute_mapping or None,
            sessions,
            directory.id,
            ca_bundle=settings.google_ca_bundle,
            allow_private_hosts=settings.allow_private_google_hosts,
            push_url=settings.google_push_url,
            channel_seconds=settings.google_channel_seconds,
            reconcile_seconds=settings.google_reconcile_seconds,
        )
    if directory.provider == "scim":
        from dirhook.scim.source import ScimStoreSource

        return ScimStoreSource(_sessions(sessions), directory.id, mapping_for(directory))
    raise SourceConfigError(f"provider {directory.provider!r} cannot be synced by polling")


def _sessions(sessions: sessionmaker[Session] | None) -> sessionmaker[Session]:
    # Entra and SCIM sources read the database (delta links, stored resources).
    if sessions is None:
        raise SourceConfigError("this source needs the database")
    return sessions
