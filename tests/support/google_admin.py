"""A local Google Admin SDK for the Google Workspace tests: the Directory API's users, groups
and members, and Google's OAuth 2.0 token endpoint for service accounts, over HTTPS (a CA
made for the test run, shared with the local Graph).

What it answers, as Google documents it (developers.google.com/admin-sdk/directory:
"users.list", "groups.list", "members.list", "Directory API: Limits and Quotas", "Error
codes"; developers.google.com/identity/protocols/oauth2/service-account):
- The token endpoint takes `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` and an
  `assertion`: a JWT signed RS256 by the service account's key (`kid` its private_key_id)
  with `iss` the account's email, `sub` the user it impersonates, `aud` always
  `https://oauth2.googleapis.com/token` (wherever the request goes),
  `scope` the scopes (space-separated), `iat`/`exp` at most an hour apart. Scopes the admin
  did not delegate to the account's client ID: `401 {"error": "unauthorized_client",
  "error_description": "Client is unauthorized to retrieve access tokens using this method,
  or client not authorized for any of the scopes requested."}`. A bad signature:
  `400 invalid_grant` ("Invalid JWT Signature.").
- `GET /admin/directory/v1/users?customer=my_customer&maxResults≤500&pageToken&query`:
  `{"kind": "admin#directory#users", "users": [...], "nextPageToken": …}` (no
  nextPageToken on the last page; no `users` key on an empty one); `query` takes
  `orgUnitPath='/Sales'` (sub-units included). `GET …/users/{userKey}` by id or address.
- `GET …/groups?customer…&maxResults≤200`, `GET …/groups/{groupKey}`,
  `GET …/groups/{groupKey}/members?maxResults≤200` (members of type USER, GROUP, CUSTOMER).
- Errors are `{"error": {"code", "message", "errors": [{"domain", "reason", "message"}],
  "status"}}`: 401 `authError` without a valid token; 403 `userRateLimitExceeded` for a
  quota (what `quota_errors` asks for); 404 `notFound`; 400 `invalidInput` for a maxResults
  over the maximum.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import secrets
import ssl
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.support.ports import free_port
from tests.support.tls import TestPKI

USER_EVENTS = ("add", "delete", "makeAdmin", "undelete", "update")

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
AUDIENCE = "https://oauth2.googleapis.com/token"
UNAUTHORIZED_CLIENT = (
    "Client is unauthorized to retrieve access tokens using this method, or client not authorized "
    "for any of the scopes requested."
)


def _part(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _error(status: int, reason: str, message: str, state: str) -> web.Response:
    body = {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": state,
        }
    }
    return web.json_response(body, status=status)


@dataclass
class Account:
    """One Workspace account: its service account (key, delegated scopes), users, groups."""

    domain: str = field(default_factory=lambda: f"ws{secrets.token_hex(3)}.example.com")
    customer_id: str = field(default_factory=lambda: "C0" + secrets.token_hex(4))
    admins: set[str] = field(default_factory=set)
    delegated_scopes: set[str] | None = None  # None: every scope asked for
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    members: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # group id -> member id -> member
    quota_errors: int = 0  # the next N Directory API requests answer 403 userRateLimitExceeded
    # (users.list page number from 0, fault): "503" answers 503 from that page on; "cut" sends
    # half of that page and closes the connection.
    users_page_fault: tuple[int, str] | None = None
    requests: list[tuple[float, int, str]] = field(default_factory=list)  # (monotonic, status, path)
    token_requests: list[dict[str, Any]] = field(default_factory=list)  # the assertions' claims
    # Push channels Google holds for this account: channel id -> the channel (users.watch's
    # with its event, activities.watch's with "activities").
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    notifications: list[tuple[float, int, str]] = field(default_factory=list)  # (monotonic, status, state)
    emit: Callable[[Account, str, str, dict[str, Any]], None] | None = None  # set by the server
    _next_id: int = 100000000000000000000
    _ids_by_email: dict[str, str] = field(default_factory=dict)  # put_user's lookup (a bench makes 50,000)

    def __post_init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key_id = secrets.token_hex(20)
        self.client_email = f"dirhook@project-{secrets.token_hex(3)}.iam.gserviceaccount.com"
        self.client_id = str(100000000000000000000 + secrets.randbelow(10**20))
        self.admin = f"admin@{self.domain}"
        self.admins.add(self.admin)

    def key_json(self, token_uri: str = "https://oauth2.googleapis.com/token") -> str:
        """The key file as the Cloud console downloads it."""
        pem = self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        return json.dumps(
            {
                "type": "service_account",
                "project_id": self.client_email.split("@")[1].split(".")[0],
                "private_key_id": self.key_id,
                "private_key": pem,
                "client_email": self.client_email,
                "client_id": self.client_id,
                "auth_uri": "https://accounts.google.com/o/oauth2/auth",
                "token_uri": token_uri,
                "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
                "universe_domain": "googleapis.com",
            }
        )

    def check_assertion(self, assertion: str, audience: str) -> tuple[dict[str, Any] | None, str]:
        """The claims of a valid assertion, or None and why."""
        try:
            head, body, signature = assertion.split(".")
            header, claims = json.loads(_part(head)), json.loads(_part(body))
            self._key.public_key().verify(
                _part(signature), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except Exception:
            return None, "Invalid JWT Signature."
        now = time.time()
        if header.get("alg") != "RS256" or header.get("kid") != self.key_id:
            return None, "Invalid JWT Signature."
        if claims.get("iss") != self.client_email or claims.get("aud") != audience:
            return None, "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe."
        if not (claims.get("iat", 0) - 300 <= now <= claims.get("exp", 0)) or claims["exp"] - claims["iat"] > 3600:
            return None, "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe."
        return claims, ""

    # -- what a test does to the account -------------------------------------------------------------
    def _new_id(self) -> str:
        self._next_id += 1 + secrets.randbelow(1000)
        return str(self._next_id)

    def put_user(self, primary_email: str, **props: Any) -> str:
        """Creates (or, with id=…, replaces fields of) a user; returns its id."""
        uid = props.pop("id", None) or self._ids_by_email.get(primary_email)
        user = self.users.get(uid) if uid else None
        event = "update" if user is not None else "add"
        if user is None:
            uid = self._new_id()
            user = {
                "kind": "admin#directory#user",
                "id": uid,
                "primaryEmail": primary_email,
                "isAdmin": False,
                "suspended": False,
                "archived": False,
                "orgUnitPath": "/",
                "creationTime": "2026-01-05T10:00:00.000Z",
                "customerId": self.customer_id,
            }
            self.users[uid] = user
        self._ids_by_email.pop(user["primaryEmail"], None)
        user.update(props, primaryEmail=primary_email)
        self._ids_by_email[primary_email] = str(uid)
        name = user.setdefault("name", {})
        name["fullName"] = f"{name.get('givenName', '')} {name.get('familyName', '')}".strip()
        user["emails"] = [{"address": primary_email, "primary": True}] + [
            e for e in user.get("emails", []) if e.get("address") != primary_email
        ]
        user["etag"] = f'"{secrets.token_urlsafe(8)}"'
        user["lastLoginTime"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())  # as a sign-in moves it
        self._user_event(event, user)
        return str(uid)

    def delete_user(self, uid: str) -> None:
        user = self.users.pop(uid)
        self._ids_by_email.pop(user["primaryEmail"], None)
        for members in self.members.values():
            members.pop(uid, None)
        self._user_event("delete", user)

    def _user_event(self, event: str, user: dict[str, Any]) -> None:
        # users.watch's body: the user resource, as its kind, id, etag and primaryEmail.
        if self.emit:
            body = {k: user[k] for k in ("kind", "id", "etag", "primaryEmail")}
            self.emit(self, f"users.{event}", event, body)

    def _admin_event(self, name: str, **parameters: str) -> None:
        # activities.watch's body: one activity of the admin application.
        if self.emit:
            body = {
                "kind": "admin#reports#activity",
                "id": {
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                    "uniqueQualifier": str(secrets.randbits(62)),
                    "applicationName": "admin",
                    "customerId": self.customer_id,
                },
                "actor": {"email": self.admin, "profileId": "1"},
                "events": [
                    {
                        "type": "GROUP_SETTINGS",
                        "name": name,
                        "parameters": [{"name": k, "value": v} for k, v in parameters.items()],
                    }
                ],
            }
            self.emit(self, "activities", name.lower(), body)

    def put_group(self, email: str, name: str, description: str = "") -> str:
        gid = next((g["id"] for g in self.groups.values() if g["email"] == email), None) or self._new_id()
        self.groups[gid] = {
            "kind": "admin#directory#group",
            "id": gid,
            "email": email,
            "name": name,
            "description": description,
            "adminCreated": True,
            "etag": f'"{secrets.token_urlsafe(8)}"',
        }
        created = gid not in self.members
        self.members.setdefault(gid, {})
        self._admin_event("CREATE_GROUP" if created else "CHANGE_GROUP_NAME", GROUP_EMAIL=email)
        return gid

    def delete_group(self, gid: str) -> None:
        group = self.groups.pop(gid)
        del self.members[gid]
        for members in self.members.values():
            members.pop(gid, None)
        self._admin_event("DELETE_GROUP", GROUP_EMAIL=group["email"])

    def add_member(self, group_id: str, member_id: str) -> None:
        if member_id in self.users:
            email, kind = self.users[member_id]["primaryEmail"], "USER"
        elif member_id in self.groups:
            email, kind = self.groups[member_id]["email"], "GROUP"
        else:
            email, kind = "", "CUSTOMER"
        self.members[group_id][member_id] = {
            "kind": "admin#directory#member",
            "etag": f'"{secrets.token_urlsafe(8)}"',
            "id": member_id,
            "email": email,
            "role": "MEMBER",
            "type": kind,
            "status": "ACTIVE",
        }
        self._admin_event("ADD_GROUP_MEMBER", USER_EMAIL=email, GROUP_EMAIL=self.groups[group_id]["email"])

    def remove_member(self, group_id: str, member_id: str) -> None:
        member = self.members[group_id].pop(member_id)
        self._admin_event("REMOVE_GROUP_MEMBER", USER_EMAIL=member["email"], GROUP_EMAIL=self.groups[group_id]["email"])

    def find_user(self, key: str) -> dict[str, Any] | None:
        if key in self.users:
            return self.users[key]
        return next(
            (u for u in self.users.values() if key.lower() in [u["primaryEmail"].lower(), *u.get("aliases", [])]), None
        )

    def find_group(self, key: str) -> dict[str, Any] | None:
        return self.groups.get(key) or next((g for g in self.groups.values() if g["email"] == key.lower()), None)


class AdminSdkServer:
    """Serves any number of accounts: a request belongs to the account its token came from."""

    def __init__(self, pki: TestPKI | None = None):
        self.accounts: list[Account] = []
        self.by_token: dict[str, Account] = {}
        self.port = free_port()
        self.pki = pki or TestPKI(Path(tempfile.mkdtemp(prefix="google-")))
        self.ca_bundle, self._ssl = self.pki.ca_bundle, self.pki.server_context()
        self._runner: web.AppRunner | None = None
        self._client: ClientSession | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self.max_channel_seconds = 21600  # a channel lives 6 hours at most; asked for longer, it gets that

    def new_account(self) -> Account:
        account = Account(emit=self._emit)
        self.accounts.append(account)
        return account

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/token", self._token)
        v1 = "/admin/directory/v1"
        app.router.add_get(f"{v1}/users", self._authorized(self._users))
        app.router.add_get(v1 + "/users/{key}", self._authorized(self._user))
        app.router.add_get(f"{v1}/groups", self._authorized(self._groups))
        app.router.add_get(v1 + "/groups/{key}", self._authorized(self._group))
        app.router.add_get(v1 + "/groups/{key}/members", self._authorized(self._members))
        app.router.add_post(f"{v1}/users/watch", self._authorized(self._watch_users))
        app.router.add_post(
            "/admin/reports/v1/activity/users/{user}/applications/{app}/watch", self._authorized(self._watch_activities)
        )
        app.router.add_post("/admin/directory_v1/channels/stop", self._authorized(self._stop))
        app.router.add_post("/admin/reports_v1/channels/stop", self._authorized(self._stop))
        context = ssl.create_default_context(cafile=str(self.ca_bundle))
        self._client = ClientSession(connector=TCPConnector(ssl=context), timeout=ClientTimeout(total=10))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self._ssl).start()

    async def stop(self) -> None:
        if self._sending:
            await asyncio.wait(self._sending, timeout=10)
        if self._client:
            await self._client.close()
        if self._runner:
            await self._runner.cleanup()

    # -- the token endpoint ---------------------------------------------------------------------------
    async def _token(self, request: web.Request) -> web.Response:
        form = {k: v[0] for k, v in parse_qs((await request.read()).decode()).items()}
        if form.get("grant_type") != JWT_BEARER or "assertion" not in form:
            return web.json_response(
                {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"}, 400
            )
        try:
            claims = json.loads(_part(form["assertion"].split(".")[1]))
        except Exception:
            return web.json_response({"error": "invalid_grant", "error_description": "Invalid JWT."}, status=400)
        account = next((a for a in self.accounts if a.client_email == claims.get("iss")), None)
        if account is None:
            return web.json_response(
                {"error": "invalid_grant", "error_description": "Invalid grant: account not found"}, 400
            )
        account.token_requests.append(claims)
        checked, why = account.check_assertion(form["assertion"], AUDIENCE)
        if checked is None:
            return web.json_response({"error": "invalid_grant", "error_description": why}, status=400)
        asked = set(str(checked.get("scope", "")).split())
        if checked.get("sub") not in account.admins or (
            account.delegated_scopes is not None and not asked <= account.delegated_scopes
        ):
            return web.json_response(
                {"error": "unauthorized_client", "error_description": UNAUTHORIZED_CLIENT}, status=401
            )
        token = "ya29." + secrets.token_urlsafe(32)
        self.by_token[token] = account
        return web.json_response({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    # -- the Directory API ------------------------------------------------------------------------------
    def _authorized(self, handler: Callable[[web.Request, Account], Any]) -> Callable[[web.Request], Any]:
        async def serve(request: web.Request) -> web.StreamResponse:
            auth = request.headers.get("authorization", "")
            account = self.by_token.get(auth.removeprefix("Bearer ")) if auth.startswith("Bearer ") else None
            if account is None:
                return _error(
                    401,
                    "authError",
                    "Request had invalid authentication credentials. Expected OAuth 2 access token.",
                    "UNAUTHENTICATED",
                )
            if account.quota_errors > 0:
                account.quota_errors -= 1
                response = _error(
                    403,
                    "userRateLimitExceeded",
                    "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user'",
                    "PERMISSION_DENIED",
                )
            else:
                response = await handler(request, account)
            account.requests.append((time.monotonic(), response.status, request.path_qs))
            return response

        return serve

    @staticmethod
    def _page(
        request: web.Request, items: list[dict[str, Any]], maximum: int, default: int
    ) -> tuple[list, str | None, int]:
        """The page the request asks for, the next page's token, and its number (from 0)."""
        size = int(request.query.get("maxResults", default))
        if not 1 <= size <= maximum:
            invalid = _error(400, "invalidInput", "Invalid Input: maxResults", "INVALID_ARGUMENT")
            raise web.HTTPBadRequest(text=invalid.text, content_type="application/json")
        start = int(_part(request.query["pageToken"]).decode()) if request.query.get("pageToken") else 0
        end = start + size
        token = base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(items) else None
        return items[start:end], token, start // size

    async def _users(self, request: web.Request, account: Account) -> web.StreamResponse:
        if request.query.get("customer") not in ("my_customer", account.customer_id):
            return _error(400, "badRequest", "Bad Request", "INVALID_ARGUMENT")
        users = sorted(account.users.values(), key=lambda u: u["primaryEmail"])
        query = request.query.get("query", "")
        if query.startswith("orgUnitPath='") and query.endswith("'"):
            path = query[len("orgUnitPath='") : -1]
            users = [u for u in users if path == "/" or (u["orgUnitPath"] + "/").startswith(path.rstrip("/") + "/")]
        page, token, number = self._page(request, users, 500, 100)
        fault = account.users_page_fault
        if fault and number >= fault[0]:
            if fault[1] == "503":
                return _error(503, "backendError", "The service is currently unavailable.", "UNAVAILABLE")
            whole = json.dumps({"kind": "admin#directory#users", "users": page, "nextPageToken": token}).encode()
            response = web.StreamResponse(headers={"content-type": "application/json; charset=UTF-8"})
            response.content_length = len(whole)
            await response.prepare(request)
            await response.write(whole[: len(whole) // 2])
            request.transport.close()  # the connection drops half-way through the page
            return response
        body: dict[str, Any] = {"kind": "admin#directory#users", "etag": '"e"'}
        if page:
            body["users"] = [self._projected(u, request.query.get("projection", "basic")) for u in page]
        if token:
            body["nextPageToken"] = token
        return web.json_response(body)

    @staticmethod
    def _projected(user: dict[str, Any], projection: str) -> dict[str, Any]:
        # projection=basic leaves custom schemas out (the documented default).
        return user if projection == "full" else {k: v for k, v in user.items() if k != "customSchemas"}

    async def _user(self, request: web.Request, account: Account) -> web.StreamResponse:
        user = account.find_user(request.match_info["key"])
        if user is None:
            return _error(404, "notFound", "Resource Not Found: userKey", "NOT_FOUND")
        fields = request.query.get("fields")
        return web.json_response({k: user[k] for k in fields.split(",") if k in user} if fields else user)

    async def _groups(self, request: web.Request, account: Account) -> web.StreamResponse:
        groups = sorted(account.groups.values(), key=lambda g: g["email"])
        page, token, _number = self._page(request, groups, 200, 200)
        body: dict[str, Any] = {"kind": "admin#directory#groups", "etag": '"e"'}
        if page:
            body["groups"] = [{**g, "directMembersCount": str(len(account.members[g["id"]]))} for g in page]
        if token:
            body["nextPageToken"] = token
        return web.json_response(body)

    async def _group(self, request: web.Request, account: Account) -> web.StreamResponse:
        group = account.find_group(request.match_info["key"])
        if group is None:
            return _error(404, "notFound", "Resource Not Found: groupKey", "NOT_FOUND")
        return web.json_response({**group, "directMembersCount": str(len(account.members[group["id"]]))})

    async def _members(self, request: web.Request, account: Account) -> web.StreamResponse:
        group = account.find_group(request.match_info["key"])
        if group is None:
            return _error(404, "notFound", "Resource Not Found: groupKey", "NOT_FOUND")
        members = sorted(account.members[group["id"]].values(), key=lambda m: m["id"])
        page, token, _number = self._page(request, members, 200, 200)
        body: dict[str, Any] = {"kind": "admin#directory#members", "etag": '"e"'}
        if page:
            body["members"] = page
        if token:
            body["nextPageToken"] = token
        return web.json_response(body)

    # -- push channels ---------------------------------------------------------------------------------
    async def _watch(self, request: web.Request, account: Account, kind: str, resource_uri: str) -> web.Response:
        """A watch request (developers.google.com/admin-sdk/directory/v1/guides/push): the
        channel in the body, an HTTPS address, its expiration capped; a `sync` message first."""
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "parseError", "Parse Error", "INVALID_ARGUMENT")
        address = str(body.get("address", ""))
        if body.get("type") not in ("web_hook", "webhook") or not body.get("id"):
            return _error(400, "invalid", "Invalid channel: type and id are required", "INVALID_ARGUMENT")
        if not address.startswith("https://"):
            return _error(
                400, "push.webhookUrlNotHttps", f"WebHook callback must be HTTPS: {address}", "INVALID_ARGUMENT"
            )
        if body["id"] in account.channels:
            return _error(400, "channelIdNotUnique", f"Channel id {body['id']} not unique", "INVALID_ARGUMENT")
        cap = int((time.time() + self.max_channel_seconds) * 1000)
        expiration = min(int(body.get("expiration") or cap), cap)
        channel = {
            "kind": "api#channel",
            "id": body["id"],
            "resourceId": secrets.token_urlsafe(20),
            "resourceUri": resource_uri,
            "token": body.get("token"),
            "expiration": str(expiration),
            "address": address,
            "watching": kind,
            "number": 0,
        }
        account.channels[body["id"]] = channel
        # The `sync` message reaches the address before this answer does (the order Google
        # does not promise either way; this is the harder one for a receiver).
        await asyncio.wait_for(self._send(account, channel, "sync", None), 15)
        return web.json_response({k: v for k, v in channel.items() if k not in ("address", "watching", "number")})

    async def _watch_users(self, request: web.Request, account: Account) -> web.Response:
        event = request.query.get("event", "")
        if event not in USER_EVENTS:
            return _error(400, "invalidParameter", f"Invalid value for event: {event}", "INVALID_ARGUMENT")
        uri = f"{self.base_url}/admin/directory/v1/users?customer=my_customer&event={event}&alt=json"
        return await self._watch(request, account, f"users.{event}", uri)

    async def _watch_activities(self, request: web.Request, account: Account) -> web.Response:
        if request.match_info["app"] != "admin" or request.match_info["user"] != "all":
            return _error(
                400, "invalid", "this local Admin SDK watches applications/admin of users/all", "INVALID_ARGUMENT"
            )
        uri = f"{self.base_url}/admin/reports/v1/activity/users/all/applications/admin?alt=json"
        return await self._watch(request, account, "activities", uri)

    async def _stop(self, request: web.Request, account: Account) -> web.Response:
        body = await request.json()
        channel = account.channels.get(body.get("id", ""))
        if channel is None or channel["resourceId"] != body.get("resourceId"):
            return _error(404, "notFound", f"Channel '{body.get('id')}' not found for project", "NOT_FOUND")
        del account.channels[channel["id"]]
        return web.Response(status=204)

    def _emit(self, account: Account, watching: str, state: str, body: dict[str, Any]) -> None:
        now = time.time() * 1000
        for channel in list(account.channels.values()):
            if channel["watching"] == watching and int(channel["expiration"]) > now:
                self._send(account, channel, state, body)

    def _send(
        self, account: Account, channel: dict[str, Any], state: str, body: dict[str, Any] | None
    ) -> asyncio.Task[None]:
        """A notification as Google sends it: POST to the channel's address, its headers, the
        resource (none for `sync`); best effort, as Google's are."""
        channel["number"] += 1
        headers = {
            "X-Goog-Channel-ID": channel["id"],
            "X-Goog-Channel-Expiration": email.utils.formatdate(int(channel["expiration"]) / 1000, usegmt=True),
            "X-Goog-Resource-ID": channel["resourceId"],
            "X-Goog-Resource-URI": channel["resourceUri"],
            "X-Goog-Resource-State": state,
            "X-Goog-Message-Number": str(channel["number"]),
        }
        if channel.get("token"):
            headers["X-Goog-Channel-Token"] = channel["token"]
        if body is not None:
            headers["Content-Type"] = "application/json; charset=UTF-8"

        async def post() -> None:
            assert self._client is not None
            try:
                data = json.dumps(body).encode() if body is not None else b""
                async with self._client.post(channel["address"], data=data, headers=headers) as r:
                    account.notifications.append((time.monotonic(), r.status, state))
            except Exception:
                account.notifications.append((time.monotonic(), 0, state))

        task = asyncio.get_running_loop().create_task(post())
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
        return task
