"""Fewer questions: the next check chosen by the questions expected after it (bot/engine/planner.py), and
console options read with their state from a report (bot/understand/settings.py)."""

from __future__ import annotations

import pytest

from bot.engine import Engine
from bot.engine.planner import Planner, admin_answer, apply
from bot.store.memory import MemoryStore
from bot.text import normalize
from bot.understand.settings import SettingReader
from knowledge.loader import load_pack
from knowledge.schema import Answer, Check
from tests.support.chat import Chat

BUNDLE = load_pack()


# ---- the planner ---------------------------------------------------------------------------------


def _check(cid: str, answers: list[dict]) -> Check:
    return Check(id=cid, title=cid, where="idp", ask=f"{cid}?", answers=[Answer(**a) for a in answers])


def _expected(planner: Planner, pick, flow: str, checks: list[Check], weights: dict[str, float]) -> float:
    """Mean questions until a cause is confirmed, over the causes by weight, with `pick` choosing."""
    total = sum(weights.values())
    out = 0.0
    for cause, w in weights.items():
        ws, asked, n = dict(weights), frozenset[str](), 0
        while (check := pick(flow, checks, ws, asked)) is not None:
            n += 1
            ws, confirmed = apply(ws, admin_answer(check, cause))
            if confirmed:
                break
            asked = asked | {check.id}
        out += w / total * n
    return out


def test_somewhere_in_the_pack_the_look_ahead_saves_questions():
    # Not a no-op: at least one opening (flow x IdP) starts with another check than likelihood alone
    # would, and expects fewer questions for it.
    planner = Planner(lambda f: BUNDLE.flows[f].ask_first)
    better = []
    for flow in BUNDLE.flows:
        for idp in [i.id for i in BUNDLE.pack.idps]:
            checks = BUNDLE.checks_for(flow, idp)
            weights = {w.cause: w.weight for w in BUNDLE.causes_for(flow, idp)}
            if len(weights) < 2 or not checks:
                continue
            if planner.pick(flow, checks, weights, frozenset()) is not planner.greedy(flow, checks, weights, frozenset()):
                if _expected(planner, planner.pick, flow, checks, weights) < _expected(planner, planner.greedy, flow, checks, weights) - 1e-9:
                    better.append((flow, idp))
    assert better


def test_ask_first_still_goes_first():
    planner = Planner(lambda flow: ["is-a"])
    yes_no_a = _check("is-a", [
        {"id": "yes", "label": "yes", "kind": "yes", "confirms": "a", "finding": "a"},
        {"id": "no", "label": "no", "kind": "no", "rules_out": ["a"], "finding": "not a"},
    ])
    is_b = _check("is-b", [
        {"id": "yes", "label": "yes", "kind": "yes", "confirms": "b", "finding": "b"},
        {"id": "no", "label": "no", "kind": "no", "rules_out": ["b"], "finding": "not b"},
    ])
    assert planner.pick("f", [is_b, yes_no_a], {"a": 0.1, "b": 0.9}, frozenset()).id == "is-a"


@pytest.mark.parametrize("flow", sorted(BUNDLE.flows))
def test_on_every_flow_and_idp_the_planner_expects_no_more_questions_than_likelihood_alone(flow):
    # Under the pack's own model of a truthful admin the one-step look-ahead can only help: this fails if
    # the planner's scoring and its rollout ever disagree with what the walk really does.
    planner = Planner(lambda f: BUNDLE.flows[f].ask_first)
    for idp in [i.id for i in BUNDLE.pack.idps]:
        checks = BUNDLE.checks_for(flow, idp)
        weights = {w.cause: w.weight for w in BUNDLE.causes_for(flow, idp)}
        if not checks or len(weights) < 2:
            continue
        planned = _expected(planner, planner.pick, flow, checks, weights)
        greedy = _expected(planner, planner.greedy, flow, checks, weights)
        assert planned <= greedy + 1e-9, (flow, idp, planned, greedy)


# ---- console options in a report -----------------------------------------------------------------

