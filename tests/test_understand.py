"""The reader (bot/understand/): one Reading per message, read like short transcripts — what the bot asked
(the Context), what the admin typed, what the reading says. The examples quoted in issue #12 are here
verbatim; none of these lines is a corpus line."""

from __future__ import annotations

import pytest

from bot.understand import Context, Option, PromptSpec, Reader, Reading


@pytest.fixture(scope="module")
def reader(bundle) -> Reader:
    return Reader(bundle)


TEST_CONNECTION = PromptSpec(
    "check",
    "test-connection",
    (Option("fails", "It shows an error", "yes"), Option("succeeds", "It succeeds", "no"), Option("unsure", "Not sure / can't find it", "unsure")),
)
SCOPE_FILTER = PromptSpec("check", "scope-filter")  # options filled in from the pack
FIXED = PromptSpec("fixed")


def field(name: str) -> Context:
    return Context(pending=PromptSpec("field", name), symptom="initial-provisioning-fails")


def during(spec: PromptSpec, symptom: str = "initial-provisioning-fails", idp: str | None = None) -> Context:
    return Context(pending=spec, symptom=symptom, idp=idp)


# ---- openings -------------------------------------------------------------------------------------------


def test_reading_is_typed_and_normalised_once(reader: Reader) -> None:
    r = reader.read("<@U123> new hires   never show up in *Cato*", Context())
    assert isinstance(r, Reading)
    assert r.text == "new hires never show up in *Cato*"
    assert r.in_domain and r.symptom == "additional-users-missing" and r.act == "report"
    assert r.symptoms[0].symptom == "additional-users-missing"


def test_secrets_are_scrubbed_before_anything_else(reader: Reader) -> None:
    r = reader.read("test connection fails, token is eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJlMTIz", Context())
    assert "eyJ" not in r.text and "[redacted secret]" in r.text


def test_talk_to_a_human_at_the_end_of_an_opening_is_escalate(reader: Reader) -> None:
    r = reader.read("new hires never show up in Cato since Monday. honestly just let me talk to a human", Context())
    assert "escalate" in r.commands
    assert r.in_domain  # the report is still read


def test_contact_support_inside_a_pasted_error_is_no_command(reader: Reader) -> None:
    r = reader.read(
        "Can't enable SCIM provisioning. Please contact Support and refer to Account ID Configuration - Email", Context()
    )
    assert r.commands == ()
    assert r.cause == "account-requirements" and r.evidence[0].via == "signature"


def test_department_in_the_opening_answers_which_attribute(reader: Reader) -> None:
    r = reader.read("we changed the Department of 20 users in Entra, Cato still shows the old one", Context())
    assert r.symptom == "updates-not-reflected"
    assert r.entities.attribute == "department"
    assert ("updated-field", "other-attribute") in {(a.check, a.answer) for a in r.answers}


def test_idp_kept_as_written(reader: Reader) -> None:
    r = reader.read("We use JumpCloud to push users to Cato via SCIM but none arrive", Context())
    assert r.entities.idp == "other" and r.entities.idp_named == "JumpCloud"


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        ("we're out of licences", "insufficient-licenses"),
        ("they have no email in Cato", "missing-attributes"),
        ("the interns group is a member of the assigned group", "nested-groups"),
    ],
)
def test_plain_statement_of_a_cause_mid_conversation(reader: Reader, text: str, cause: str) -> None:
    r = reader.read(text, Context(pending=PromptSpec("check", "cma-missing-objects"), symptom="additional-users-missing"))
    assert r.cause == cause
    assert any(e.cause == cause and e.via == "statement" for e in r.evidence)


def test_plain_statement_in_an_opening(reader: Reader) -> None:
    r = reader.read("users arrive in Cato but they have no email in Cato", Context())
    assert r.symptom == "users-not-working" and r.cause == "missing-attributes"


@pytest.mark.parametrize(
    "text",
    [
        "users aren't syncing from entra to cato",
        "provisioning to cato stopped working",
        "cato isn't getting our users from okta",
        "okta users not syncing to cato",
        "scim sync to cato is broken",
    ],
)
def test_plainly_worded_reports_are_ours(reader: Reader, text: str) -> None:
    """Issue #12's examples: in the domain (never "not SCIM"); the symptom may be unclear (the picker)."""
    r = reader.read(text, Context())
    assert r.in_domain and r.act == "report"
    assert r.symptoms  # likeliest first, for the picker


def test_off_topic(reader: Reader) -> None:
    r = reader.read("the printer on floor 3 is jammed", Context())
    assert not r.in_domain and r.symptom is None and not r.confident


# ---- after the resolution: fixed? -----------------------------------------------------------------------


