"""A local fake of Microsoft Graph v1.0 and the Entra token endpoint, over HTTPS on 127.0.0.1.

MSAL accepts only https authorities, so the fake serves TLS with a throwaway CA made at start (trustme).
Point a client at it with `fake.authority` / `fake.graph_url`, and trust `fake.ca_file` through
`SSL_CERT_FILE` or `REQUESTS_CA_BUNDLE`, exactly as a deployment behind a corporate CA would.

It speaks the documented shapes of the calls scim-help makes — tenant discovery
(`/{tenant}/v2.0/.well-known/openid-configuration`), the client-credentials token
(`/{tenant}/oauth2/v2.0/token`, a JWT-shaped token carrying the granted `roles`), and:

    GET /v1.0/servicePrincipals/{sp}/synchronization/jobs        synchronizationJob collection
    GET /v1.0/auditLogs/provisioning?$filter=sourceIdentity/id eq '{id}'   provisioningObjectSummary, newest first
    GET /v1.0/servicePrincipals/{sp}/appRoleAssignedTo            appRoleAssignment collection
    GET /v1.0/users/{id | userPrincipalName}                      user
    GET /v1.0/users/{id | upn}/memberOf, /transitiveMemberOf      directoryObject collections

Collections are paged (`page_size`, `@odata.nextLink` with a `$skiptoken`). Each endpoint enforces its
application permission from the token's roles (403 `Authorization_RequestDenied`), a wrong secret gets
`invalid_client` / AADSTS7000215, and faults can be injected per call: a status (429 with Retry-After,
401, 500…) for the next N requests, or a delay.

    with FakeGraph(Tenant.scenario("nested")) as fake:
        ...                                   # fake.calls records (call, path, query)
        fake.fail("logs", status=429, retry_after=1)
        fake.delay("job", 5.0)

Runs in a thread of its own with its own event loop, so synchronous MSAL (in a worker thread) and an
aiohttp client on the test's loop can both talk to it.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

from aiohttp import web

if TYPE_CHECKING:
    import tempfile

TENANT_ID = "11111111-2222-3333-4444-555555555555"
CLIENT_ID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
CLIENT_SECRET = "fake-secret-value-do-not-use"
SP_ID = "8e881353-1735-45af-af21-ee1344582a4d"
DOMAIN = "contoso.com"

ALL_ROLES = frozenset({"Synchronization.Read.All", "AuditLog.Read.All", "Directory.Read.All"})

# Application permissions each endpoint accepts (any one set), as the Graph permissions reference lists.
NEEDS: dict[str, tuple[frozenset[str], ...]] = {
    "job": (frozenset({"Synchronization.Read.All"}), frozenset({"Synchronization.ReadWrite.All"}), frozenset({"Application.ReadWrite.OwnedBy"})),
    "logs": (frozenset({"AuditLog.Read.All", "Directory.Read.All"}),),
    "assignments": (frozenset({"Application.Read.All"}), frozenset({"Directory.Read.All"})),
    "user": (frozenset({"User.Read.All"}), frozenset({"Directory.Read.All"})),
    "member-of": (frozenset({"Directory.Read.All"}),),
    "transitive-member-of": (frozenset({"User.Read.All"}), frozenset({"Directory.Read.All"}), frozenset({"GroupMember.Read.All"})),
}


def _id(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"scim-help-fake:{name}"))


# ---- the tenant ------------------------------------------------------------------------------------------


@dataclass
class Tenant:
    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> user
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {"displayName", "members": [ids]}
    assignments: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)

    # -- building ---------------------------------------------------------------------------------

    def add_user(self, upn: str, *, enabled: bool = True, mail: str | None = "", display: str | None = None) -> str:
        uid = _id(upn)
        self.users[uid] = {
            "id": uid,
            "userPrincipalName": upn,
            "displayName": display or upn.split("@")[0].replace(".", " ").title(),
            "accountEnabled": enabled,
            "mail": upn if mail == "" else mail,
        }
        return uid

    def add_group(self, name: str, members: list[str] = ()) -> str:  # type: ignore[assignment]
        gid = _id("group:" + name)
        self.groups[gid] = {"id": gid, "displayName": name, "members": list(members)}
        return gid

    def assign(self, principal_id: str) -> None:
        if principal_id in self.groups:
            kind, name = "Group", self.groups[principal_id]["displayName"]
        else:
            kind, name = "User", self.users[principal_id]["displayName"]
        self.assignments.append(
            {
                "id": base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="),
                "deletedDateTime": None,
                "appRoleId": "00000000-0000-0000-0000-000000000000",
                "createdDateTime": "2026-01-05T09:00:00Z",
                "principalDisplayName": name,
                "principalId": principal_id,
                "principalType": kind,
                "resourceDisplayName": "Cato Networks Provisioning",
                "resourceId": SP_ID,
            }
        )

    def set_job(self, code: str = "Active", *, quarantine: dict[str, Any] | None = None, last_state: str | None = "Succeeded",
                last_error: dict[str, Any] | None = None, initial_done: bool = True) -> None:
        steady = "2026-02-20T11:42:10Z" if initial_done else "0001-01-01T00:00:00Z"
        last = None
        if last_state:
            last = {
                "activityIdentifier": str(uuid.uuid4()),
                "countEntitled": 12, "countEntitledForProvisioning": 12, "countEscrowed": 0 if last_state == "Succeeded" else 3,
                "countEscrowedRaw": 0, "countExported": 9, "countExports": 9, "countImported": 12,
                "countImportedDeltas": 2, "countImportedReferenceDeltas": 0,
                "error": last_error,
                "state": last_state,
                "timeBegan": "2026-03-02T08:00:03Z",
                "timeEnded": "2026-03-02T08:01:41Z",
            }
        self.jobs = [
            {
                "id": "scim.e9b3f2d0a1c24b0f9b3f2d0a1c24b0f9.8e881353-1735-45af-af21-ee1344582a4d",
                "templateId": "scim",
                "schedule": {"expiration": None, "interval": "PT40M", "state": "Active" if code != "Paused" else "Disabled"},
                "status": {
                    "code": code,
                    "countSuccessiveCompleteFailures": 4 if quarantine else 0,
                    "escrowsPruned": False,
                    "lastExecution": last,
                    "lastSuccessfulExecution": None,
                    "lastSuccessfulExecutionWithExports": None,
                    "progress": [],
                    "quarantine": quarantine,
                    "steadyStateFirstAchievedTime": steady,
                    "steadyStateLastAchievedTime": "2026-03-02T08:01:41Z" if initial_done else steady,
                    "synchronizedEntryCountByType": [],
                    "troubleshootingUrl": None,
                },
            }
        ]

    def log(self, user_id: str, status: str, *, action: str = "create", error_code: str | None = None, reason: str | None = None,
            steps: list[dict[str, Any]] | None = None, modified: list[dict[str, Any]] | None = None, when: str = "2026-03-02T08:01:12Z") -> str:
        user = self.users[user_id]
        entry_id = str(uuid.uuid4())
        error = None
        if error_code:
            error = {"errorCode": error_code, "reason": reason, "additionalDetails": None,
                     "errorCategory": "nonServiceFailure", "recommendedAction": None}
        self.logs.append(
            {
                "id": entry_id,
                "activityDateTime": when,
                "tenantId": TENANT_ID,
                "jobId": self.jobs[0]["id"] if self.jobs else "scim.job",
                "cycleId": str(uuid.uuid4()),
                "changeId": str(uuid.uuid4()),
                "provisioningAction": action,
                "durationInMilliseconds": 812,
                "provisioningStatusInfo": {"status": status, "errorInformation": error},
                "provisioningSteps": steps or [],
                "modifiedProperties": modified or [],
                "servicePrincipal": {"id": SP_ID, "displayName": "Cato Networks Provisioning"},
                "sourceSystem": {"id": str(uuid.uuid4()), "displayName": "Azure Active Directory", "details": {}},
                "targetSystem": {"id": str(uuid.uuid4()), "displayName": "Cato Networks Provisioning",
                                 "details": {"ServicePrincipalId": SP_ID}},
                "initiatedBy": {"id": "", "displayName": "Azure AD Provisioning Service", "initiatorType": "system"},
                "sourceIdentity": {"id": user_id, "displayName": user["displayName"], "identityType": "User", "details": {}},
                "targetIdentity": {"id": "", "displayName": "", "identityType": "urn:ietf:params:scim:schemas:core:2.0:User", "details": {}},
            }
        )
        return entry_id

    # -- reading (what Graph would answer) ------------------------------------------------------------

    def find_user(self, key: str) -> dict[str, Any] | None:
        if key in self.users:
            return self.users[key]
        return next((u for u in self.users.values() if u["userPrincipalName"].lower() == key.lower()), None)

    def direct_groups(self, member_id: str) -> list[str]:
        return [gid for gid, g in self.groups.items() if member_id in g["members"]]

    def transitive_groups(self, member_id: str) -> list[str]:
        seen: list[str] = []
        frontier = self.direct_groups(member_id)
        while frontier:
            gid = frontier.pop(0)
            if gid in seen:
                continue
            seen.append(gid)
            frontier.extend(self.direct_groups(gid))
        return seen

    def group_object(self, gid: str) -> dict[str, Any]:
        g = self.groups[gid]
        return {"@odata.type": "#microsoft.graph.group", "id": gid, "displayName": g["displayName"],
                "mailEnabled": False, "securityEnabled": True}

    # -- the scenarios the tests and the benchmark use ------------------------------------------------------

    @classmethod
    def scenario(cls, name: str, upn: str = f"p.huang@{DOMAIN}") -> Tenant:
        """A tenant where `upn` is affected by one documented cause (or nothing: "healthy")."""
        t = cls()
        staff = t.add_group("SG-Cato-All-Staff")
        t.assign(staff)
        others = [t.add_user(f"user{i}@{DOMAIN}") for i in range(3)]
        t.groups[staff]["members"].extend(others)
        t.add_group("All Company", members=others)
        t.set_job("Active", last_state="Succeeded")
        for uid in others:
            t.log(uid, "success", modified=[_prop("emails[type eq \"work\"].value", t.users[uid]["mail"])], when="2026-03-01T10:00:00Z")

        if name == "quarantine":
            uid = t.add_user(upn)
            t.groups[staff]["members"].append(uid)
            error = {"code": "SystemForCrossDomainIdentityManagementCredentialValidationUnavailable",
                     "message": "You appear to have entered invalid credentials. Please confirm you are using the correct information for an administrative account.",
                     "tenantActionable": True}
            t.set_job("Quarantine", last_state="Failed", last_error=error, quarantine={
                "currentBegan": "2026-03-02T08:00:05Z", "nextAttempt": "2026-03-02T20:00:05Z",
                "reason": "EncounteredQuarantineException", "seriesBegan": "2026-03-01T20:00:05Z", "seriesCount": 3,
                "error": error})
            return t
        if name == "nested":
            uid = t.add_user(upn)
            interns = t.add_group("SG-Cato-Interns", members=[uid])
            t.groups[staff]["members"].append(interns)
            t.log(uid, "skipped", action="other", steps=[_import(upn), _scoping("skipped", {
                "SkipReason": "NotEffectivelyEntitled", "Active in the source system": "True", "Assigned to the application": "False"})])
            return t
        if name == "unassigned":
            uid = t.add_user(upn)
            t.add_group("SG-Marketing", members=[uid])
            t.log(uid, "skipped", action="other", steps=[_import(upn), _scoping("skipped", {
                "SkipReason": "NotEffectivelyEntitled", "Active in the source system": "True", "Assigned to the application": "False"})])
            return t
        if name == "disabled":
            uid = t.add_user(upn, enabled=False)
            t.groups[staff]["members"].append(uid)
            t.log(uid, "skipped", action="other", steps=[_import(upn), _scoping("skipped", {
                "SkipReason": "NotEffectivelyEntitled", "Active in the source system": "False", "Assigned to the application": "True"})])
            return t
        if name == "scoped-out":
            uid = t.add_user(upn)
            t.groups[staff]["members"].append(uid)
            t.log(uid, "skipped", action="other", steps=[_import(upn), _scoping("skipped", {
                "Active in the source system": "True", "Assigned to the application": "True", "Passed scope filter": "False",
                "Scoping filter": "Department NOT EQUALS 'Brotherhood'"})])
            return t
        if name == "no-mail":
            uid = t.add_user(upn, mail=None)
            t.groups[staff]["members"].append(uid)
            t.log(uid, "success", steps=[_import(upn), _scoping("success", {}), _export("success", upn)],
                  modified=[_prop("userName", upn), _prop("active", "True")])
            return t
        if name == "licences":
            uid = t.add_user(upn)
            t.groups[staff]["members"].append(uid)
            t.set_job("Active", last_state="EntryLevelErrors")
            t.log(uid, "failure", error_code="LicenseLimitExceeded",
                  reason="The user couldn't be created in the target application because there are no available licenses for this user.",
                  steps=[_import(upn), _scoping("success", {}), _export("failure", upn)])
            return t
        if name == "licences-assign":
            # Users reach Cato (create succeeded, email sent); Cato cannot give them a licence — invisible to Graph.
            uid = t.add_user(upn)
            t.groups[staff]["members"].append(uid)
            t.log(uid, "success", steps=[_import(upn), _scoping("success", {}), _export("success", upn)],
                  modified=[_prop("userName", upn), _prop("emails[type eq \"work\"].value", upn)])
            return t
        if name == "paused":
            uid = t.add_user(upn)
            t.groups[staff]["members"].append(uid)
            t.set_job("Paused", last_state=None, initial_done=False)
            return t
        if name == "initial-cycle":
            uid = t.add_user(upn)
            t.groups[staff]["members"].append(uid)
            t.set_job("Active", last_state="Succeeded", initial_done=False)
            return t
        if name == "healthy":
            uid = t.add_user(upn)
            t.groups[staff]["members"].append(uid)
            t.log(uid, "success", steps=[_import(upn), _scoping("success", {}), _export("success", upn)],
                  modified=[_prop("userName", upn), _prop("emails[type eq \"work\"].value", upn)])
            return t
        raise ValueError(f"unknown scenario {name!r}")


def _prop(name: str, value: str | None) -> dict[str, Any]:
    return {"displayName": name, "oldValue": None, "newValue": value}


def _import(upn: str) -> dict[str, Any]:
    return {"name": "EntryImport", "provisioningStepType": "import", "status": "success",
            "description": f"Retrieved User '{upn}' from Azure Active Directory", "details": {}}


def _scoping(status: str, details: dict[str, str]) -> dict[str, Any]:
    text = "in scope" if status == "success" else "skipped"
    return {"name": "EntrySynchronizationScoping", "provisioningStepType": "scoping", "status": status,
            "description": f"Determine if User is in scope: {text}", "details": details}


def _export(status: str, upn: str) -> dict[str, Any]:
    verb = "was created in" if status == "success" else "could not be created in"
    return {"name": "EntryExportAdd", "provisioningStepType": "export", "status": status,
            "description": f"User '{upn}' {verb} Cato Networks Provisioning", "details": {"ReportableIdentifier": upn}}


# ---- the server ------------------------------------------------------------------------------------------


@dataclass
class _Fault:
    status: int
    times: int
    retry_after: float | None = None
    body: dict[str, Any] | None = None


class FakeGraph:
    def __init__(self, tenant: Tenant | None = None, *, roles: frozenset[str] | set[str] = ALL_ROLES, page_size: int = 2,
                 tenant_id: str = TENANT_ID, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET):
        self.tenant = tenant or Tenant.scenario("healthy")
        self.roles = frozenset(roles)
        self.page_size = page_size
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.calls: list[tuple[str, str, dict[str, list[str]]]] = []
        self.tokens_issued = 0
        self._faults: dict[str, _Fault] = {}
        self._delays: dict[str, float] = {}
        self._tokens: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()
        self.port = 0
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    # -- control ---------------------------------------------------------------------------------

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    authority = base
    graph_url = base

    def fail(self, call: str, status: int, times: int = 1, retry_after: float | None = None, code: str | None = None) -> None:
        body = {"error": {"code": code or {401: "InvalidAuthenticationToken", 403: "Authorization_RequestDenied",
                                             404: "Request_ResourceNotFound", 429: "TooManyRequests"}.get(status, "UnknownError"),
                          "message": "injected by the test"}}
        self._faults[call] = _Fault(status, times, retry_after, body)

    def delay(self, call: str, seconds: float) -> None:
        self._delays[call] = seconds

    def count(self, call: str) -> int:
        return sum(1 for c in self.calls if c[0] == call)

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> FakeGraph:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        import tempfile

        import trustme

        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        self._tmp = tempfile.TemporaryDirectory(prefix="fake-graph-")
        self.ca_file = f"{self._tmp.name}/ca.pem"
        ca.cert_pem.write_to_path(self.ca_file)
        import ssl

        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(server_ctx)
        self._thread = threading.Thread(target=self._run, args=(server_ctx,), name="fake-graph", daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("fake Graph did not start")

    def stop(self) -> None:
        if self._loop is None or self._loop.is_closed() or not self._loop.is_running():
            return
        if self._loop is not None:
            fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
            try:
                fut.result(5)
            except Exception:
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        if self._tmp is not None:
            self._tmp.cleanup()

    def _run(self, server_ctx: Any) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)

        async def boot() -> None:
            app = web.Application()
            app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self._openid)
            app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
            app.router.add_get("/v1.0/{tail:.*}", self._graph)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=server_ctx)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]

        loop.run_until_complete(boot())
        self._started.set()
        loop.run_forever()
        loop.close()

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- the authority -----------------------------------------------------------------------------

    async def _openid(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        self.calls.append(("discovery", request.path, {}))
        if tenant != self.tenant_id:
            return web.json_response({"error": "invalid_tenant", "error_description": f"AADSTS90002: Tenant '{tenant}' not found."}, status=400)
        base = f"{self.base}/{tenant}"
        return web.json_response({
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "issuer": f"{self.base}/{tenant}/v2.0",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
        })

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.calls.append(("token", request.path, {}))
        if await self._fault("token") is not None:
            return self._fault_response("token")
        if form.get("grant_type") != "client_credentials" or form.get("client_id") != self.client_id:
            return web.json_response({"error": "unauthorized_client", "error_description": "AADSTS700016: Application not found in the directory."}, status=400)
        if form.get("client_secret") != self.client_secret:
            return web.json_response({"error": "invalid_client", "error_description":
                "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID. Trace ID: 0000"}, status=401)
        self.tokens_issued += 1
        now = int(time.time())
        claims = {"aud": "https://graph.microsoft.com", "iss": f"https://sts.windows.net/{self.tenant_id}/", "iat": now,
                  "exp": now + 3599, "appid": self.client_id, "tid": self.tenant_id, "roles": sorted(self.roles)}
        token = ".".join(_b64(x) for x in ({"typ": "JWT", "alg": "none"}, claims, {"n": uuid.uuid4().hex}))
        self._tokens.add(token)
        return web.json_response({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token})

    # -- Graph ---------------------------------------------------------------------------------------

    async def _graph(self, request: web.Request) -> web.Response:
        tail = request.match_info["tail"].rstrip("/")
        query = parse_qs(request.query_string)
        call, handler = self._route(tail)
        self.calls.append((call, request.path, query))
        if call in self._delays:
            await asyncio.sleep(self._delays[call])
        if await self._fault(call) is not None:
            return self._fault_response(call)
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self._tokens:
            return _error(401, "InvalidAuthenticationToken", "Access token is empty or invalid.")
        if call in NEEDS and not any(need <= self.roles for need in NEEDS[call]):
            return _error(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
        if handler is None:
            return _error(404, "Request_ResourceNotFound", "Resource not found for the segment.")
        return await handler(request, query)

    def _route(self, tail: str) -> tuple[str, Any]:
        parts = tail.split("/")
        if len(parts) == 4 and parts[0] == "servicePrincipals" and parts[2:] == ["synchronization", "jobs"]:
            return "job", (self._jobs if parts[1] == SP_ID else None)
        if len(parts) == 3 and parts[0] == "servicePrincipals" and parts[2] == "appRoleAssignedTo":
            return "assignments", (self._assignments if parts[1] == SP_ID else None)
        if parts == ["auditLogs", "provisioning"]:
            return "logs", self._logs
        if parts[0] == "users" and len(parts) == 2:
            return "user", self._user(parts[1])
        if parts[0] == "users" and len(parts) == 3 and parts[2] == "memberOf":
            return "member-of", self._member_of(parts[1], transitive=False)
        if parts[0] == "users" and len(parts) == 3 and parts[2] == "transitiveMemberOf":
            return "transitive-member-of", self._member_of(parts[1], transitive=True)
        return "unknown", None

    async def _fault(self, call: str) -> _Fault | None:
        fault = self._faults.get(call)
        if fault is None or fault.times <= 0:
            return None
        return fault

    def _fault_response(self, call: str) -> web.Response:
        fault = self._faults[call]
        fault.times -= 1
        headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
        return web.json_response(fault.body, status=fault.status, headers=headers)

    def _page(self, request: web.Request, query: dict[str, list[str]], items: list[dict[str, Any]], context: str) -> web.Response:
        start = int((query.get("$skiptoken") or ["0"])[0])
        top = int((query.get("$top") or [str(self.page_size)])[0])
        size = min(top, self.page_size) if "$top" not in query else top
        chunk = items[start : start + size]
        body: dict[str, Any] = {"@odata.context": f"https://graph.microsoft.com/v1.0/$metadata#{context}", "value": chunk}
        if start + size < len(items) and "$top" not in query:
            rest = {k: v[0] for k, v in query.items() if k != "$skiptoken"}
            rest["$skiptoken"] = str(start + size)
            body["@odata.nextLink"] = f"{self.base}{request.path}?{urlencode(rest)}"
        return web.json_response(body)

    async def _jobs(self, request: web.Request, query: dict[str, list[str]]) -> web.Response:
        return web.json_response({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#servicePrincipals('x')/synchronization/jobs",
                                  "value": copy.deepcopy(self.tenant.jobs)})

    async def _assignments(self, request: web.Request, query: dict[str, list[str]]) -> web.Response:
        return self._page(request, query, self.tenant.assignments, f"servicePrincipals('{SP_ID}')/appRoleAssignedTo")

    async def _logs(self, request: web.Request, query: dict[str, list[str]]) -> web.Response:
        items = list(self.tenant.logs)
        flt = (query.get("$filter") or [""])[0]
        if flt:
            prefix = "sourceIdentity/id eq '"
            if not (flt.startswith(prefix) and flt.endswith("'")):
                return _error(400, "BadRequest", "Invalid filter clause")
            want = flt[len(prefix):-1]
            items = [e for e in items if e["sourceIdentity"]["id"] == want]
        if (query.get("$orderby") or [""])[0] == "activityDateTime desc":
            items.sort(key=lambda e: e["activityDateTime"], reverse=True)
        return self._page(request, query, items, "auditLogs/provisioning")

    def _user(self, key: str) -> Any:
        async def handler(request: web.Request, query: dict[str, list[str]]) -> web.Response:
            user = self.tenant.find_user(key)
            if user is None:
                return _error(404, "Request_ResourceNotFound", f"Resource '{key}' does not exist or one of its queried reference-property objects are not present.")
            select = (query.get("$select") or [""])[0]
            body = {k: v for k, v in user.items() if not select or k in select.split(",")}
            return web.json_response({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity", **body})
        return handler

    def _member_of(self, key: str, transitive: bool) -> Any:
        async def handler(request: web.Request, query: dict[str, list[str]]) -> web.Response:
            user = self.tenant.find_user(key)
            if user is None:
                return _error(404, "Request_ResourceNotFound", f"Resource '{key}' does not exist.")
            ids = self.tenant.transitive_groups(user["id"]) if transitive else self.tenant.direct_groups(user["id"])
            return self._page(request, query, [self.tenant.group_object(g) for g in ids], "directoryObjects")
        return handler


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message,
                                        "innerError": {"date": "2026-03-02T08:00:00", "request-id": str(uuid.uuid4()),
                                                       "client-request-id": str(uuid.uuid4())}}}, status=status)


def _b64(obj: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