READER = SettingReader(BUNDLE)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I checked Provisioning > To App and Create Users is unticked - I think someone changed it", {("provisioning-on", "off")}),
        ("I've just seen that Deactivate Users is unticked under Provisioning > To App.", {("deprovisioning-allowed", "blocked")}),
        ("Under Provisioning > To App, Update User Attributes is not enabled - should it be?", {("updates-allowed", "blocked")}),
        ("we never enabled Deactivate Users", {("deprovisioning-allowed", "blocked")}),
        ("Create Users is ticked but Deactivate Users is not ticked", {("provisioning-on", "on"), ("deprovisioning-allowed", "blocked")}),
        ("Create Users is ticked and Update User Attributes is off", {("provisioning-on", "on"), ("updates-allowed", "blocked")}),
        ("Provisioning Status is On and users are assigned", {("provisioning-on", "on")}),
        # asked, not stated; the words about something else; the state too far away
        ("is Create Users enabled?", set()),
        ("we deactivate users in okta and they are still enabled in cato", set()),
        ("okta doesn't create users, they stay disabled", set()),
        ("Create Users is the option on the To App page that I have been told has always been enabled", set()),
    ],
)
def test_an_option_and_its_state(text, expected):
    assert {(h.check, h.answer) for h in READER.read(normalize(text))} == expected


async def test_an_option_said_off_in_the_report_ends_the_walk_without_a_question():
    # The flow for missing users has no check about Create Users: the statement still pins its cause,
    # and the ticket shows what the admin said, not a task error they never saw.
    engine = Engine(BUNDLE, MemoryStore())
    chat = Chat(engine)
    turn = await chat.say(
        "New Okta users aren't appearing in Cato any more. I checked Provisioning > To App and Create Users is "
        "unticked. Account 4711."
    )
    state = await chat.state()
    assert turn.cause == "provisioning-off"
    assert state.questions_to_cause == 0
    assert not any(f.check == "okta-tasks" for f in state.findings)
    assert any("unticked" in p.matched for p in state.pinned)


async def test_an_option_said_on_answers_its_check_so_it_is_not_asked():
    engine = Engine(BUNDLE, MemoryStore())
    chat = Chat(engine)
    await chat.say("Okta -> Cato: users changed in Okta never change in Cato. Update User Attributes is enabled.")
    state = await chat.state()
    finding = state.finding_for("updates-allowed")
    assert finding is not None and finding.answer == "allowed"
    assert state.pending is None or state.pending.id != "updates-allowed"


# ---- one look that tells causes apart ------------------------------------------------------------


async def _walk(opening: str, clicks: dict[str, str]) -> Chat:
    """Answer each check by button from `clicks` (check id -> answer id) until the engine names a cause."""
    chat = Chat(Engine(BUNDLE, MemoryStore()))
    await chat.say(opening)
    for _ in range(8):
        s = await chat.state()
        if s.cause or s.pending is None or s.pending.kind != "check":
            break
        await chat.click(f"{s.pending.id}:{clicks[s.pending.id or '']}")
    return chat


async def test_okta_a_user_missing_from_the_assignments_tab_may_be_nested():
    # Not listed is not yet "not assigned": a user only in a nested group is missing there just the same.
    chat = await _walk(
        "Okta: one new user, ann@contoso.com, never shows up in Cato, others are fine. acct 4711",
        {"okta-assignments": "not-listed", "app-assignment": "listed", "direct-or-nested": "nested", "scope-filter": "included"},
    )
    s = await chat.state()
    assert s.cause == "nested-groups"
    assert [f.check for f in s.findings][:1] == ["okta-assignments"]


async def test_okta_a_listed_user_without_a_mark_is_not_asked_about_nesting_or_group_rules():
    chat = await _walk(
        "Okta: one new user, ann@contoso.com, never shows up in Cato, others are fine. acct 4711",
        {"okta-assignments": "assigned-ok", "user-active": "inactive", "sdp-licence-events": "no", "okta-tasks": "no-task", "cma-missing-objects": "users"},
    )
    s = await chat.state()
    asked = [f.check for f in s.findings]
    assert "direct-or-nested" not in asked and "scope-filter" not in asked, asked
    assert s.cause == "user-inactive"


async def test_onelogin_a_failed_status_that_says_conflict_names_the_duplicate():
    chat = await _walk(
        "OneLogin -> Cato: one user, bo@contoso.com, never arrives, the rest do. acct 4711",
        {"onelogin-user-status": "failed-conflict", "assignment-membership": "direct", "scope-filter": "included", "cma-missing-objects": "users"},
    )
    s = await chat.state()
    assert s.cause == "duplicate-conflict"
    assert "scope-filter" not in [f.check for f in s.findings]