def test_fixed_in_free_text(reader: Reader) -> None:
    r = reader.read("ok that was it, bought 50 more seats, users are coming in now. thanks", during(FIXED))
    assert r.act == "fixed" and r.reply is not None and r.reply.option == "yes"


def test_complaint_is_never_fixed(reader: Reader) -> None:
    r = reader.read("those steps are for entra, I said onelogin. there is no such menu", during(FIXED, idp="entra"))
    assert r.act == "complaint"
    assert r.reply is None
    assert r.entities.idp == "onelogin"


@pytest.mark.parametrize("text", ["nope still nothing", "didn't help", "same problem as before", "no change"])
def test_still_broken(reader: Reader, text: str) -> None:
    r = reader.read(text, during(FIXED))
    assert r.act == "still-broken" and r.reply is not None and r.reply.option == "no"


# ---- checks ---------------------------------------------------------------------------------------------


def test_a_question_about_the_step_is_not_an_answer(reader: Reader) -> None:
    r = reader.read("hmm where exactly is that? i don't see that filter", during(SCOPE_FILTER, "additional-users-missing"))
    assert r.act == "question" and r.reply is None


@pytest.mark.parametrize(("text", "option"), [("1", "fails"), ("2", "succeeds"), ("3", "unsure"), ("#2", "succeeds"), ("option 1", "fails"), ("the second one", "succeeds")])
def test_numbers_the_renderer_shows(reader: Reader, text: str, option: str) -> None:
    r = reader.read(text, during(TEST_CONNECTION))
    assert r.act == "answer" and r.reply.option == option and r.reply.via == "number"


def test_number_out_of_range_is_no_option(reader: Reader) -> None:
    r = reader.read("4", during(TEST_CONNECTION))
    assert r.reply is None or r.reply.option is None


def test_label_typed_back_with_a_typo(reader: Reader) -> None:
    r = reader.read("It shows an eror", during(TEST_CONNECTION))
    assert r.reply.option == "fails"


def test_free_text_answer(reader: Reader) -> None:
    r = reader.read("it says 401", during(TEST_CONNECTION))
    assert r.act == "answer" and r.reply.option == "fails"


def test_choice_id_as_text(reader: Reader) -> None:
    r = reader.read("test-connection:succeeds", during(TEST_CONNECTION))
    assert r.reply.option == "succeeds" and r.reply.via == "choice"


def test_torn_between_options_asks_back(reader: Reader) -> None:
    spec = PromptSpec("check", "x", (Option("a", "Only through a nested group", says=("group",)), Option("b", "A whole group", says=("group",))))
    r = reader.read("group", during(spec))
    assert r.reply is not None and r.reply.option is None and set(r.reply.maybe) == {"a", "b"}


# ---- ticket fields ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["skip", "n/a", "none", "not sure", "n/a, nobody provisioned yet"])
def test_skips(reader: Reader, text: str) -> None:
    for name in ("account", "upns", "groups"):
        r = reader.read(text, field(name))
        assert r.act == "skip", (name, text)


@pytest.mark.parametrize("text", ["wait, do I need to be super admin for this?", "what do you mean by account number?"])
def test_a_question_is_not_a_value(reader: Reader, text: str) -> None:
    r = reader.read(text, field("account"))
    assert r.act == "question" and (r.reply is None or r.reply.value is None)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Contoso (12345)", "Contoso (12345)"),
        ("our account is Contoso, number 12345", "Contoso (12345)"),
        ("12345", "12345"),
        ("Contoso Ltd", "Contoso Ltd"),
        ("account name: Fabrikam / 778812", "Fabrikam (778812)"),
    ],
)
def test_account_values_normalised(reader: Reader, text: str, value: str) -> None:
    r = reader.read(text, field("account"))
    assert r.act == "answer" and r.reply.value == value


def test_upn_list(reader: Reader) -> None:
    r = reader.read("jane.doe@contoso.com and Bob.Smith@contoso.com", field("upns"))
    assert r.reply.value == ("jane.doe@contoso.com", "bob.smith@contoso.com")


@pytest.mark.parametrize(
    ("text", "groups"),
    [("Interns, Sales-EU and Contractors", ("Interns", "Sales-EU", "Contractors")), ("- Interns\n- Sales EU\n", ("Interns", "Sales EU"))],
)
def test_group_list(reader: Reader, text: str, groups: tuple[str, ...]) -> None:
    r = reader.read(text, field("groups"))
    assert r.reply.value == groups


# ---- IdP prompt ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "idp", "named"), [("2", "okta", None), ("JumpCloud", "other", "JumpCloud"), ("we're on Azure AD", "entra", "Azure AD")])
def test_idp_prompt(reader: Reader, text: str, idp: str, named: str | None) -> None:
    r = reader.read(text, Context(pending=PromptSpec("idp", "idp")))
    assert r.reply.option == idp
    if named:
        assert r.reply.value == named


