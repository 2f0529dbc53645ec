"""Transcripts of the conversation flows that free text must not break (issue: understanding on real input).

Each test reads like the conversation it guards: what the admin typed, and what the bot must (and must
not) do with it. They run on the memory store — the store backends are held by the contract suite.
"""

from __future__ import annotations

import json

import pytest

from bot.engine import Engine
from bot.events import Incoming, Turn
from bot.store.memory import MemoryStore
from knowledge.loader import load_pack
from tests.support.chat import Chat

BUNDLE = load_pack()


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(BUNDLE, MemoryStore())


async def walk_to_resolution(chat: Chat, idp: str) -> Turn:
    """Pick a symptom and answer truthfully for `insufficient-licenses` until the resolution is shown."""
    from bench.oracle import truthful_answer

    await chat.click("initial-provisioning-fails")
    for _ in range(12):
        s = await chat.state()
        if s.phase == "resolving":
            return chat.turns[-1]
        assert s.pending is not None
        if s.pending.kind == "idp":
            await chat.click(f"idp:{idp}")
            continue
        check = BUNDLE.checks[s.pending.id or ""]
        await chat.click(f"{check.id}:{truthful_answer(check, 'insufficient-licenses').id}")
    raise AssertionError("no resolution")


# ---- opening messages --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "report",
    [
        "users aren't syncing from entra to cato",
        "provisioning to cato stopped working",
        "cato isn't getting our users from okta",
        "okta users not syncing to cato",
        "scim sync to cato is broken",
    ],
)
async def test_a_plain_scim_report_is_never_called_off_topic(engine, report):
    chat = Chat(engine)
    turn = await chat.say(report)
    assert turn.phase != "off-topic"
    assert "doesn't look like" not in chat.text()
    if turn.phase == "clarifying":
        # In the domain but unclear: the symptom picker, every symptom offered.
        assert set(chat.choices()) >= set(BUNDLE.symptoms)


async def test_a_really_off_topic_message_gets_the_short_pointer(engine):
    chat = Chat(engine)
    turn = await chat.say("the printer on floor 3 is jammed again")
    assert turn.phase == "off-topic"


async def test_talk_to_a_human_at_the_end_of_an_opening_hands_off_and_keeps_the_report(engine):
    chat = Chat(engine)
    turn = await chat.say("Test Connection fails with 401 Unauthorized in Entra, just let me talk to a human")
    assert turn.phase == "escalating"
    s = await chat.state()
    assert s.symptom == "initial-provisioning-fails"
    assert s.idp == "entra"
    assert s.escalation_reason


async def test_an_attribute_named_in_the_opening_is_not_asked_again(engine):
    chat = Chat(engine)
    turn = await chat.say("We changed the Department of a few users in Entra but Cato still shows the old department")
    s = await chat.state()
    assert s.symptom == "updates-not-reflected"
    asked = [r.title for r in turn.replies if r.kind == "question"]
    assert not any("attribute" in (t or "").lower() and "change" in (t or "").lower() for t in asked), asked


async def test_what_the_report_settles_is_not_contradicted_by_a_guess(engine):
    # "Department" settles it (Cato does not take that attribute); the model also read "an update that
    # never went across" into the words, and the bot used to list both as already known.
    chat = Chat(engine)
    await chat.say("We changed the Department of 20 users in Entra and Cato still shows the old one. acct 4711")
    s = await chat.state()
    assert s.cause == "attribute-not-taken"
    assert not s.pinned
    known = next(r.text for r in chat.last.replies if "already tell" in r.text)
    assert ";" not in known, known


async def test_the_idp_is_kept_as_the_admin_named_it(engine):
    chat = Chat(engine)
    await chat.say("JumpCloud users are not showing up in Cato at all, nobody got provisioned")
    s = await chat.state()
    assert s.idp == "other"
    assert s.idp_named == "JumpCloud"


# ---- answers to a check ------------------------------------------------------------------------


