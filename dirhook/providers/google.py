"""Google Workspace through the Admin SDK Directory API (google-api-python-client + google-auth).

dirhook signs in as a service account with domain-wide delegation, impersonating the admin
the directory names, with read-only scopes (``google_config.SCOPES``). The API is described
by the client library's own static discovery document (``static_discovery=True``): nothing
is fetched from Google but the token and the data.

A pass lists everything: ``users.list`` (``projection=full``, for custom schemas; 500 a
page), ``groups.list`` and, for every group, ``members.list`` to its last page (200 a page:
a group of 50,000 is read whole, never truncated at its first page). The Directory API has
no delta for users, so a pass always reads the whole account and the engine emits only
real differences; deletions are what a whole listing no longer holds. A listing that fails
part-way raises before the engine decides any deletion, so nothing is deleted on a partial
listing (and deletion protection holds large drops as for every provider).

Quotas and faults: 429, 5xx and 403 ``rateLimitExceeded``/``userRateLimitExceeded`` are
retried by the client library itself with exponential backoff and jitter, as Google
documents (``execute(num_retries=…)``); what still fails is retried by Temporal. 401 and the
other 403s (no delegation, a scope not granted, the admin not an admin) fail the pass at
once with Google's own words and the fix, without retries.

The libraries are imported when a Google directory is synced, never at module import (as
msgraph is): a worker serving only LDAP directories does not load them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dirhook.db.schema import User
from dirhook.normalize import effective_mapping
from dirhook.providers.base import (
    Changes,
    SourceAuthError,
    SourceConfigError,
    SourceEntry,
    SourceError,
    SourceUnavailable,
)
from dirhook.providers.google_config import SCOPES, GoogleConfig, parse_service_account_key
from dirhook.providers.google_records import group_record, manager_email, member_ids, user_record
from dirhook.providers.probe import Probe

MEMBERS_PAGE = 200  # members.list's maximum
GROUPS_PAGE = 200  # groups.list's maximum
# 403 reasons that are quotas (retried by the library), not a refusal.
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"})

DELEGATION_FIX = (
    "in the Admin console (Security > Access and data control > API controls > Domain-wide "
    "delegation), give the service account's client ID {client_id} these OAuth scopes: "
    + ",".join(SCOPES)
    + "; and make {admin} an admin who may read users and groups"
)


def _google_error(content: bytes) -> tuple[str, str]:
    """(reason, message) of an error body as Google sends it."""
    try:
        error = json.loads(content.decode("utf-8", "replace")).get("error", {})
    except (ValueError, AttributeError):
        return "", content[:200].decode("utf-8", "replace")
    if not isinstance(error, dict):
        return "", str(error)[:200]
    errors = error.get("errors") or [{}]
    reason = str(errors[0].get("reason", "") if isinstance(errors[0], dict) else "")
    return reason, str(error.get("message", ""))[:300]


class GoogleSource:
    def __init__(
        self,
        config: GoogleConfig,
        service_account_key: str | None,
        mapping_overrides: dict[str, Any] | None,
        sessions: sessionmaker[Session] | None,
        directory_id: str,
        ca_bundle: str | None = None,
        allow_private_hosts: bool = False,
    ):
        self.config = config
        self.key_text = service_account_key
        self.mapping = effective_mapping("google", mapping_overrides)
        self.sessions = sessions
        self.directory_id = directory_id
        self.ca_bundle = ca_bundle
        self.allow_private_hosts = allow_private_hosts
        self.client_id = "?"
        self._directory: Any = None
        self._managers: dict[str, str | None] = {}  # lowercased email -> user id (None: no such user)

    # -- signing in ---------------------------------------------------------------------------
    def connect(self) -> None:
        if not self.key_text:
            raise SourceConfigError("the directory has no service account key")
        try:
            key = parse_service_account_key(self.key_text)
        except ValueError as exc:
            raise SourceConfigError(str(exc)) from None
        self.client_id = str(key.get("client_id") or key["client_email"])
        from dirhook.source_policy import SourceTargetRefused, check_source_targets

        try:  # where the signed assertion and the tokens go, on what the hosts resolve to now
            check_source_targets("google", self.config.model_dump(), True, False, self.allow_private_hosts)
        except SourceTargetRefused as exc:
            raise SourceConfigError(f"the directory's Google host {exc}") from None
        import google_auth_httplib2
        import httplib2
        from google.oauth2 import service_account
        from googleapiclient import discovery

        try:
            # The key file's own token_uri is not used: the directory's (checked above) is.
            credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                {**key, "token_uri": self.config.token_uri}, scopes=list(SCOPES), subject=self.config.admin_email
            )
        except ValueError as exc:  # a private key that does not parse
            raise SourceConfigError(f"the service account key cannot be used: {exc}") from None
        http = httplib2.Http(timeout=self.config.timeout_seconds, ca_certs=self.ca_bundle)
        authorized = google_auth_httplib2.AuthorizedHttp(credentials, http=http)
        self._directory = discovery.build(
            "admin",
            "directory_v1",
            http=authorized,
            static_discovery=True,
            cache_discovery=False,
            client_options={"api_endpoint": self.config.api_base_url + "/"},
        )

    def close(self) -> None:
        if self._directory is not None:
            self._directory.close()
            self._directory = None

    # -- one request ------------------------------------------------------------------------------
    def _execute(self, request: Any, what: str) -> dict[str, Any]:
        from google.auth.exceptions import RefreshError
        from googleapiclient.errors import HttpError

        try:
            out: dict[str, Any] = request.execute(num_retries=self.config.retries)
            return out
        except RefreshError as exc:
            # The token endpoint refused: unauthorized_client (no delegation, or a scope not
            # granted), invalid_grant (a deleted key, a wrong admin address)…
            raise SourceAuthError(
                f"Google refused the service account's sign-in as {self.config.admin_email} "
                f"({_first_line(exc)}): "
                + DELEGATION_FIX.format(client_id=self.client_id, admin=self.config.admin_email)
            ) from None
        except HttpError as exc:
            status = int(exc.resp.status)
            reason, message = _google_error(exc.content or b"")
            if status == 401 or (status == 403 and reason not in RATE_LIMIT_REASONS):
                raise SourceAuthError(
                    f"Google refused {what} ({status} {reason or 'forbidden'}: {message}): "
                    + DELEGATION_FIX.format(client_id=self.client_id, admin=self.config.admin_email)
                ) from None
            if status in (400, 404) and what.startswith("users.list"):
                raise SourceConfigError(f"Google refused {what} ({status} {reason}: {message})") from None
            raise SourceUnavailable(f"Google answered {status} {reason} to {what}: {message}") from None
        except SourceError:
            raise
        except Exception as exc:  # connection errors, timeouts, a cut body (after the library retried)
            raise SourceUnavailable(
                f"cannot read {what} from {self.config.api_base_url}: {type(exc).__name__}: {exc}"
            ) from None

    def _pages(self, make: Callable[[str | None], Any], what: str, key: str) -> Iterator[list[dict[str, Any]]]:
        """Every page of a listing, to the one without ``nextPageToken``."""
        token: str | None = None
        while True:
            page = self._execute(make(token), what)
            yield list(page.get(key) or [])
            token = page.get("nextPageToken")
            if not token:
                return

    # -- what a pass reads --------------------------------------------------------------------------
    def _users_pages(self, query: str | None) -> Iterator[list[dict[str, Any]]]:
        users = self._directory.users()
        return self._pages(
            lambda token: users.list(
                customer=self.config.customer,
                projection="full",
                maxResults=self.config.page_size,
                orderBy="email",
                query=query,
                pageToken=token,
            ),
            "users.list" + (f" ({query})" if query else ""),
            "users",
        )

    def _members(self, group_id: str) -> list[dict[str, Any]]:
        members = self._directory.members()
        return [
            m
            for page in self._pages(
                lambda token: members.list(groupKey=group_id, maxResults=MEMBERS_PAGE, pageToken=token),
                f"members.list of group {group_id}",
                "members",
            )
            for m in page
        ]

    def _group_objects(self) -> list[dict[str, Any]]:
        groups = self._directory.groups()
        if self.config.group_emails:
            return [
                self._execute(groups.get(groupKey=email), f"groups.get of {email}")
                for email in self.config.group_emails
            ]
        return [
            g
            for page in self._pages(
                lambda token: groups.list(customer=self.config.customer, maxResults=GROUPS_PAGE, pageToken=token),
                "groups.list",
                "groups",
            )
            for g in page
        ]

    def _groups(self, changes: Changes) -> list[SourceEntry]:
        entries, others = [], 0
        for group in self._group_objects():
            ids, other = member_ids(self._members(group["id"]))
            others += other
            entries.append(SourceEntry(ref=group["id"], attributes=group_record(group, ids)))
        if others:
            changes.notes.append(
                f"{others} group members are neither users nor groups of the account "
                "(external addresses, or the whole customer as one member): left out"
            )
        return entries

    def _stored_managers(self) -> None:
        """Users of earlier passes by address (their ids), so a manager named by email in
        ``relations`` is found without asking Google."""
        if self.sessions is None:
            return
        with self.sessions() as s:
            for username, ref in s.execute(
                select(User.attributes["username"].as_string(), User.source_ref).where(
                    User.directory_id == self.directory_id
                )
            ):
                if username and ref:
                    self._managers.setdefault(username.lower(), ref)

    def _manager_id(self, email: str) -> str | None:
        if email not in self._managers:
            from googleapiclient.errors import HttpError

            try:  # users.get takes an address as userKey; the answer is cached for the pass
                found = self._directory.users().get(userKey=email, fields="id").execute(num_retries=self.config.retries)
                self._managers[email] = str(found["id"])
            except HttpError as exc:
                if int(exc.resp.status) != 404:
                    raise SourceUnavailable(f"Google answered {exc.resp.status} to users.get of {email}") from None
                self._managers[email] = None  # no such user (an address outside the account)
        return self._managers[email]

    def _users(self, scope: set[str] | None) -> Iterator[SourceEntry]:
        self._stored_managers()
        queries: list[str | None] = [f"orgUnitPath='{ou}'" for ou in self.config.org_units] or [None]
        seen: set[str] = set()
        for query in queries:
            for page in self._users_pages(query):
                for user in page:
                    for address in [user.get("primaryEmail"), *(user.get("aliases") or [])]:
                        if address:
                            self._managers[str(address).lower()] = str(user["id"])
                pending = []
                for user in page:
                    if user["id"] in seen or (scope is not None and user["id"] not in scope):
                        continue
                    seen.add(user["id"])
                    pending.append(user)
                for user in pending:
                    boss = manager_email(user)
                    yield SourceEntry(ref=user["id"], attributes=user_record(user, boss and self._manager_id(boss)))

    # -- a pass ---------------------------------------------------------------------------------------
    def changes(self, cursor: dict[str, Any] | None, full: bool) -> Changes:
        # Every pass is a whole listing (the Directory API has no delta of users); the engine
        # emits only what differs from what is stored.
        changes = Changes(full=True, groups=iter(()), users=iter(()), next_cursor={"listed": "full"})
        groups = self._groups(changes)
        changes.groups = iter(groups)
        scope = None
        if self.config.group_emails:
            scope = {ref for e in groups for ref in e.attributes.get("members", [])}
        changes.users = self._users(scope)
        return changes

    def probe(self) -> Probe:
        """Signing in works and both kinds can be read: the first page of each is read."""
        users = self._execute(
            self._directory.users().list(customer=self.config.customer, maxResults=self.config.page_size),
            "users.list",
        )
        groups = self._execute(
            self._directory.groups().list(customer=self.config.customer, maxResults=GROUPS_PAGE), "groups.list"
        )
        more = bool(users.get("nextPageToken") or groups.get("nextPageToken"))
        found = Probe(len(users.get("users") or []), len(groups.get("groups") or []), capped=more)
        if more:
            found.notes.append("counted on Google's first page only")
        return found


def _first_line(exc: Exception) -> str:
    text = str(exc.args[0] if exc.args else exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
