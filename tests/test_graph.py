"""The Graph connection end to end against a local HTTPS fake of Graph and the token endpoint
(tests/fakes/graph.py): each documented situation answers the right check, and every way looking can fail
falls back to asking with one honest line, within the turn's budget, without leaking a secret."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bot.graph import Look, Looker
from bot.graph import facts as F
from bot.settings import Settings, SettingsError, load_settings, masked
from bot.state import State
from knowledge.probes import FACTS
from tests.fakes.graph import ALL_ROLES, CLIENT_ID, CLIENT_SECRET, SP_ID, TENANT_ID, FakeGraph, Tenant

ROOT = Path(__file__).resolve().parent.parent
UPN = "p.huang@contoso.com"


def graph_env(fake: FakeGraph, **over: str) -> dict[str, Any]:
    env = {
        "SCIM_HELP_GRAPH_TENANT_ID": TENANT_ID,
        "SCIM_HELP_GRAPH_CLIENT_ID": CLIENT_ID,
        "SCIM_HELP_GRAPH_CLIENT_SECRET": CLIENT_SECRET,
        "SCIM_HELP_GRAPH_SERVICE_PRINCIPAL_ID": SP_ID,
        "SCIM_HELP_GRAPH_URL": fake.base,
        "SCIM_HELP_GRAPH_AUTHORITY": fake.base,
    }
    env.update(over)
    return env


@pytest.fixture
async def tenant(settings, bundle, monkeypatch):
    """tenant(scenario, roles=..., budget=..., trust="SSL_CERT_FILE", **settings) -> (looker, fake)"""
    fakes: list[FakeGraph] = []
    lookers: list[Looker] = []

    def make(scenario: str = "healthy", *, roles=ALL_ROLES, budget: float = 3.0, trust: str | None = "SSL_CERT_FILE", **over: str):
        fake = FakeGraph(Tenant.scenario(scenario), roles=roles)
        fake.start()
        fakes.append(fake)
        for var in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
            monkeypatch.delenv(var, raising=False)
        if trust:
            monkeypatch.setenv(trust, fake.ca_file)
        looker = Looker.from_settings(Settings(**graph_env(fake, **over)), bundle, budget=budget)
        assert looker is not None
        lookers.append(looker)
        return looker, fake

    yield make
    for looker in lookers:
        await looker.close()
    for fake in fakes:
        fake.stop()


def entra(*upns: str) -> State:
    return State(id="t:1", channel="test", idp="entra", upns=list(upns))


# ---- settings -----------------------------------------------------------------------------------------


def test_unset_graph_settings_keep_todays_behaviour(settings, bundle):
    assert settings.graph_enabled is False
    assert Looker.from_settings(settings, bundle) is None


def test_graph_settings_are_all_or_none_and_https(settings):
    with pytest.raises(SettingsError, match="SCIM_HELP_GRAPH_CLIENT_SECRET"):
        load_settings(SCIM_HELP_GRAPH_TENANT_ID=TENANT_ID, SCIM_HELP_GRAPH_CLIENT_ID=CLIENT_ID, SCIM_HELP_GRAPH_SERVICE_PRINCIPAL_ID=SP_ID)
    with pytest.raises(SettingsError, match="graph_authority|SCIM_HELP_GRAPH_AUTHORITY|https"):
        load_settings(SCIM_HELP_GRAPH_AUTHORITY="http://login.example.com")
    s = load_settings(
        SCIM_HELP_GRAPH_TENANT_ID=TENANT_ID, SCIM_HELP_GRAPH_CLIENT_ID=CLIENT_ID, SCIM_HELP_GRAPH_CLIENT_SECRET=CLIENT_SECRET,
        SCIM_HELP_GRAPH_SERVICE_PRINCIPAL_ID=SP_ID,
    )
    assert s.graph_enabled and s.graph_url == "https://graph.microsoft.com" and s.graph_authority == "https://login.microsoftonline.com"
    shown = masked(s)
    assert shown["SCIM_HELP_GRAPH_CLIENT_SECRET"] == "********" and CLIENT_SECRET not in str(shown)


# ---- facts and probes -----------------------------------------------------------------------------------


def test_facts_module_produces_exactly_the_vocabulary_of_probes_yaml(bundle):
    produced = set()
    produced |= {f"job.{k}" for k in F.job_facts(None, bundle)}
    produced |= {f"user.{k}" for k in F.user_facts(UPN, None)}
    produced |= {f"member.{k}" for k in F.membership_facts("u", [], [], [])}
    produced |= {f"log.{k}" for k in F.log_facts(None, bundle)}
    assert produced == set(FACTS)


def test_error_codes_go_through_the_catalogue(bundle):
    assert F.catalogue_cause(bundle, ["LicenseLimitExceeded"]) == "insufficient-licenses"
    assert F.catalogue_cause(bundle, ["SkipReason: NotEffectivelyEntitled"]) == "group-not-assigned"
    assert F.catalogue_cause(bundle, ["Passed scope filter: False"]) == "scoping"
    assert F.catalogue_cause(bundle, ["SystemForCrossDomainIdentityManagementCredentialValidationUnavailable"]) == "credentials-mismatch"
    assert F.catalogue(bundle, ["EntryConflict"]) == (None, "duplicate-conflict")
    assert F.catalogue_cause(bundle, [None, "Determine if User is in scope"]) is None


def test_membership_tells_direct_group_nested_and_none():
    assign = [{"principalType": "Group", "principalId": "g-all", "principalDisplayName": "SG-All"},
              {"principalType": "User", "principalId": "u-direct", "principalDisplayName": "D"}]
    g = lambda i, n: {"@odata.type": "#microsoft.graph.group", "id": i, "displayName": n}  # noqa: E731
    assert F.membership_facts("u-direct", assign, [], [])["assigned"] == "direct"
    assert F.membership_facts("u1", assign, [g("g-all", "SG-All")], [g("g-all", "SG-All")])["assigned"] == "group"
    nested = F.membership_facts("u2", assign, [g("g-int", "SG-Interns")], [g("g-int", "SG-Interns"), g("g-all", "SG-All")])
    assert nested == {"assigned": "nested", "groups": "SG-All", "direct_groups": "SG-Interns"}
    assert F.membership_facts("u3", assign, [g("g-x", "X")], [g("g-x", "X")])["assigned"] == "none"


# ---- what looking establishes -------------------------------------------------------------------------------


async def test_quarantined_job_fails_test_connection_without_asking_for_a_user(tenant):
    looker, fake = tenant("quarantine")
    look = await looker.look(entra(), "test-connection")
    assert look.answer == "fails" and look.needs is None
    assert "Quarantine" in look.says and "EncounteredQuarantineException" in look.says
    assert look.ref and "status.code Quarantine" in look.ref
    assert fake.count("logs") == 0  # no UPN: only the job was read


async def test_job_status_answers_the_job_checks(tenant):
    looker, _ = tenant("quarantine")
    assert (await looker.look(entra(), "quarantine-status")).answer == "quarantined"
    assert (await looker.look(entra(), "provisioning-on")).answer == "on"
    looker, _ = tenant("paused")
    assert (await looker.look(entra(), "provisioning-on")).answer == "off"
    looker, _ = tenant("initial-cycle")
    assert (await looker.look(entra(), "first-cycle-progress")).answer == "running"
    assert (await looker.look(entra(), "quarantine-status")).answer == "not-quarantined"
    looker, _ = tenant("healthy")
    assert (await looker.look(entra(), "first-cycle-progress")).answer == "finished"


async def test_healthy_job_means_the_credentials_work(tenant):
    looker, _ = tenant("healthy")
    look = await looker.look(entra(), "test-connection")
    assert look.answer == "succeeds" and "Succeeded" in look.ref


async def test_skipped_nested_group_user(tenant):
    looker, fake = tenant("nested")
    state = entra(UPN)
    nested = await looker.look(state, "direct-or-nested")
    assert nested.answer == "nested"
    assert "SG-Cato-Interns" in nested.says and "SG-Cato-All-Staff" in nested.says and UPN in nested.says
    assert nested.ref and "assignments" in nested.ref
    assigned = await looker.look(state, "app-assignment")
    assert assigned.answer == "listed"  # a group the user belongs to (through nesting) is assigned
    pod = await looker.look(state, "provision-on-demand")
    assert pod.answer == "not-assigned" and "nested" in pod.says  # what Entra reports, and why
    # memberOf and transitiveMemberOf were both read, and the app's assignments followed @odata.nextLink
    assert fake.count("member-of") >= 1 and fake.count("transitive-member-of") >= 1


async def test_unassigned_user(tenant):
    looker, _ = tenant("unassigned")
    state = entra(UPN)
    assert (await looker.look(state, "app-assignment")).answer == "not-listed"
    pod = await looker.look(state, "provision-on-demand")
    assert pod.answer == "not-assigned" and "NotEffectivelyEntitled" in pod.says


async def test_disabled_user(tenant):
    looker, _ = tenant("disabled")
    pod = await looker.look(entra(UPN), "provision-on-demand")
    assert pod.answer == "inactive" and "disabled" in pod.says and "accountEnabled" in pod.says


async def test_user_without_mail(tenant):
    looker, _ = tenant("no-mail")
    look = await looker.look(entra(UPN), "email-field")
    assert look.answer == "empty" and "mail attribute is empty" in look.says and look.ref.startswith("Microsoft Graph, user")


async def test_scoped_out_user_quotes_the_log_entry(tenant):
    looker, fake = tenant("scoped-out")
    look = await looker.look(entra(UPN), "scope-filter")
    assert look.answer == "excluded"
    entry = fake.tenant.logs[-1]
    assert entry["id"] in look.ref and entry["activityDateTime"] in look.ref


async def test_latest_provisioning_result_through_the_catalogue(tenant):
    looker, _ = tenant("licences")
    look = await looker.look(entra(UPN), "sdp-licence-events")
    assert look.answer == "yes" and "LicenseLimitExceeded" in look.says


async def test_a_user_check_without_a_upn_asks_for_one(tenant):
    looker, fake = tenant("no-mail")
    look = await looker.look(entra(), "email-field")
    assert look == Look(None, looker.spec.messages["need-upn"], needs="upn")
    assert fake.count("user") == 0


async def test_unknown_user(tenant):
    looker, _ = tenant("healthy")
    look = await looker.look(entra("nobody@contoso.com"), "app-assignment")
    assert look.answer is None and "nobody@contoso.com" in look.says


async def test_can_look_only_when_connected_on_entra_with_a_probe(tenant, bundle):
    looker, _ = tenant("healthy")
    assert looker.can_look(entra(), "test-connection")
    assert not looker.can_look(State(id="x", channel="t", idp="okta"), "test-connection")
    assert not looker.can_look(State(id="x", channel="t"), "test-connection")
    assert not looker.can_look(entra(), "enable-error")  # the CMA's own console: nothing to read in Graph
    assert await looker.look(State(id="x", channel="t", idp="okta"), "test-connection") is None


async def test_reads_are_reused_within_a_conversation(tenant):
    looker, fake = tenant("nested")
    state = entra(UPN)
    await looker.look(state, "app-assignment")
    await looker.look(state, "direct-or-nested")
    assert fake.count("user") == 1 and fake.count("transitive-member-of") == 1


# ---- honest when looking fails ------------------------------------------------------------------------------


async def test_401_falls_back_with_one_line(tenant):
    looker, fake = tenant("quarantine")
    fake.fail("job", 401, times=5)
    look = await looker.look(entra(), "test-connection")
    assert look.answer is None and "401" in look.says and "\n" not in look.says


async def test_403_names_the_missing_permission(tenant):
    looker, _ = tenant("quarantine", roles={"AuditLog.Read.All", "Directory.Read.All"})
    look = await looker.look(entra(), "test-connection")
    assert look.answer is None and "Synchronization.Read.All" in look.says and "403" in look.says


async def test_404_service_principal(tenant):
    looker, _ = tenant("quarantine", SCIM_HELP_GRAPH_SERVICE_PRINCIPAL_ID="00000000-0000-0000-0000-000000000000")
    look = await looker.look(entra(), "test-connection")
    assert look.answer is None and "404" in look.says and "SCIM_HELP_GRAPH_SERVICE_PRINCIPAL_ID" in look.says


async def test_429_then_success_honours_retry_after(tenant):
    looker, fake = tenant("quarantine")
    fake.fail("job", 429, retry_after=1)
    started = time.monotonic()
    look = await looker.look(entra(), "test-connection")
    assert look.answer == "fails"
    assert time.monotonic() - started >= 1.0
    assert fake.count("job") == 2


async def test_429_longer_than_the_budget_is_not_waited_for(tenant):
    looker, fake = tenant("quarantine", budget=2.0)
    fake.fail("job", 429, retry_after=30, times=5)
    started = time.monotonic()
    look = await looker.look(entra(), "test-connection")
    assert look.answer is None and "429" in look.says and "30" in look.says
    assert time.monotonic() - started < 2.5


async def test_timeout_stays_within_the_budget(tenant):
    looker, fake = tenant("quarantine", budget=1.0)
    await looker.look(entra(), "test-connection")  # token and TLS warmed up
    looker._cache.clear()
    fake.delay("job", 5.0)
    started = time.monotonic()
    look = await looker.look(entra(), "test-connection")
    assert look.answer is None and "did not answer" in look.says
    assert time.monotonic() - started < 1.5


async def test_first_look_with_a_cold_token_within_the_budget(tenant):
    looker, fake = tenant("nested", budget=3.0)
    started = time.monotonic()
    look = await looker.look(entra(UPN), "direct-or-nested")
    assert look.answer == "nested"
    assert time.monotonic() - started < 3.0


async def test_unreachable_graph(tenant, bundle):
    looker, fake = tenant("quarantine", budget=2.0)
    fake.stop()
    look = await looker.look(entra(), "test-connection")
    assert look.answer is None and "couldn't" in look.says.lower()


async def test_wrong_client_secret_is_named_without_the_secret(tenant, caplog):
    caplog.set_level(logging.DEBUG)
    looker, _ = tenant("quarantine", SCIM_HELP_GRAPH_CLIENT_SECRET="not-the-right-one")
    look = await looker.look(entra(), "test-connection")
    assert look.answer is None and "AADSTS7000215" in look.says
    assert "not-the-right-one" not in look.says and "not-the-right-one" not in caplog.text


async def test_untrusted_certificate_is_refused(tenant):
    looker, _ = tenant("quarantine", trust=None)
    look = await looker.look(entra(), "test-connection")
    assert look.answer is None and "certificate verify failed" in look.says


async def test_requests_ca_bundle_is_trusted_by_both_stacks(tenant):
    looker, _ = tenant("quarantine", trust="REQUESTS_CA_BUNDLE")
    assert (await looker.look(entra(), "test-connection")).answer == "fails"


async def test_secrets_tokens_and_upns_never_reach_the_logs(tenant, caplog):
    from bot.logs import RedactingFilter

    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(RedactingFilter())
    looker, fake = tenant("nested")
    fake.fail("logs", 403)
    for check in looker.spec.probes:
        await looker.look(entra(UPN), check)
    text = caplog.text
    assert CLIENT_SECRET not in text and UPN not in text and "Bearer ey" not in text and "eyJ" not in text
    assert fake.tokens_issued == 1  # concurrent reads share one token request
    assert "graph look" in text


def test_non_default_authority_turns_instance_discovery_off(monkeypatch):
    import msal

    from bot.graph.token import TokenSource

    seen: dict[str, Any] = {}

    class Capture:
        def __init__(self, client_id, **kw):
            seen.update(kw, client_id=client_id)

    monkeypatch.setattr(msal, "ConfidentialClientApplication", Capture)
    TokenSource(TENANT_ID, CLIENT_ID, CLIENT_SECRET, authority="https://login.partner.microsoftonline.cn")._application()
    assert seen["instance_discovery"] is False and seen["authority"] == f"https://login.partner.microsoftonline.cn/{TENANT_ID}"
    seen.clear()
    TokenSource(TENANT_ID, CLIENT_ID, CLIENT_SECRET)._application()
    assert seen["instance_discovery"] is None and seen["http_client"] is not None
    assert CLIENT_SECRET not in repr(TokenSource(TENANT_ID, CLIENT_ID, CLIENT_SECRET))


# ---- scim-help graph check ------------------------------------------------------------------------------------


def _graph_check(fake: FakeGraph, *args: str, **over: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCIM_HELP_", "SSL_CERT", "REQUESTS_CA"))}
    env.update(graph_env(fake, **over), SSL_CERT_FILE=fake.ca_file)
    return subprocess.run([sys.executable, "-m", "bot.cli", "graph", "check", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_graph_check_all_permissions():
    with FakeGraph(Tenant.scenario("nested")) as fake:
        r = _graph_check(fake, "--upn", UPN)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "connection ok" in r.stdout and "nested groups" in r.stdout and CLIENT_SECRET not in r.stdout


@pytest.mark.slow
def test_graph_check_prints_what_is_missing():
    with FakeGraph(Tenant.scenario("nested"), roles={"AuditLog.Read.All", "User.Read.All"}) as fake:
        r = _graph_check(fake, "--upn", UPN)
    assert r.returncode == 1
    assert "MISSING Synchronization.Read.All" in r.stdout and "Directory.Read.All" in r.stdout


@pytest.mark.slow
def test_graph_check_bad_secret_and_not_configured():
    with FakeGraph(Tenant.scenario("healthy")) as fake:
        r = _graph_check(fake, SCIM_HELP_GRAPH_CLIENT_SECRET="wrong-secret-123")
    assert r.returncode == 1 and "AADSTS7000215" in r.stdout and "wrong-secret-123" not in r.stdout
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCIM_HELP_")}
    r = subprocess.run([sys.executable, "-m", "bot.cli", "graph", "check"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "SCIM_HELP_GRAPH_TENANT_ID" in r.stderr
