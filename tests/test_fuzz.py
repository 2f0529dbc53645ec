"""Property-based fuzzing (hypothesis): the classifier, the engine and every HTTP endpoint, with arbitrary,
huge (1 MB+), binary and odd-unicode input — lone surrogates, RTL overrides, zero-width characters, NUL.

Properties: nothing raises; the classifier's answers are well-formed; the engine always answers a directed
message, its state stays consistent on every phase whatever the choice ids (valid, stale or invented); and
the running server never answers 5xx, never dies, never logs a traceback — every bad request gets a clear
4xx, every message a polite reply.

Example counts come from the `scim-help-fuzz` profile (bounded so the suite stays fast; raise them with
SCIM_HELP_FUZZ_EXAMPLES=2000 for a longer hunt).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import platform as P
from tests.support.fakes_proc import FakesProcess
from tests.support.stack import Stack

settings.register_profile(
    "scim-help-fuzz",
    max_examples=int(os.environ.get("SCIM_HELP_FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    print_blob=True,
)
FUZZ = settings.get_profile("scim-help-fuzz")
# The HTTP properties cost a round trip (and for Teams a reply to the fake) per example.
FUZZ_HTTP = settings(FUZZ, max_examples=max(50, FUZZ.max_examples * 3 // 4))

MB = 1024 * 1024

# ---- strategies --------------------------------------------------------------------------------------

ODD = [
    "\x00", "\u202e", "\u202d", "\u200f", "\u061c", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff",
    "\ud800", "\udfff", "\udbff\udc00", "\U0001f600", "e\u0301\u0301\u0301", "\ufb01", "\u0130", "\u00df",
    "\r\n", "\t", "\x1b[31m", "\u2028", "\ufffd", "\uffff", "\U0010ffff",
    "<@U0BOT>", "<@U0BOT|scim-help>", "<!here>", "<#C123|general>", "<https://example.com|link>", "<mailto:a@b.c|a@b.c>",
    "```code```", "`x`", "&amp;&lt;&#0;&#x110000;", ":smile:", "<at>scim-help</at>", "<p>hi</p>",
    "LicenseLimitExceeded", "401 Unauthorized", "AADSTS50076", "Entra ID", "okta", "jane.doe@contoso.com",
    "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", "yes", "no", "not sure", "start over", "talk to a human",
    "1", "2", "second", "%s%n%x", "{{7*7}}", "'; DROP TABLE conversations; --", "../../etc/passwd",
]
any_char = st.characters(codec=None, exclude_categories=())  # every code point, lone surrogates included
pieces = st.one_of(
    st.text(any_char, max_size=40),
    st.text(max_size=40),
    st.sampled_from(ODD),
    st.sampled_from(P.REPORTS + P.FOLLOW_UPS + P.OFF_TOPIC),
)
odd_text = st.lists(pieces, max_size=10).map("".join)
huge_text = st.builds(lambda t: (t or "x") * (1_100_000 // max(1, len(t or "x")) + 1), odd_text)
texts = st.one_of(odd_text, odd_text, odd_text, huge_text)

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), odd_text)
json_values = st.recursive(json_scalars, lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=12), inner, max_size=5)), max_leaves=20)


def dumps(obj: Any) -> bytes:
    """JSON as a client would send it: lone surrogates escaped (valid JSON text, odd Unicode)."""
    return json.dumps(obj, ensure_ascii=True).encode("ascii")


# ---- the classifier and text normalisation ----------------------------------------------------------------


@pytest.fixture(scope="module")
def classifier(bundle):
    from bot.classify import Classifier

    return Classifier(bundle)


class Ids:
    """The pack's ids (a small repr: hypothesis prints the arguments of a failing example)."""

    def __init__(self, bundle: Any) -> None:
        self.symptoms = set(bundle.symptoms)
        self.causes = set(bundle.causes)
        self.idps = set(bundle.idps)
        self.check_tests = {cid: c.tests for cid, c in bundle.checks.items()}
        self.flows = set(bundle.flows)

    def __repr__(self) -> str:
        return "<pack ids>"