async def test_a_question_about_the_step_re_explains_it_and_keeps_it_pending(engine):
    chat = Chat(engine)
    await chat.click("initial-provisioning-fails")
    await chat.until_check("sdp-licence-events")
    before = await chat.state()
    turn = await chat.say("hmm where exactly is that? i don't see that filter")
    after = await chat.state()
    assert after.pending is not None and after.pending.kind == "check" and after.pending.id == "sdp-licence-events"
    assert after.finding_for("sdp-licence-events") is None, "a question is never an answer"
    assert len(after.findings) == len(before.findings)
    assert any(r.kind == "question" for r in turn.replies)


@pytest.mark.parametrize("channel", ["teams", "slack", "web", "terminal", "test"])
async def test_a_number_picks_the_answer_the_renderer_numbered(engine, channel):
    chat = Chat(engine, channel=channel)
    await chat.click("initial-provisioning-fails")
    await chat.until_check("sdp-licence-events")
    labels = [c.label for c in chat.question().choices]
    await chat.say("2")
    s = await chat.state()
    f = s.finding_for("sdp-licence-events")
    assert f is not None, "“2” is the second choice shown"
    answer = BUNDLE.checks["sdp-licence-events"].answers[1]
    assert f.answer == answer.id, labels


async def test_an_unclear_reply_is_asked_back_instead_of_guessed(engine):
    chat = Chat(engine)
    await chat.click("initial-provisioning-fails")
    await chat.until_check("sdp-licence-events")
    await chat.say("hmm maybe, there might be one or two? not sure they are the licence ones")
    s = await chat.state()
    assert s.finding_for("sdp-licence-events") is None or s.finding_for("sdp-licence-events").answer == "unsure"


# ---- free-text answers to the checks, and odd clicks (from test_engine.py) --------------------


@pytest.mark.parametrize(
    "answer,probing_after,cause",
    [
        ("yep", None, "credentials-mismatch"),
        ("yes, it says 401", None, "credentials-mismatch"),
        ("it says 401", None, "credentials-mismatch"),
        ("Unauthorized", None, "credentials-mismatch"),
        ("nope, looks fine", "insufficient-licenses", None),
        ("no it's green, connection works", "insufficient-licenses", None),
        ("You appear to have entered invalid credentials. Please confirm you are using the correct information", None, "credentials-mismatch"),
    ],
)
async def test_free_text_answers_to_test_connection(engine, answer, probing_after, cause):
    chat = Chat(engine)
    await chat.say("Entra: SCIM provisioning to Cato never created a single user")
    if chat.last.symptom != "initial-provisioning-fails":
        await chat.click("cmd:restart")
        await chat.click("initial-provisioning-fails")
    state = await engine.state(chat.cid)
    if state.pending.kind == "idp":
        await chat.click("idp:entra")
    if (await engine.state(chat.cid)).pending.id == "provisioning-current-status":
        # Entra's first look is the job's Current Status; an admin who cannot find it gets the credentials test.
        await chat.click("provisioning-current-status:unsure")
    assert chat.last.probing == "credentials-mismatch"
    turn = await chat.say(answer)
    assert turn.cause == cause
    if probing_after:
        # Credentials ruled out: the next check tests something else.
        assert turn.probing not in (None, "credentials-mismatch")
        state = await engine.state(chat.cid)
        assert state.finding_for("test-connection").answer == "succeeds"


@pytest.mark.parametrize(
    "answer,cause",
    [
        ("I do see Sdp licence events", "insufficient-licenses"),
        ("yeah there are a few", "insufficient-licenses"),
        ("no sdp licence events at all", None),
        ("nothing there", None),
    ],
)
async def test_free_text_answers_to_licence_events(engine, answer, cause):
    chat = Chat(engine)
    await chat.click("users-not-working")
    await chat.click("email-field:valid")
    await chat.click("licence-assign-events:no")
    assert chat.last.probing == "insufficient-licenses"
    turn = await chat.say(answer)
    if cause:
        assert turn.cause == cause
    else:
        # Everything ruled out or unlikely: the engine offers the last cause standing or escalates.
        assert turn.cause != "insufficient-licenses"


