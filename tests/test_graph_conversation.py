"""A whole conversation with a connected tenant: the engine looks up what Graph can tell (through the real
Looker, MSAL and HTTPS against tests/fakes/graph.py), asks the admin only for a UPN, names its source in
one line, and the ticket says what was checked automatically with the log entry's id and time."""

from __future__ import annotations

import uuid

import pytest

from bot.engine import Engine
from bot.events import Incoming, Turn
from bot.graph import Looker
from bot.settings import Settings
from bot.store.memory import MemoryStore
from tests.fakes.graph import CLIENT_ID, CLIENT_SECRET, SP_ID, TENANT_ID, FakeGraph, Tenant

UPN = "p.huang@contoso.com"


@pytest.fixture
def connected(bundle, monkeypatch):
    made: list[tuple[FakeGraph, Looker]] = []

    def make(scenario: str) -> tuple[Engine, FakeGraph]:
        fake = FakeGraph(Tenant.scenario(scenario, upn=UPN))
        fake.start()
        monkeypatch.setenv("SSL_CERT_FILE", fake.ca_file)
        settings = Settings(
            SCIM_HELP_GRAPH_TENANT_ID=TENANT_ID, SCIM_HELP_GRAPH_CLIENT_ID=CLIENT_ID,
            SCIM_HELP_GRAPH_CLIENT_SECRET=CLIENT_SECRET, SCIM_HELP_GRAPH_SERVICE_PRINCIPAL_ID=SP_ID,
            SCIM_HELP_GRAPH_URL=fake.base, SCIM_HELP_GRAPH_AUTHORITY=fake.base,
        )
        looker = Looker.from_settings(settings, bundle)
        assert looker is not None
        made.append((fake, looker))
        return Engine(bundle, MemoryStore(), looker=looker), fake

    yield make
    for fake, _ in made:
        fake.stop()


async def _say(engine: Engine, cid: str, **kw) -> Turn:
    return await engine.handle(Incoming(channel="test", conversation_id=cid, **kw))


async def test_a_nested_only_user_is_found_by_looking_with_only_the_upn_asked(connected):
    engine, _ = connected("nested")
    cid = f"test:{uuid.uuid4().hex}"
    turn = await _say(engine, cid, text="Entra: one of our new users never shows up in Cato, the others are fine")
    state = await engine.state(cid)
    if state.pending and state.pending.kind == "field":
        assert state.pending.id == "upns"  # the one thing Graph cannot guess
        assert not any(r.kind == "question" and r.choices and ":" in r.choices[0].id and not r.choices[0].id.startswith("field") for r in turn.replies)
        turn = await _say(engine, cid, text=UPN)
    for _ in range(6):  # the CMA's own question (what is missing there) may still be asked: Graph cannot see the CMA
        state = await engine.state(cid)
        if state.cause:
            break
        assert state.pending is not None and state.pending.kind == "check", state.pending
        check = engine.kb.checks[state.pending.id]
        assert check.where == "cma", f"{check.id} should have been looked up"
        unsure = next(a for a in check.answers if a.kind == "unsure")
        turn = await _say(engine, cid, choice=f"{check.id}:{unsure.id}")
    state = await engine.state(cid)
    assert state.cause == "nested-groups"
    looked = [f for f in state.findings if f.source == "graph"]
    assert looked and all(f.ref for f in looked), "every finding quotes its source"
    said = "\n".join(r.text for t in [turn] for r in t.replies)
    assert "SG-Cato-Interns" in said, "one line says what was looked at and what was found"
    assert state.questions_to_cause == 0

    escalate = await _say(engine, cid, text="talk to a human")
    assert escalate.phase == "escalating"
    for _ in range(4):
        s = await engine.state(cid)
        if s.phase != "escalating":
            break
        if s.pending.kind == "idp":
            await _say(engine, cid, choice="idp:entra")
        elif s.pending.id == "account":
            await _say(engine, cid, text="Contoso, 4711")
        else:
            await _say(engine, cid, choice="field:skip")
    s = await engine.state(cid)
    ticket = engine.draft_ticket(s)
    assert "looked up in the tenant" in ticket.body
    assert any(f.ref and f.ref in ticket.body for f in looked)


async def test_a_quarantined_job_is_named_without_a_question(connected):
    engine, _ = connected("quarantine")
    cid = f"test:{uuid.uuid4().hex}"
    await _say(engine, cid, text="Azure AD to Cato: no users have been created at all since we set it up")
    state = await engine.state(cid)
    assert state.cause in ("quarantined", "credentials-mismatch")
    assert state.questions_to_cause == 0
    assert any(f.source == "graph" and f.ref for f in state.findings)


async def test_without_a_connection_nothing_is_looked_up(bundle):
    engine = Engine(bundle, MemoryStore())
    cid = f"test:{uuid.uuid4().hex}"
    await _say(engine, cid, text="Azure AD to Cato: no users have been created at all since we set it up")
    state = await engine.state(cid)
    assert state.pending is not None and state.pending.kind in ("check", "idp")
    assert not any(f.source == "graph" for f in state.findings)