@pytest.fixture(scope="module")
def ids(bundle):
    return Ids(bundle)


@FUZZ
@given(text=texts)
def test_classify_never_raises_and_is_well_formed(classifier, ids, text):
    bundle = ids
    c = classifier.classify(text)
    assert c.symptom is None or c.symptom in bundle.symptoms
    assert c.cause is None or c.cause in bundle.causes
    assert 0.0 <= c.confidence <= 1.0
    assert all(x in bundle.symptoms for x in c.clarify)
    for cand in c.candidates:
        assert cand.symptom in bundle.symptoms and 0.0 <= cand.score <= 1.0
    # The JSON contract (classify CLI, logs) must be encodable as UTF-8: no lone surrogate leaks out.
    json.dumps(c.to_json(), ensure_ascii=False).encode("utf-8")
    classifier.ambient_ok(c)
    classifier.explain(c).encode("utf-8")


@FUZZ
@given(text=texts)
def test_match_signature_never_raises(classifier, ids, text):
    bundle = ids
    hit = classifier.match_signature(text)
    if hit is not None:
        assert hit.cause in bundle.causes
        assert 0.0 <= hit.score <= 1.0
    idp = classifier.detect_idp(text)
    assert idp is None or idp in bundle.idps


@FUZZ
@given(text=st.one_of(texts, st.binary(max_size=2000), st.none(), st.integers()))
def test_normalize_is_clean_text(text):
    from bot.text import MAX_CHARS, normalize

    out = normalize(text)
    assert isinstance(out, str)
    out.encode("utf-8")  # no lone surrogates
    assert len(out) <= MAX_CHARS
    assert out == out.strip()
    assert "  " not in out and "\n" not in out
    assert not any(ch in out for ch in "\x00\u200b\u200d\ufeff\u2060")
    assert out.lower() == out


# ---- the engine -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine_kit(bundle):
    from bot.engine import Engine
    from bot.store.memory import MemoryStore

    loop = asyncio.new_event_loop()
    store = MemoryStore()
    engine = Engine(bundle, store)
    valid = set(bundle.symptoms)
    valid |= {f"{c.id}:{a.id}" for c in bundle.pack.checks for a in c.answers}
    valid |= {f"idp:{i.id}" for i in bundle.pack.idps}
    valid |= {"fixed:yes", "fixed:no", "field:skip", "helpful:yes", "helpful:no"}
    valid |= {f"cmd:{c}" for c in ("restart", "help", "escalate", "ticket", "cancel")}
    # The ask-back ("Do you mean: …?"): yes / no, or one of the options of the question it stands for.
    valid |= {"confirm:yes", "confirm:no"} | {f"confirm:{a.id}" for c in bundle.pack.checks for a in c.answers}
    valid |= {f"confirm:{i.id}" for i in bundle.pack.idps} | {f"confirm:{f}" for f in bundle.flows}
    valid |= set(bundle.topics) | {"switch:yes", "switch:no"}
    yield loop, engine, store, sorted(valid)
    loop.close()


def _choices(valid: list[str]):
    invented = st.one_of(
        st.text(any_char, max_size=30),
        st.sampled_from(["", " ", ":", "cmd:", "cmd:nope", "idp:", "idp:azure", "fixed:maybe", "x:y:z", "helpful:", "field:", "a" * 500]),
        st.sampled_from(valid).map(lambda v: v.upper()),
        st.sampled_from(valid).map(lambda v: v + ":x"),
    )
    return st.one_of(st.sampled_from(valid), st.sampled_from(valid), invented)


def _actions(valid: list[str]):
    text_action = st.builds(lambda t, d: {"text": t, "directed": d}, st.one_of(odd_text, st.sampled_from(P.REPORTS + P.FOLLOW_UPS)), st.sampled_from([True, True, True, False]))
    choice_action = st.builds(lambda c: {"choice": c}, _choices(valid))
    empty: st.SearchStrategy[dict[str, Any]] = st.just({})
    return st.lists(st.one_of(text_action, choice_action, choice_action, empty), min_size=1, max_size=25)


