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

Real time (``DIRHOOK_PUBLIC_URL``): each pass first makes sure Google holds the directory's
push channels (google_push_state.PushState); notifications the API recorded name users and
groups (dirhook/services/google_notifications.py), and the next pass reads only those:
``users.get`` of each (404: deleted), ``groups.list`` (for deletions) with the members of
the named groups. A whole listing still runs every ``google_reconcile_seconds``.

Quotas and faults: the client library retries quotas and 5xx with backoff and jitter
(``execute(num_retries=…)``); what it gives up on becomes dirhook's error in google_errors.

The libraries are imported when a Google directory is synced, never at module import (as
msgraph is): a worker serving only LDAP directories does not load them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dirhook.db.schema import Group, User
from dirhook.normalize import effective_mapping
from dirhook.providers.base import (
    Changes,
    SourceConfigError,
    SourceEntry,
    SourceError,
    SourceUnavailable,
)
from dirhook.providers.google_config import SCOPES, GoogleConfig, parse_service_account_key
from dirhook.providers.google_errors import GoogleSignInRefused, http_refusal, sign_in_refused
from dirhook.providers.google_push import notification_address
from dirhook.providers.google_push_state import ChannelRefused, PushState
from dirhook.providers.google_records import group_record, in_org_units, manager_email, member_ids, user_record
from dirhook.providers.probe import Probe
from dirhook.providers.stored import external_ids

log = logging.getLogger(__name__)

MEMBERS_PAGE = 200  # members.list's maximum
GROUPS_PAGE = 200  # groups.list's maximum
# More notified objects than this since the last pass: one whole listing is cheaper than
# reading each (and keeps the cursor's list of notifications read bounded).
NAMED_LIMIT = 2000


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
            raise sign_in_refused(exc, self.client_id, self.config.admin_email) from None
        except HttpError as exc:
            status = int(exc.resp.status)
            if status == 404 and missing_ok:
                return {}
            raise http_refusal(status, exc.content or b"", what, self.client_id, self.config.admin_email) from None
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
        if email not in self._managers:  # users.get takes an address; the answer is cached for the pass
            found = self._execute(
                self._directory.users().get(userKey=email, fields="id"), f"users.get of {email}", missing_ok=True
            )
            self._managers[email] = str(found["id"]) if found else None  # None: an address outside the account
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
        state = PushState(self.sessions, self.directory_id) if self.sessions is not None else None
        pushing = bool(
            self.push_url and state and state.maintain(now, self.channel_seconds, self._watch, self.stop_channel, notes)
        )
        if state and cursor.get("notifications_read"):
            state.forget([int(i) for i in cursor["notifications_read"]])
        pending = state.pending(NAMED_LIMIT + 1) if state else []
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
            assert self.sessions is not None
            changes.deleted_group_ids = external_ids(self.sessions, self.directory_id, Group) - present
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
        in_scope = None
        if self.config.group_emails:
            assert self.sessions is not None
            in_scope = external_ids(self.sessions, self.directory_id, User)
        for uid in user_ids:
            user = self._execute(
                self._directory.users().get(userKey=uid, projection="full"), f"users.get of {uid}", missing_ok=True
            )
            if not user:  # deleted (or never there)
                changes.deleted_user_ids.add(uid)
                continue
            if not in_org_units(user, self.config.org_units) or (in_scope is not None and uid not in in_scope):
                if in_scope is None:  # moved out of the org units: gone from the directory
                    changes.deleted_user_ids.add(uid)
                continue
            boss = manager_email(user)
            yield SourceEntry(ref=uid, attributes=user_record(user, boss and self._manager_id(boss)))

    # -- push channels ---------------------------------------------------------------------------------
    def _watch(self, kind: str, channel_id: str, token: str) -> tuple[str, float]:
        """Opens the channel; its resource id and when it ends (Google may shorten it). A
        refused sign-in stops the pass; any other refusal is the channel's alone."""
        assert self.push_url
        now = time.time()
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
        try:
            opened = self._execute(request, f"{kind} watch")
        except GoogleSignInRefused:
            raise
        except SourceError as exc:
            raise ChannelRefused(str(exc)) from None
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