async def test_unclear_answers_are_reasked_then_treated_as_not_sure(engine):
    chat = Chat(engine)
    await chat.click("users-not-working")
    probing = chat.last.probing
    for gibberish in ("purple monkey dishwasher", "¯\\_(ツ)_/¯", "asdfgh"):
        turn = await chat.say(gibberish)
        assert turn.phase == "checking" and turn.probing == probing
        assert any(r.kind == "question" for r in turn.replies)
    turn = await chat.say("qwerty")
    state = await engine.state(chat.cid)
    # The fourth unclear reply counts as "not sure", and the next check is asked.
    assert state.finding_for("email-field").answer == "unsure"
    assert turn.phase == "checking" and state.pending.kind == "check" and state.pending.id != "email-field"
    assert turn.probing != probing


async def test_label_typed_back_is_fuzzy_matched(engine):
    chat = Chat(engine)
    await chat.click("additional-users-missing")
    await chat.click("cma-missing-objects:users")  # the playbook's first step: what is missing in the CMA
    state = await engine.state(chat.cid)
    if state.pending.kind == "idp":
        await chat.click("idp:entra")
    if (await engine.state(chat.cid)).pending.id == "assignment-membership":
        await chat.click("assignment-membership:direct")  # assigned directly: neither unassigned nor nested
    assert chat.last.probing == "scoping"  # then provision on demand: it tells three causes apart
    turn = await chat.say("skipped - not in scpoe")
    assert turn.cause == "scoping"


async def test_stale_and_double_clicks_do_not_answer_twice(engine):
    chat = Chat(engine)
    await chat.click("initial-provisioning-fails")
    await chat.click("idp:okta")  # Okta's first check here is the credentials test
    first = await chat.click("test-connection:succeeds")
    assert first.probing not in (None, "credentials-mismatch")
    again = await chat.click("test-connection:succeeds")  # the same button, clicked twice
    assert again.probing == first.probing
    assert "already answered" in chat.text()
    state = await engine.state(chat.cid)
    assert [f.check for f in state.findings].count("test-connection") == 1
    assert state.questions == 2


async def test_unknown_choice_ids_are_handled(engine):
    chat = Chat(engine)
    await chat.click("not-a-real-choice")
    assert chat.last.phase == "triage" and chat.last.replies  # answered, nothing started
    await chat.click("initial-provisioning-fails")
    assert (await chat.state()).pending.kind == "idp"
    turn = await chat.click("test-connection:does-not-exist")  # no such answer, and not what is asked
    assert turn.phase == "checking" and (await chat.state()).pending.kind == "idp"


# ---- after the resolution ----------------------------------------------------------------------


async def test_a_complaint_about_the_wrong_idp_shows_the_right_steps_and_is_not_fixed(engine):
    chat = Chat(engine)
    await walk_to_resolution(chat, "entra")
    turn = await chat.say("those steps are for entra, I said onelogin. there is no such menu")
    s = await chat.state()
    assert s.outcome is None and s.phase == "resolving", "a complaint is never “fixed”"
    assert s.idp == "onelogin"
    assert any(r.kind == "resolution" for r in turn.replies), "the steps again, in OneLogin's words"
    assert "glad" not in chat.text().lower()


async def test_it_is_fixed_in_other_words(engine):
    chat = Chat(engine)
    await walk_to_resolution(chat, "okta")
    await chat.say("ok that was it, bought 50 more seats, users are coming in now. thanks")
    s = await chat.state()
    assert s.outcome == "resolved"