@FUZZ
@given(data=st.data())
def test_engine_survives_any_sequence_of_texts_and_choices(engine_kit, ids, data):
    from bot.events import Incoming
    from bot.state import State

    loop, engine, store, valid = engine_kit
    actions = data.draw(_actions(valid))
    cid = f"fuzz:{uuid.uuid4().hex}"
    turns_saved = 0
    for act in actions:
        msg = Incoming(channel="test", conversation_id=cid, user_id="U1", **act)
        turn = loop.run_until_complete(engine.handle(msg))
        assert turn.conversation_id == cid
        turn.model_dump_json().encode("utf-8")
        if turn.silent:
            assert not turn.replies
        else:
            turns_saved += 1
            assert turn.replies, (act, turn)
            assert all(r.text.strip() for r in turn.replies)
        for r in turn.replies:
            for ch in r.choices:
                assert ch.id in valid, ch.id  # every button the bot shows is one it understands
        raw = loop.run_until_complete(store.load(cid))
        if raw is None:
            assert turns_saved == 0
            continue
        state = State.model_validate_json(raw)
        assert state.turns == turns_saved
        if not turn.silent:  # a silent ambient turn leaves the stored conversation as it was
            assert state.phase == turn.phase
        assert len(state.transcript) <= 60
        if state.pending and state.pending.kind == "check":
            assert state.pending.id in ids.check_tests
            assert turn.probing == ids.check_tests[state.pending.id]
        # An ask-back ("Do you mean …?") stands in for the question it asks about.
        pending = state.pending.of if state.pending and state.pending.kind == "confirm" else state.pending
        if pending is not None and pending.kind == "switch" and pending.of is not None:
            pending = pending.of if pending.of.kind != "confirm" else pending.of.of
        if state.phase == "checking":
            assert state.flow in ids.flows
            assert pending is not None and pending.kind in ("check", "idp", "field", "switch")
        if state.phase == "resolving":
            # A complaint about the steps, with the IdP never named, asks which IdP before showing them again.
            assert state.cause in ids.causes and pending and (
                pending.kind in ("fixed", "switch") or (pending.kind == "idp" and pending.then is not None and pending.then.kind == "cause")
            )
        if state.phase == "escalating":
            assert pending is not None and pending.kind in ("field", "idp")
        assert state.cause is None or state.cause in ids.causes
        assert set(state.tried) <= ids.causes


def test_not_fixed_then_the_idp_question_is_checking(engine_kit):
    """Regression found by fuzzing: after "not fixed", when the next check needs the IdP first, the phase
    stayed 'resolving'."""
    from bot.events import Incoming

    loop, engine, store, _ = engine_kit
    cid = f"fuzz:{uuid.uuid4().hex}"
    first = loop.run_until_complete(engine.handle(Incoming(channel="test", conversation_id=cid, text="provisioning logs say LicenseLimitExceeded for some users")))
    assert first.phase == "resolving" and first.cause
    turn = loop.run_until_complete(engine.handle(Incoming(channel="test", conversation_id=cid, text="no")))
    assert turn.cause is None
    state = loop.run_until_complete(engine.state(cid))
    assert state.pending is not None and state.pending.kind in ("idp", "check")
    # The resolution is no longer pending: the conversation is back in the checks.
    assert turn.phase == "checking"


def test_engine_answers_odd_unicode_politely(engine_kit):
    """Regression: a lone surrogate (valid JSON `"\\ud800"`) used to crash the turn when the state was saved."""
    from bot.events import Incoming

    loop, engine, store, _ = engine_kit
    for text in ["new users never show up in Cato \ud800", "\udfff", "\x00\u202e\u200b", "a" * (2 * MB)]:
        cid = f"fuzz:{uuid.uuid4().hex}"
        turn = loop.run_until_complete(engine.handle(Incoming(channel="test", conversation_id=cid, text=text)))
        assert turn.replies
        turn.model_dump_json().encode("utf-8")
        for choice in ["\ud800", "cmd:help\udfff"]:
            t = loop.run_until_complete(engine.handle(Incoming(channel="test", conversation_id=cid, choice=choice)))
            assert t.replies