# ---- commands anywhere ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "command"),
    [("talk to a human", "escalate"), ("start over", "restart"), ("show ticket", "ticket"), ("help", "help"), ("this isn't going anywhere, can I speak to someone at support?", "escalate")],
)
def test_commands(reader: Reader, text: str, command: str) -> None:
    r = reader.read(text, during(TEST_CONNECTION))
    assert command in r.commands


def test_restart_provisioning_is_not_restart(reader: Reader) -> None:
    r = reader.read("I pressed restart provisioning in Entra and it is still failing", during(FIXED))
    assert "restart" not in r.commands


# ---- never raises ----------------------------------------------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_SPECS = [None, TEST_CONNECTION, SCOPE_FILTER, FIXED, PromptSpec("field", "account"), PromptSpec("field", "groups"), PromptSpec("idp", "idp"), PromptSpec("helpful")]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.text(max_size=300), st.text(alphabet="0123456789#(). -@\n", max_size=40)), spec=st.sampled_from(_SPECS))
def test_any_text_reads(reader: Reader, text: str, spec) -> None:
    r = reader.read(text, Context(pending=spec, symptom="initial-provisioning-fails" if spec else None))
    assert isinstance(r, Reading)
    assert r.act in ("report", "answer", "question", "complaint", "info", "fixed", "still-broken", "skip", "human", "restart", "aside", "unclear")
    if r.reply is not None and r.reply.option and spec is not None and spec.options:
        assert r.reply.option in {o.id for o in spec.options} | {"skip"}


@pytest.mark.parametrize("text", ["", "   ", ":sob:", "<@U123>", "\x00\udc80", "a" * 1_000_000, b"\xff\xfe bytes", None])
def test_degenerate_input(reader: Reader, text) -> None:
    r = reader.read(text, Context())
    assert not r.in_domain and r.symptom is None and r.cause is None
    assert reader.classify(text)["in_domain"] is False


# ---- the error catalogue (pack v2) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "cause", "topic", "error"),
    [
        ("provisioning job shows EncounteredQuarantineException", None, "quarantine", "entra-quarantine"),
        ("Skip reason = NotEffectivelyEntitled for two new users", "group-not-assigned", None, "entra-not-entitled"),
        ("LicenseLimitExceeded in the entra provisioning logs", "insufficient-licenses", None, "entra-licence-limit"),
    ],
)
def test_pasted_catalogue_errors(reader: Reader, text: str, cause: str | None, topic: str | None, error: str) -> None:
    r = reader.read(text, Context())
    ev = r.evidence[0]
    assert (ev.cause, ev.topic, ev.error) == (cause, topic, error) and ev.via == "error-code" and ev.source
    assert r.in_domain


def test_a_negated_error_is_no_evidence(reader: Reader) -> None:
    r = reader.read("the logs do not say LicenseLimitExceeded, they just skip the users", Context())
    assert not any(e.error == "entra-licence-limit" for e in r.evidence)


def test_department_change(reader: Reader) -> None:
    r = reader.read("changed the department in Entra, Cato still shows the old department", Context())
    assert r.symptom == "updates-not-reflected" and r.entities.attribute == "department"


def test_a_yes_no_check_answered_in_unknown_words_is_taken_or_offered_back_never_guessed():
    """Words no rule knows ("direct member, I'm looking at her right now") go to the answer-kind model: it
    takes the option when sure, offers it back when it leans; a question stays a question."""
    from bot.understand import Context, Option, PromptSpec, Reader
    from knowledge.loader import load_pack

    reader = Reader(load_pack())
    check = reader.bundle.checks["direct-or-nested"]
    spec = PromptSpec("check", check.id, tuple(Option(a.id, str(a.label), a.kind) for a in check.answers))
    ctx = Context(pending=spec, symptom="additional-users-missing")
    direct = reader.read("Direct member, I'm looking at her right now", ctx)
    assert direct.act == "answer" and direct.reply is not None
    assert direct.reply.option == "direct" or direct.reply.maybe == ("direct",)
    question = reader.read("where do I see whether she is a direct member?", ctx)
    assert question.act == "question" and (question.reply is None or question.reply.option is None)


def test_a_flow_id_typed_as_shown_is_that_flow():
    from bot.understand import Reader
    from knowledge.loader import load_pack

    reader = Reader(load_pack())
    typed = reader.read("users-not-working please")
    assert typed.in_domain and typed.symptom == "users-not-working" and typed.topic is None
    topic = reader.read("okta-matching-user-not-found?")
    assert topic.in_domain and topic.topic == "okta-matching-user-not-found" and topic.symptom is None
    # Part of a longer token is not the id; two ids typed leave the choice to the model.
    assert reader._typed_flow("xusers-not-working") is None
    assert reader._typed_flow("users-not-working or updates-not-reflected") is None