async def test_a_reply_nothing_recognises_is_asked_back_not_taken_for_a_complaint(engine):
    # Found by the fuzz suite: "NTRA" after "did that fix it?" read as a complaint at P 0.25 and the bot
    # apologised and asked for the IdP again. A guess the model is that unsure of is asked back instead.
    chat = Chat(engine)
    await chat.say("provisioning logs say LicenseLimitExceeded for some users")
    assert (await chat.state()).pending.kind == "fixed"
    await chat.say("NTRA")
    s = await chat.state()
    assert s.phase == "resolving" and s.pending.kind == "fixed" and s.outcome is None
    assert "sorry about that" not in chat.text().lower()


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("there is a red mark next to her", None),  # four errors have a red !: offered back, all four
        ("she's listed, no red mark", "assigned-ok"),
        # the error's own words: the catalogue names the cause (Create Users is off)
        ("there's a red ! saying Matching user not found", "provisioning-off"),
    ],
)
async def test_okta_assignments_a_red_mark_alone_is_offered_back(engine, reply, expected):
    chat = Chat(engine)
    await chat.say("Okta: one new user, ann@contoso.com, never shows up in Cato, others are fine. acct 4711")
    assert (await chat.state()).pending.id == "okta-assignments"
    await chat.say(reply)
    s = await chat.state()
    if expected is None:
        assert s.pending.kind == "confirm" and len(s.pending.maybe) == 4
        assert s.finding_for("okta-assignments") is None
        await chat.say("3")
        assert s.pending.maybe[2] == (await chat.state()).finding_for("okta-assignments").answer
    elif expected == "provisioning-off":
        assert s.cause == expected
    else:
        assert s.finding_for("okta-assignments").answer == expected


async def test_still_broken_moves_to_the_next_cause(engine):
    chat = Chat(engine)
    await walk_to_resolution(chat, "okta")
    await chat.say("nope, same thing, still nobody in cato")
    s = await chat.state()
    assert "insufficient-licenses" in s.tried
    assert s.outcome is None


# ---- ticket fields -----------------------------------------------------------------------------


async def _to_account_field(chat: Chat) -> None:
    await chat.click("cannot-enable")
    await chat.say("talk to a human")
    s = await chat.state()
    assert s.phase == "escalating"


async def test_skip_words_skip_a_field_and_questions_are_not_values(engine):
    chat = Chat(engine)
    await _to_account_field(chat)
    for _ in range(4):
        s = await chat.state()
        if s.pending and s.pending.kind == "field" and s.pending.id == "account":
            break
        await chat.click("idp:okta")
    await chat.say("wait, do I need to be super admin for this?")
    s = await chat.state()
    assert s.account is None, "a question is not an account name"
    await chat.say("Northwind Traders, account 40417")
    s = await chat.state()
    assert s.account and "40417" in s.account and "Northwind" in s.account
    for _ in range(4):
        s = await chat.state()
        if s.pending is None or s.pending.kind != "field":
            break
        if s.pending.id == "upns":
            await chat.say("n/a, nobody provisioned yet")
            s = await chat.state()
            assert "upns" in s.skipped and not s.upns
        elif s.pending.id == "groups":
            await chat.say("skip")
    turn = chat.turns[-1]
    if turn.ticket is not None:
        assert "skip" not in (turn.ticket.account or "").lower()
        assert "[clicked" not in turn.ticket.body


# ---- state -------------------------------------------------------------------------------------


async def test_a_version_1_state_still_loads_and_continues():
    store = MemoryStore()
    engine = Engine(BUNDLE, store)
    cid = "test:v1"
    old = {
        "version": 1,
        "id": cid,
        "channel": "test",
        "phase": "checking",
        "pending": {"kind": "idp", "id": None, "reasks": 0, "then": "check:test-connection"},
        "symptom": "initial-provisioning-fails",
        "findings": [],
        "transcript": [],
    }
    async with store.hold(cid) as held:
        held.save(json.dumps(old), 3600)
    turn = await engine.handle(Incoming(channel="test", conversation_id=cid, choice="idp:entra"))
    assert turn.phase == "checking"
    s = await engine.state(cid)
    assert s.idp == "entra" and s.pending.kind == "check" and s.pending.id == "test-connection"