# ---- every HTTP endpoint of the running server -------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    fakes = FakesProcess().start()
    s = Stack(tmp_path_factory.mktemp("fuzz-server"), store="sqlite", fakes=fakes).start()
    s.log_mark = 0  # type: ignore[attr-defined]
    yield s
    s.stop()
    fakes.stop()


def _check(stack: Stack, resp: Any, what: Any) -> None:
    assert resp.status < 500, (what, resp)
    assert stack.srv.alive(), stack.srv.log()[-3000:]


def _log_problems(stack: Stack) -> list[str]:
    bad = []
    for line in stack.srv.log().splitlines():
        if "Traceback" in line or '"level": "ERROR"' in line or '"level": "CRITICAL"' in line:
            bad.append(line[:1500])
    return bad


@pytest.fixture
def clean_log(stack):
    before = len(_log_problems(stack))
    errors_before = stack.unhandled_errors()
    yield
    problems = _log_problems(stack)[before:]
    assert not problems, "\n".join(p[:600] for p in problems[:3])
    assert stack.unhandled_errors() == errors_before


web_ids = st.one_of(st.none(), st.just("web:" + "F" * 24), st.text(max_size=70), st.from_regex(r"^web:[A-Za-z0-9_-]{16,64}$", fullmatch=True))
web_bodies = st.one_of(
    st.builds(lambda c, t: {"conversation": c, "text": t}, web_ids, odd_text),
    st.builds(lambda c, ch: {"conversation": c, "choice": ch}, web_ids, st.one_of(odd_text, st.sampled_from(["cmd:help", "fixed:yes", "idp:okta", "initial-provisioning-fails"]))),
    st.dictionaries(st.sampled_from(["conversation", "text", "choice", "extra"]), json_values, max_size=4),
    json_values,
)


