"""A local Microsoft Graph for the Entra tests: the documented delta API of users and
groups, and the v2.0 token endpoint of the Microsoft identity platform, over HTTPS (a CA
made for the test run: azure-identity accepts only https authorities).

What it answers, as Graph documents it (learn.microsoft.com, "user: delta",
"group: delta", "Use delta query to track changes", "Microsoft Graph throttling"):
- The first round is `GET /v1.0/users/delta()` (with the parentheses the SDK sends)
  with `$select` (and `$expand=manager`); each page but the last carries
  `@odata.nextLink`, the last `@odata.deltaLink`. A page holds `value: [...]`.
- A round from a deltaLink returns the objects changed since, with every selected
  property (changed or not; never-set ones left out). Removed objects come as
  `{"id": …, "@removed": {"reason": "changed"}}` (soft-deleted: restorable 30 days) or
  `"deleted"` (permanent).
- Groups carry `members@delta`: all members in the first round, then only the changes,
  removals with `"@removed": {"reason": "deleted"}`.
- An invalid or expired token: `410 Gone` with error code `resyncRequired`.
- Throttling: `429 Too Many Requests` with `Retry-After` (seconds) and error code
  `TooManyRequests`.
- Without a valid bearer token: `401` with `InvalidAuthenticationToken`.
- The token endpoint: `POST /{tenant}/oauth2/v2.0/token`, form
  `grant_type=client_credentials&client_id&client_secret&scope`; a wrong secret is
  `401 {"error": "invalid_client", "error_description": "AADSTS7000215: …"}`.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
import secrets
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tests.support.ports import free_port
from tests.support.tls import TestPKI

USER_PROPERTIES = (
    "id",
    "userPrincipalName",
    "mail",
    "givenName",
    "surname",
    "displayName",
    "jobTitle",
    "department",
    "employeeId",
    "accountEnabled",
    "otherMails",
    "onPremisesExtensionAttributes",
)


def _token(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _untoken(text: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


@dataclass
class Tenant:
    """One Entra tenant's users and groups, with a change log for delta rounds."""

    tenant_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    client_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    client_secret: str = field(default_factory=lambda: "graph~" + secrets.token_urlsafe(24))
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=dict)
    version: int = 0
    changed: dict[tuple[str, str], int] = field(default_factory=dict)  # (kind, id) -> version
    removed: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, id) -> reason
    member_log: list[tuple[int, str, str, bool]] = field(default_factory=list)  # version, group, user, added
    resync_floor: int = 0  # delta tokens older than this get 410
    throttled: int = 0
    retry_after: int = 2
    certificates: dict[str, x509.Certificate] = field(default_factory=dict)  # x5t#S256 -> the app's certificate
    issued: set[str] = field(default_factory=set)
    requests: list[tuple[float, int, str]] = field(default_factory=list)  # (monotonic time, status, URL)
    token_requests: int = 0

    def _touch(self, kind: str, object_id: str) -> None:
        self.version += 1
        self.changed[(kind, object_id)] = self.version

    def add_certificate(self) -> str:
        """Registers a new certificate on the app; returns its PEM (private key and
        certificate), as an admin downloads it for a certificate credential."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = datetime.datetime.now(datetime.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dirhook app")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .sign(key, hashes.SHA256())
        )
        thumbprint = base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA256())).decode().rstrip("=")
        self.certificates[thumbprint] = cert
        return (
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            + cert.public_bytes(serialization.Encoding.PEM)
        ).decode()

    def check_assertion(self, assertion: str, audience: str) -> bool:
        """A client assertion (RFC 7523, as the identity platform takes it): a JWT signed
        with PS256 or RS256 by a registered certificate, named by x5t#S256 (or x5t)."""

        def part(text: str) -> bytes:
            return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

        try:
            head, body, signature = assertion.split(".")
            header, claims = json.loads(part(head)), json.loads(part(body))
            thumbprint = (header.get("x5t#S256") or "").rstrip("=")
            cert = self.certificates.get(thumbprint)
            if (
                cert is None
                or claims.get("aud") != audience
                or claims.get("iss") != self.client_id
                or claims.get("exp", 0) < time.time()
            ):
                return False
            pad = (
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
                if header.get("alg") == "PS256"
                else padding.PKCS1v15()
            )
            cert.public_key().verify(part(signature), f"{head}.{body}".encode(), pad, hashes.SHA256())
            return True
        except Exception:
            return False

    # -- what a test does to the tenant -------------------------------------------------------
    def put_user(self, **props: Any) -> str:
        user_id = props.setdefault("id", str(uuid.uuid4()))
        self.users[user_id] = {**self.users.get(user_id, {}), **props}
        self.removed.pop(("user", user_id), None)
        self._touch("user", user_id)
        return user_id

    def remove_user(self, user_id: str, reason: str = "deleted") -> None:
        """reason "changed": soft-deleted (to the recycle bin); "deleted": permanently."""
        self.users.pop(user_id)
        self.removed[("user", user_id)] = reason
        self._touch("user", user_id)
        for group_id, members in self.members.items():
            if user_id in members:
                self.set_member(group_id, user_id, False)

    def put_group(self, **props: Any) -> str:
        group_id = props.setdefault("id", str(uuid.uuid4()))
        self.groups[group_id] = {**self.groups.get(group_id, {}), **props}
        self.members.setdefault(group_id, set())
        self.removed.pop(("group", group_id), None)
        self._touch("group", group_id)
        return group_id

    def remove_group(self, group_id: str) -> None:
        self.groups.pop(group_id)
        self.members.pop(group_id, None)
        self.removed[("group", group_id)] = "deleted"
        self._touch("group", group_id)

    def set_member(self, group_id: str, user_id: str, present: bool = True) -> None:
        members = self.members[group_id]
        if (user_id in members) == present:
            return
        (members.add if present else members.discard)(user_id)
        self._touch("group", group_id)
        self.member_log.append((self.version, group_id, user_id, present))

    def expire_tokens(self) -> None:
        """Every delta token issued so far gets 410 resyncRequired."""
        self.resync_floor = self.version + 1

    # -- delta ---------------------------------------------------------------------------------
    def _user_view(self, user: dict[str, Any], select: list[str] | None, expand_manager: bool) -> dict[str, Any]:
        keys = select or list(USER_PROPERTIES)
        out = {k: user[k] for k in keys if k in user and user[k] is not None}
        out["id"] = user["id"]
        if expand_manager and user.get("manager"):
            out["manager"] = {"@odata.type": "#microsoft.graph.user", "id": user["manager"]}
        return out

    def _group_view(self, group_id: str, select: list[str] | None, since: int | None) -> dict[str, Any]:
        group = self.groups[group_id]
        keys = [k for k in (select or ["displayName", "description"]) if k != "members"]
        out = {k: group[k] for k in keys if group.get(k) is not None}
        out["id"] = group_id
        if select is None or "members" in select:
            if since is None:
                out["members@delta"] = [
                    {"@odata.type": "#microsoft.graph.user", "id": m} for m in sorted(self.members[group_id])
                ]
            else:
                last: dict[str, bool] = {}
                for version, gid, uid, added in self.member_log:
                    if gid == group_id and version > since:
                        last[uid] = added
                out["members@delta"] = [
                    {
                        "@odata.type": "#microsoft.graph.user",
                        "id": uid,
                        **({} if added else {"@removed": {"reason": "deleted"}}),
                    }
                    for uid, added in sorted(last.items())
                ]
        return out

    def delta(self, kind: str, state: dict[str, Any]) -> list[dict[str, Any]]:
        """Every object of a round: all of them (no `since`), or what changed since."""
        since, select = state.get("since"), state.get("select")
        store = self.users if kind == "user" else self.groups
        if since is None:
            ids = sorted(store)
        else:
            ids = sorted(i for (k, i), v in self.changed.items() if k == kind and v > since)
        if state.get("only"):  # $filter=id eq '…' or id eq '…' (groups delta takes up to 50)
            ids = [i for i in ids if i in state["only"]]
        out = []
        for object_id in ids:
            if object_id in store:
                out.append(
                    self._user_view(store[object_id], select, state.get("manager", False))
                    if kind == "user"
                    else self._group_view(object_id, select, since)
                )
            elif since is not None and (kind, object_id) in self.removed:
                out.append({"id": object_id, "@removed": {"reason": self.removed[(kind, object_id)]}})
        return out


