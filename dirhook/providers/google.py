"""Google Workspace through the Admin SDK Directory API (google-api-python-client + google-auth).

dirhook signs in as a service account with domain-wide delegation, impersonating the admin
the directory names, with read-only scopes (``google_config.SCOPES``). The API is described
by the client library's own static discovery document (``static_discovery=True``): nothing
is fetched from Google but the token and the data.

A whole listing reads ``users.list`` (``projection=full``, for custom schemas; 500 a
page), ``groups.list`` and, for every group, ``members.list`` to its last page (200 a page:
a group of 50,000 is read whole, never truncated at its first page). The Directory API has
no delta for users, so without push notifications a pass reads the whole account and the
engine emits only real differences; deletions are what a whole listing no longer holds. A
listing that fails part-way raises before the engine decides any deletion, so nothing is
deleted on a partial listing (and deletion protection holds large drops as for every
provider).

Real time: where the API has a public https address (``DIRHOOK_PUBLIC_URL``), each pass
first makes sure Google holds the directory's push channels (users.watch, one per event, and
the Reports API's activities.watch of the admin application), opening them and replacing
those near their end. The API records what each notification names (a user id, a group's
address; dirhook/services/google_notifications.py) and starts a pass, which then reads only
those: ``users.get`` of each user (404: deleted), and, for groups, ``groups.list`` (to see
deletions) with the members of the named groups. A whole listing still runs every
``google_reconcile_seconds`` (6 hours), since Google's notifications are best effort.
Without a public address, every pass is a whole listing, on the directory's schedule.

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
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from dirhook import tokens
from dirhook.db.schema import GoogleChannel, GoogleNotification, Group, User
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
from dirhook.providers.google_push import CHANNEL_KINDS, due_for_renewal, notification_address
from dirhook.providers.google_records import group_record, manager_email, member_ids, user_record
from dirhook.providers.probe import Probe

log = logging.getLogger(__name__)

MEMBERS_PAGE = 200  # members.list's maximum
GROUPS_PAGE = 200  # groups.list's maximum
# More notified objects than this since the last pass: one whole listing is cheaper than
# reading each (and keeps the cursor's list of notifications read bounded).
NAMED_LIMIT = 2000
# 403 reasons that are quotas (retried by the library), not a refusal.
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"})

DELEGATION_FIX = (
    "in the Admin console (Security > Access and data control > API controls > Domain-wide "
    "delegation), give the service account's client ID {client_id} these OAuth scopes: "
    + ",".join(SCOPES)
    + "; and make {admin} an admin who may read users and groups"
)


class GoogleSignInRefused(SourceAuthError):
    """Google's token endpoint refused the service account: nothing else can be read either."""


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
        push_url: str | None = None,
        channel_seconds: float = 21600,
        reconcile_seconds: float = 21600,
    ):
        self.config = config
        self.push_url = push_url
        self.channel_seconds = channel_seconds
        self.reconcile_seconds = reconcile_seconds
        self.key_text = service_account_key
        self.mapping = effective_mapping("google", mapping_overrides)
        self.sessions = sessions
        self.directory_id = directory_id
        self.ca_bundle = ca_bundle
        self.allow_private_hosts = allow_private_hosts
        self.client_id = "?"
        self._directory: Any = None
        self._reports: Any = None
        self._authorized: Any = None
        self._managers: dict[str, str | None] = {}  # lowercased email -> user id (None: no such user)
        self._managers_loaded = False

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

        try:
            # The key file's own token_uri is not used: the directory's (checked above) is.
            credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                {**key, "token_uri": self.config.token_uri}, scopes=list(SCOPES), subject=self.config.admin_email
            )
        except ValueError as exc:  # a private key that does not parse
            raise SourceConfigError(f"the service account key cannot be used: {exc}") from None
        http = httplib2.Http(timeout=self.config.timeout_seconds, ca_certs=self.ca_bundle)
        self._authorized = google_auth_httplib2.AuthorizedHttp(credentials, http=http)
        self._directory = self._api("directory_v1")

    def _api(self, version: str) -> Any:
        from googleapiclient import discovery

        return discovery.build(
            "admin",
            version,
            http=self._authorized,
            static_discovery=True,
            cache_discovery=False,
            client_options={"api_endpoint": self.config.api_base_url + "/"},
        )

    def _reports_api(self) -> Any:
        if self._reports is None:
            self._reports = self._api("reports_v1")
        return self._reports

    def close(self) -> None:
        for api in (self._directory, self._reports):
            if api is not None:
                api.close()
        self._directory = self._reports = None

    # -- one request ------------------------------------------------------------------------------
    def _execute(self, request: Any, what: str, missing_ok: bool = False) -> dict[str, Any]:
        """The answer; with ``missing_ok``, {} where Google answers 404 (no such object)."""
        from google.auth.exceptions import RefreshError
        from googleapiclient.errors import HttpError

        try:
            out: dict[str, Any] = request.execute(num_retries=self.config.retries)
            return out
        except RefreshError as exc:
            # The token endpoint refused: unauthorized_client (no delegation, or a scope not
            # granted), invalid_grant (a deleted key, a wrong admin address)…
            raise GoogleSignInRefused(
                f"Google refused the service account's sign-in as {self.config.admin_email} "
                f"({_first_line(exc)}): "
                + DELEGATION_FIX.format(client_id=self.client_id, admin=self.config.admin_email)
            ) from None
        except HttpError as exc:
            status = int(exc.resp.status)
            if status == 404 and missing_ok:
                return {}
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
        ``relations`` is found without asking Google (read once, when a manager is first
        not found among this pass's users)."""
        self._managers_loaded = True
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
        if email not in self._managers and not self._managers_loaded:
            self._stored_managers()
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
        cursor = cursor or {}
        now = time.time()
        notes: list[str] = []
        pushing = self._maintain_channels(now, notes) if self.push_url and self.sessions else False
        # Notifications are forgotten by the ids a committed pass read, never by a range: on
        # PostgreSQL a row can commit after one with a higher id (sequences are handed out
        # before commit), and would fall under a "read up to" mark unread.
        if cursor.get("notifications_read"):
            self._forget_notifications([int(i) for i in cursor["notifications_read"]])
        pending = self._pending_notifications(NAMED_LIMIT + 1) if self.sessions is not None else []
        read = [row_id for row_id, _kind, _key in pending]
        listed_at = float(cursor.get("listed_at", 0))
        named: tuple[set[str], set[str]] | None = None
        # Only what was named, when the last pass also held every channel (else a change
        # made before they opened was never notified), a whole listing is recent enough,
        # and there are not so many that a listing is cheaper.
        if (
            not full
            and pushing
            and cursor.get("pushing")
            and now - listed_at < self.reconcile_seconds
            and len(pending) <= NAMED_LIMIT
        ):
            named = (
                {key for _i, kind, key in pending if kind == "user"},
                {key for _i, kind, key in pending if kind == "group"},
            )
            if named[1] and self.config.group_emails:
                named = None  # a scope by groups: who is in it is a whole listing's question
        if named is None:  # (it reads all those notifications named too)
            changes = self._whole({"listed_at": now, "pushing": pushing, "notifications_read": read})
        else:
            changes = self._named(*named, {"listed_at": listed_at, "pushing": pushing, "notifications_read": read})
        changes.notes += notes
        return changes

    def _whole(self, cursor: dict[str, Any]) -> Changes:
        # The Directory API has no delta of users: a whole listing, of which the engine emits
        # only what differs from what is stored.
        changes = Changes(full=True, groups=iter(()), users=iter(()), next_cursor=cursor)
        groups = self._groups(changes)
        changes.groups = iter(groups)
        scope = None
        if self.config.group_emails:
            scope = {ref for e in groups for ref in e.attributes.get("members", [])}
        changes.users = self._users(scope)
        return changes

    def _named(self, user_ids: set[str], group_emails: set[str], cursor: dict[str, Any]) -> Changes:
        """Only what notifications named: each user read by itself, and the named groups with
        their members (groups.list, cheap, tells which groups are gone)."""
        changes = Changes(full=False, groups=iter(()), users=iter(()), next_cursor=cursor)
        if group_emails:
            objects = self._group_objects()
            present = {str(g["id"]) for g in objects}
            changes.deleted_group_ids = self._stored_group_ids() - present
            entries, others = [], 0
            for group in objects:
                addresses = {str(group.get("email", "")).lower(), *(a.lower() for a in group.get("aliases") or [])}
                if addresses & group_emails:
                    ids, other = member_ids(self._members(group["id"]))
                    others += other
                    entries.append(SourceEntry(ref=group["id"], attributes=group_record(group, ids)))
            changes.groups = iter(entries)
        changes.users = self._named_users(sorted(user_ids), changes)
        return changes

    def _named_users(self, user_ids: list[str], changes: Changes) -> Iterator[SourceEntry]:
        in_scope = self._stored_user_ids() if self.config.group_emails else None
        for uid in user_ids:
            user = self._execute(
                self._directory.users().get(userKey=uid, projection="full"), f"users.get of {uid}", missing_ok=True
            )
            if not user:  # deleted (or never there)
                changes.deleted_user_ids.add(uid)
                continue
            if not self._in_org_units(user) or (in_scope is not None and uid not in in_scope):
                if in_scope is None:  # moved out of the org units: gone from the directory
                    changes.deleted_user_ids.add(uid)
                continue
            boss = manager_email(user)
            yield SourceEntry(ref=uid, attributes=user_record(user, boss and self._manager_id(boss)))

    def _in_org_units(self, user: dict[str, Any]) -> bool:
        if not self.config.org_units:
            return True
        path = str(user.get("orgUnitPath") or "/").rstrip("/") + "/"
        return any(ou == "/" or path.startswith(ou.rstrip("/") + "/") for ou in self.config.org_units)

    # -- what is stored ------------------------------------------------------------------------------
    def _stored_group_ids(self) -> set[str]:
        assert self.sessions is not None
        with self.sessions() as s:
            return set(s.scalars(select(Group.external_id).where(Group.directory_id == self.directory_id)))

    def _stored_user_ids(self) -> set[str]:
        assert self.sessions is not None
        with self.sessions() as s:
            return set(s.scalars(select(User.external_id).where(User.directory_id == self.directory_id)))

    def _pending_notifications(self, limit: int) -> list[tuple[int, str, str]]:
        """(id, "user" | "group", key) of what notifications named and no committed pass read."""
        assert self.sessions is not None
        with self.sessions() as s:
            rows = s.execute(
                select(GoogleNotification.id, GoogleNotification.kind, GoogleNotification.object_key)
                .where(GoogleNotification.directory_id == self.directory_id)
                .order_by(GoogleNotification.id)
                .limit(limit)
            )
            return [(int(i), str(kind), str(key)) for i, kind, key in rows]

    def _forget_notifications(self, ids: list[int]) -> None:
        """Those a committed pass read (its cursor lists them)."""
        assert self.sessions is not None
        with self.sessions.begin() as s:
            s.execute(
                delete(GoogleNotification).where(
                    GoogleNotification.directory_id == self.directory_id, GoogleNotification.id.in_(ids)
                )
            )

    # -- push channels ---------------------------------------------------------------------------------
    def _maintain_channels(self, now: float, notes: list[str]) -> bool:
        """Every channel open and not near its end; True when all are. A channel Google
        refuses is noted on the pass, which then lists the whole account (polling)."""
        assert self.sessions is not None and self.push_url
        with self.sessions.begin() as s:
            # A row without a resource id is a watch a crashed pass never saw answered (passes
            # of a directory run one at a time): not a channel to count on.
            s.execute(
                delete(GoogleChannel).where(
                    GoogleChannel.directory_id == self.directory_id, GoogleChannel.resource_id == ""
                )
            )
            held = {
                # SQLite hands datetimes back without their zone: they are UTC
                c.kind: (c.channel_id, c.resource_id, c.expires_at.replace(tzinfo=UTC).timestamp())
                for c in s.scalars(select(GoogleChannel).where(GoogleChannel.directory_id == self.directory_id))
            }
        ok = True
        for kind in CHANNEL_KINDS:
            old = held.get(kind)
            if old and not due_for_renewal(old[2], now, self.channel_seconds):
                continue
            # The row first: Google may notify before watch() has even answered, and an
            # unknown channel is refused (404).
            channel_id, token = str(uuid.uuid4()), tokens.new_secret()
            with self.sessions.begin() as s:
                s.add(
                    GoogleChannel(
                        channel_id=channel_id,
                        directory_id=self.directory_id,
                        kind=kind,
                        resource_id="",
                        token_digest=tokens.digest(token),
                        expires_at=datetime.fromtimestamp(now + self.channel_seconds, UTC),
                    )
                )
            try:
                resource_id, expires = self._watch(kind, channel_id, token, now)
            except SourceError as exc:
                with self.sessions.begin() as s:
                    s.execute(delete(GoogleChannel).where(GoogleChannel.channel_id == channel_id))
                if isinstance(exc, GoogleSignInRefused):
                    raise
                notes.append(f"Google refused the push channel {kind} ({exc}); this pass lists everything")
                ok = False
                continue
            with self.sessions.begin() as s:
                opened = s.get(GoogleChannel, channel_id)
                assert opened is not None
                opened.resource_id, opened.expires_at = resource_id, datetime.fromtimestamp(expires, UTC)
                if old:
                    s.execute(delete(GoogleChannel).where(GoogleChannel.channel_id == old[0]))
            if old:
                self.stop_channel(kind, old[0], old[1])
        return ok

    def _watch(self, kind: str, channel_id: str, token: str, now: float) -> tuple[str, float]:
        """Opens the channel; its resource id and when it ends (Google may shorten it)."""
        assert self.push_url
        body = {
            "id": channel_id,
            "type": "web_hook",
            "address": notification_address(self.push_url, self.directory_id),
            "token": token,
            "expiration": str(int((now + self.channel_seconds) * 1000)),
        }
        if kind.startswith("users."):
            request = self._directory.users().watch(customer=self.config.customer, event=kind[6:], body=body)
        else:
            request = self._reports_api().activities().watch(userKey="all", applicationName="admin", body=body)
        opened = self._execute(request, f"{kind} watch")
        return str(opened["resourceId"]), int(opened.get("expiration") or body["expiration"]) / 1000

    def stop_channel(self, kind: str, channel_id: str, resource_id: str) -> None:
        """Best effort: a channel Google no longer knows (expired) is not an error."""
        api = self._directory if kind.startswith("users.") else self._reports_api()
        try:
            api.channels().stop(body={"id": channel_id, "resourceId": resource_id}).execute(num_retries=1)
        except Exception as exc:
            log.info("could not stop Google channel %s: %s", channel_id, type(exc).__name__)

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