@FUZZ_HTTP
@given(body=web_bodies, ctype=st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", "", "application/x-www-form-urlencoded", "application/json; charset=latin-1"]))
def test_web_chat_api_never_fails(stack, clean_log, body, ctype):
    headers = {"Content-Type": ctype} if ctype else {}
    r = stack.srv.post("/api/chat", dumps(body), headers)
    _check(stack, r, body)
    assert r.headers.get("content-type", "").startswith("application/json"), r
    data = r.json()
    if r.status == 200:
        assert data["replies"] and data["conversation"].startswith("web:")
    else:
        assert 400 <= r.status < 500 and data.get("error") and data.get("message")


@FUZZ_HTTP
@given(raw=st.one_of(st.binary(max_size=4096), st.builds(lambda b: b * (1_100_000 // max(1, len(b)) + 1), st.binary(min_size=1, max_size=64))), path=st.sampled_from(["/api/chat", "/slack/events", "/api/messages"]), signed=st.booleans())
def test_binary_bodies_on_every_post_endpoint(stack, clean_log, raw, path, signed):
    headers = P.slack_headers(raw) if signed and path == "/slack/events" else {"Content-Type": "application/json"}
    r = stack.srv.post(path, raw, headers)
    _check(stack, r, (path, raw[:100]))
    assert r.status < 300 or 400 <= r.status < 500


slack_events = st.fixed_dictionaries(
    {
        "type": st.one_of(st.sampled_from(["message", "app_mention", "reaction_added", "member_joined_channel", "app_home_opened"]), odd_text),
        "channel": st.one_of(st.sampled_from(["D0FUZZ01", "C0FUZZ01", "G0FUZZ01"]), odd_text),
        "user": st.one_of(st.sampled_from(["U0ADMIN", "U0BOT", ""]), odd_text, st.none()),
        "text": st.one_of(texts, st.none(), json_values),
        "ts": st.one_of(st.just(P.next_ts()), odd_text, st.floats(allow_nan=False)),
    },
    optional={
        "thread_ts": st.one_of(st.just("1700000000.000100"), odd_text),
        "channel_type": st.sampled_from(["im", "channel", "group", "mpim", "???"]),
        "subtype": st.one_of(st.sampled_from(["bot_message", "message_changed", "file_share", "thread_broadcast"]), odd_text),
        "bot_id": odd_text,
        "blocks": json_values,
        "files": json_values,
    },
)


def _slack_payloads():
    envelope = st.builds(
        lambda ev, eid, team: {**P.event_callback(ev), "event_id": eid, "team_id": team},
        slack_events,
        st.one_of(st.just(None).map(lambda _: "Ev" + uuid.uuid4().hex[:10]), odd_text),
        st.one_of(st.just(P.TEAM), odd_text),
    )
    challenge = st.builds(lambda c: {"type": "url_verification", "challenge": c, "token": "x"}, odd_text)
    return st.one_of(envelope, envelope, challenge, json_values, st.dictionaries(st.sampled_from(["type", "event", "team_id", "payload", "command"]), json_values))


@FUZZ_HTTP
@given(payload=_slack_payloads(), as_form=st.sampled_from(["json", "json", "payload", "command"]))
def test_slack_events_with_signed_arbitrary_payloads(stack, clean_log, payload, as_form):
    if as_form == "json":
        body, ctype = dumps(payload), "application/json"
    elif as_form == "payload":  # interactivity: form field `payload` holding JSON
        body, ctype = urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded"
    else:  # slash command form
        fields = payload if isinstance(payload, dict) else {"text": payload}
        body = urlencode({str(k): json.dumps(v) if not isinstance(v, str) else v for k, v in fields.items()} | {"command": "/scim-help"}, quote_via=quote, errors="surrogatepass").encode()
        ctype = "application/x-www-form-urlencoded"
    headers = P.slack_headers(body)
    headers["Content-Type"] = ctype
    r = stack.srv.post("/slack/events", body, headers)
    _check(stack, r, payload)


teams_activities = st.fixed_dictionaries(
    {
        "type": st.one_of(st.sampled_from(["message", "conversationUpdate", "installationUpdate", "invoke", "messageReaction", "typing", "event"]), odd_text),
        "conversation": st.one_of(
            st.fixed_dictionaries({"id": st.one_of(st.just("a:fuzz"), odd_text)}, optional={"conversationType": st.sampled_from(["personal", "groupChat", "channel", "x"]), "tenantId": odd_text, "name": odd_text}),
            json_values,
        ),
    },
    optional={
        "id": odd_text,
        "text": st.one_of(texts, json_values),
        "value": json_values,
        "channelId": st.one_of(st.sampled_from(["msteams", "emulator", "webchat", "slack", "directline"]), odd_text),
        "from": st.one_of(st.fixed_dictionaries({"id": odd_text}, optional={"name": odd_text, "aadObjectId": odd_text}), json_values),
        "recipient": st.one_of(st.just({"id": P.BOT_ID, "name": "scim-help"}), json_values),
        "entities": st.one_of(st.lists(st.fixed_dictionaries({"type": st.sampled_from(["mention", "clientInfo", "x"])}, optional={"mentioned": json_values, "text": odd_text}), max_size=3), json_values),
        "channelData": json_values,
        "membersAdded": json_values,
        "name": odd_text,
        "replyToId": odd_text,
        "textFormat": st.sampled_from(["plain", "markdown", "xml"]),
        "attachments": json_values,
        "locale": odd_text,
        "timestamp": odd_text,
    },
)


@FUZZ_HTTP
@given(activity=st.one_of(teams_activities, teams_activities, json_values), keep_service_url=st.booleans())
def test_teams_endpoint_with_arbitrary_activities(stack, clean_log, activity, keep_service_url):
    if isinstance(activity, dict):
        # Replies go to serviceUrl: never let it point anywhere but the local fake.
        activity = dict(activity)
        if keep_service_url:
            activity["serviceUrl"] = stack.fakes.connector_url
        else:
            activity.pop("serviceUrl", None)
    r = stack.srv.post("/api/messages", dumps(activity), {"Content-Type": "application/json"})
    if r.status == 501 and isinstance(activity, dict) and activity.get("type") == "invoke":
        # Bot Framework's answer to an invoke the bot does not implement (botbuilder's ActivityHandler):
        # the protocol's "not supported", not a server failure.
        assert stack.srv.alive()
        return
    _check(stack, r, activity)


latin1_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=60)


@FUZZ_HTTP
@given(
    path=st.sampled_from(["/healthz", "/readyz", "/metrics"]),
    query=st.dictionaries(st.text(max_size=10), odd_text, max_size=3),
    headers=st.dictionaries(st.sampled_from(["Accept", "X-Forwarded-For", "User-Agent", "Accept-Encoding", "Cookie", "X-Anything"]), latin1_text, max_size=4),
    method=st.sampled_from(["GET", "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]),
)
def test_operational_endpoints(stack, clean_log, path, query, headers, method):
    from tests.support.procs import http

    qs = urlencode(query, quote_via=quote, errors="surrogatepass")
    r = http(stack.srv.port, method, path + ("?" + qs if qs else ""), b"" if method in ("POST", "PUT") else None, headers)
    _check(stack, r, (method, path, query, headers))
    if method in ("GET", "HEAD"):
        assert r.status == 200, r
    else:
        assert r.status == 405, r


@pytest.mark.parametrize("path", ["/api/chat", "/slack/events", "/api/messages"])
@pytest.mark.parametrize("kind", ["json-text", "binary", "form", "deep-json"])
def test_huge_bodies_get_a_clear_4xx(stack, clean_log, path, kind):
    import random

    size = 3 * MB // 2
    if kind == "json-text":
        body = dumps({"conversation": None, "text": "\u202e\ud800 new users missing " * (size // 30), "type": "message", "event": {"text": "x" * size}})
        ctype = "application/json"
    elif kind == "binary":
        body = random.Random(1).randbytes(size)
        ctype = "application/octet-stream"
    elif kind == "form":
        body = urlencode({"payload": "{" * size}).encode()
        ctype = "application/x-www-form-urlencoded"
    else:
        body = b"[" * 200_000 + b"]" * 200_000  # nested deeper than any parser's recursion limit
        ctype = "application/json"
    headers = P.slack_headers(body) if path == "/slack/events" else {}
    headers["Content-Type"] = ctype
    r = stack.srv.post(path, body, headers)
    _check(stack, r, (path, kind))
    assert 400 <= r.status < 500, (path, kind, r)


def test_odd_unicode_messages_get_polite_replies_on_every_channel(stack, clean_log):
    """Lone surrogates, RTL, zero-width and NUL in real messages: answered, on web, Slack and Teams."""
    nasty = "new hires never show up in Cato \ud800\u202e\u200b\x00 \U0001f600"
    r = stack.srv.post("/api/chat", dumps({"text": nasty}), {"Content-Type": "application/json"})
    assert r.status in (200, 400), r
    if r.status == 200:
        assert r.json()["replies"]
    dm = f"D{uuid.uuid4().hex[:10].upper()}"
    body, headers = P.signed(P.event_callback(P.dm_event(dm, "U0ADMIN", nasty)))
    assert stack.srv.post("/slack/events", body, headers).status == 200
    stack.wait_slack_posts(1, channel=dm)
    conv = f"a:{uuid.uuid4().hex}"
    act = P.teams_message(stack.fakes.connector_url, conv, nasty)
    assert stack.srv.post("/api/messages", dumps(act), {"Content-Type": "application/json"}).status < 300
    from tests.support.procs import wait_until

    wait_until(lambda: stack.connector_replies(conv), 30, what="the Teams reply")
    # A real answer, not an apology for an internal error.
    posted = stack.slack_posts(channel=dm)[0]["text"] + stack.connector_replies(conv)[0]["text"]
    assert "went wrong" not in posted, posted