class GraphServer:
    """Serves any number of tenants; a Graph request belongs to the tenant its token came from."""

    def __init__(self, page_size: int = 200):
        self.tenants: dict[str, Tenant] = {}
        self.by_token: dict[str, Tenant] = {}
        self.page_size = page_size
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="graph-"))
        # The CA also signs the tests' HTTPS webhook receivers (tests/integration/test_endpoint_auth.py).
        self.pki = TestPKI(self.dir)
        self.ca_bundle, self._ssl = self.pki.ca_bundle, self.pki.server_context()
        self._runner: web.AppRunner | None = None

    def new_tenant(self) -> Tenant:
        tenant = Tenant()
        self.tenants[tenant.tenant_id] = tenant
        return tenant

    @property
    def authority(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def graph_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/v1.0"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        app.router.add_get("/v1.0/users/delta()", self._users)
        app.router.add_get("/v1.0/groups/delta()", self._groups)
        app.router.add_get("/v1.0/users/{id}", self._user)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self._ssl).start()

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    # -- handlers ------------------------------------------------------------------------------
    async def _token(self, request: web.Request) -> web.Response:
        t = self.tenants.get(request.match_info["tenant"])
        form = {k: v[0] for k, v in parse_qs((await request.read()).decode()).items()}
        if t is not None:
            t.token_requests += 1
        if t is None:
            return web.json_response(
                {
                    "error": "invalid_request",
                    "error_codes": [90002],
                    "error_description": f"AADSTS90002: Tenant '{request.match_info['tenant']}' not found.",
                },
                status=400,
            )
        if "client_assertion" in form:
            audience = f"{self.authority}/{t.tenant_id}/oauth2/v2.0/token"
            good = form.get(
                "client_assertion_type"
            ) == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" and t.check_assertion(
                form["client_assertion"], audience
            )
            if not good or form.get("client_id") != t.client_id:
                return web.json_response(
                    {
                        "error": "invalid_client",
                        "error_codes": [700027],
                        "error_description": "AADSTS700027: The certificate with identifier used to sign the client "
                        "assertion is not registered on application.",
                    },
                    status=401,
                )
        elif (
            form.get("grant_type") != "client_credentials"
            or form.get("client_id") != t.client_id
            or form.get("client_secret") != t.client_secret
        ):
            return web.json_response(
                {
                    "error": "invalid_client",
                    "error_codes": [7000215],
                    "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent "
                    "in the request is the client secret value, not the client secret ID.",
                },
                status=401,
            )
        token = secrets.token_urlsafe(24)
        t.issued.add(token)
        self.by_token[token] = t
        return web.json_response(
            {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}
        )

    def _error(self, status: int, code: str, message: str, headers: dict | None = None) -> web.Response:
        return web.json_response({"error": {"code": code, "message": message}}, status=status, headers=headers)

    async def _users(self, request: web.Request) -> web.Response:
        return await self._delta(request, "user", "users")

    async def _groups(self, request: web.Request) -> web.Response:
        return await self._delta(request, "group", "groups")

    async def _user(self, request: web.Request) -> web.Response:
        """`GET /users/{id}?$select=…`: one user, or 404 `Request_ResourceNotFound`."""
        auth = request.headers.get("Authorization", "")
        t = self.by_token.get(auth[7:]) if auth.startswith("Bearer ") else None
        if t is None:
            return self._error(401, "InvalidAuthenticationToken", "Access token is empty.")
        user = t.users.get(request.match_info["id"])
        t.requests.append((time.monotonic(), 200 if user else 404, str(request.rel_url)))
        if user is None:
            return self._error(
                404, "Request_ResourceNotFound", f"Resource '{request.match_info['id']}' does not exist."
            )
        select = request.query["$select"].split(",") if "$select" in request.query else None
        return web.json_response(t._user_view(user, select, "manager" in request.query.get("$expand", "")))

    async def _delta(self, request: web.Request, kind: str, path: str) -> web.Response:
        auth = request.headers.get("Authorization", "")
        t = self.by_token.get(auth[7:]) if auth.startswith("Bearer ") else None
        if t is None:
            return self._error(401, "InvalidAuthenticationToken", "Access token is empty.")
        if t.throttled:
            t.throttled -= 1
            t.requests.append((time.monotonic(), 429, str(request.rel_url)))
            return self._error(429, "TooManyRequests", "Too many requests.", {"Retry-After": str(t.retry_after)})
        q = request.query
        if "$skiptoken" in q:
            state = _untoken(q["$skiptoken"])
        elif "$deltatoken" in q:
            state = _untoken(q["$deltatoken"])
            if state["until"] < t.resync_floor:
                t.requests.append((time.monotonic(), 410, str(request.rel_url)))
                return self._error(
                    410,
                    "resyncRequired",
                    "Resync required. Replace any local cached copy of the "
                    f"{path} with the data returned in a new delta request.",
                )
            state = {**state, "since": state["until"], "offset": 0}
        else:
            select = q["$select"].split(",") if "$select" in q else None
            prefer = request.headers.get("Prefer", "")
            size = (
                int(prefer.split("odata.maxpagesize=")[1].split(",")[0])
                if "odata.maxpagesize=" in prefer
                else self.page_size
            )
            state = {
                "since": None,
                "offset": 0,
                "select": select,
                "manager": "manager" in q.get("$expand", ""),
                "top": min(size, 999),
            }
            if "$filter" in q:
                only = re.findall(r"id eq '([^']+)'", q["$filter"])
                if not only or len(only) > 50 or kind != "group":
                    return self._error(400, "Request_UnsupportedQuery", "Unsupported query.")
                state["only"] = only
        if "until" not in state or "$deltatoken" in q:
            state["until"] = t.version  # the round covers the changes up to now
        t.requests.append((time.monotonic(), 200, str(request.rel_url)))
        objects = t.delta(kind, state)
        offset, top = state["offset"], state["top"]
        page = objects[offset : offset + top]
        base = f"{self.graph_url}/{path}/delta()"
        body: dict[str, Any] = {"@odata.context": f"{self.graph_url}/$metadata#{path}", "value": page}
        if offset + top < len(objects):
            body["@odata.nextLink"] = f"{base}?$skiptoken={_token({**state, 'offset': offset + top})}"
        else:
            body["@odata.deltaLink"] = f"{base}?$deltatoken=" + _token(
                {
                    "until": state["until"],
                    "select": state["select"],
                    "manager": state.get("manager", False),
                    "top": top,
                    "only": state.get("only"),
                }
            )
        return web.json_response(body)
