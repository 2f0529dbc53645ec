"""The knowledge-pack API the engine codes against, exercised on a small pack from another domain
(tests/data/toy-pack: office printers), so nothing here depends on the shipped SCIM content."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from knowledge.loader import KnowledgeError, load_pack
from knowledge.schema import MESSAGE_SLOTS, IdPText, Step, iter_texts

TOY = Path(__file__).parent / "data" / "toy-pack"


@pytest.fixture(scope="module")
def toy():
    return load_pack(TOY)


def _copy(tmp_path: Path, file: str = "pack.yaml", edit=None) -> Path:
    dst = tmp_path / "pack"
    shutil.copytree(TOY, dst)
    if edit:
        p = dst / file
        p.write_text(edit(p.read_text(encoding="utf-8")), encoding="utf-8")
    return dst / "pack.yaml"


def _line_of(path: Path, needle: str) -> int:
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(needle)


# ---- word / steps / notes / message ------------------------------------------------------------------


def test_word_picks_the_idps_own_text_and_the_generic_one_when_unknown(toy):
    ask = toy.checks["toner-level"].ask
    assert toy.word(ask, "zenith").startswith("In the Zenith Web Console")
    assert toy.word(ask, "acme").startswith("On the Acme Panel")
    assert toy.word(ask, None).startswith("In your printer's settings")
    assert toy.word(ask, "not-an-idp") == toy.word(ask, None)
    # a neutral text is the same for everyone; None gives ""
    assert toy.word(toy.checks["toner-level"].title, "acme") == "Toner level"
    assert toy.word(None, "acme") == ""


def test_a_per_idp_text_reads_as_its_generic_wording_for_older_code(toy):
    ask = toy.checks["toner-level"].ask
    assert isinstance(ask, IdPText) and isinstance(ask, str)
    assert str(ask) == toy.word(ask, None)
    assert set(ask.by_idp) == {"acme", "zenith", "other"}


def test_steps_per_idp_are_plain_strings(toy):
    res = toy.causes["eco-mode"].resolution
    steps = toy.steps(res, "zenith")
    assert steps == [Step(text="In the Zenith Web Console, switch Draft Mode off.")]
    assert all(isinstance(s.text, str) and not isinstance(s.text, IdPText) for s in steps)
    assert toy.steps(res, None)[0].text.startswith("In your printer's settings")
    # a neutral step list is the same for everyone
    assert toy.steps(toy.causes["empty-toner"].resolution, "acme") == toy.steps(toy.causes["empty-toner"].resolution, None)
    assert toy.notes(res, "acme") == []


def test_message_fills_placeholders_and_fails_loudly(toy):
    assert toy.message("flow-start", title="Prints are pale", summary="Faint.") == "Got it — **Prints are pale**. Faint."
    assert "Acme Panel" in toy.message("fixed-ask", "acme")
    assert "Acme" not in toy.message("fixed-ask", None)
    with pytest.raises(KeyError):
        toy.message("no-such-message")
    with pytest.raises(ValueError, match="needs"):
        toy.message("flow-start", title="x")
    with pytest.raises(ValueError, match="takes"):
        toy.message("greeting", name="x")


def test_every_message_slot_is_defined(toy):
    assert set(MESSAGE_SLOTS) <= set(toy.messages.messages)


def test_flows_topics_errors_and_as_designed(toy):
    assert list(toy.flows) == ["pale-prints", "paper-jam-recurring"]
    assert list(toy.topics) == ["paper-jam-recurring"]
    assert toy.topics["paper-jam-recurring"].source == "reference"
    assert toy.causes["eco-mode"].as_designed is True
    assert [e.id for e in toy.find_errors("the panel says E-13  toner out")] == ["toner-out"]
    assert toy.find_errors("E-13 TONER OUT", idp="zenith") == []  # an Acme-only string
    assert toy.errors["jam-rear"].topic == "paper-jam-recurring"
    assert [e.id for e in toy.errors_for(cause="empty-toner")] == ["toner-out"]
    assert [c.id for c in toy.checks_for("pale-prints", "acme")] == ["toner-level", "saving-mode"]


def test_cause_signatures_are_the_catalogues_pinning_strings(toy):
    # cause.signatures: the catalogue's strings for that cause (the classifier and the reader use them)
    assert [s.text for s in toy.causes["empty-toner"].signatures] == ["E-13 TONER OUT"]
    # each IdP's own wording, through the Bundle's accessors
    assert toy.word(toy.checks["toner-level"].ask, "zenith").startswith("In the Zenith Web Console")
    assert toy.steps(toy.causes["eco-mode"].resolution, "acme")[0].text.startswith("On the Acme Panel")
    assert toy.checks["toner-level"].title == "Toner level"


def test_no_text_for_one_maker_carries_another_makers_panel_words(toy):
    terms = {i.id: i.console_terms for i in toy.pack.idps}
    for idp in [*terms, None]:
        for where, text in iter_texts(toy, idp):
            for other, words in terms.items():
                if other == idp:
                    continue
                for w in words:
                    assert w not in text, f"{idp}: {where} carries {other}'s '{w}': {text}"


def test_the_toy_pack_says_nothing_about_scim_or_cato(toy):
    for idp in [None, "acme", "zenith", "other"]:
        for where, text in iter_texts(toy, idp):
            assert not re.search(r"scim|cato|\bcma\b|identity provider|provision", text, re.I), f"{where}: {text}"


def test_the_hand_off_surfaces_speak_the_packs_words(toy):
    """The Slack hand-off form, its validation, the escalation posts on Slack and Teams and the
    confirmation take every domain sentence from the pack: over the toy pack none is about SCIM or Cato
    (they were literals in the channel code although the pack held them)."""
    import json

    from bot.channels.slack.modal import validate_submission
    from bot.events import Reply, Ticket
    from bot.render import blocks as bk
    from bot.render import cards
    from bot.ticket import field_labels

    say = lambda mid, **kw: toy.message(mid, None, **kw)  # noqa: E731
    labels = field_labels(toy)
    ticket = Ticket(account="Building 7", labels=labels, body="# Request")
    rendered = [
        bk.escalation_modal(ticket, private_metadata="{}", channel_label="#office", say=say),
        bk.escalation_post(user_id="U1", account="", idp="", upns=[], groups=[], symptom="Jam", body="b", permalink=None, say=say, labels=labels).blocks,
        bk.handoff_confirmation(body="b", support_url=None, portal_label="x", channel_id="C1", say=say, guidance="Paste it.").blocks,
        cards.render_escalation(Reply(kind="ticket", text="", ticket=ticket), raised_by="Ada", link="https://teams.microsoft.com/l/1", say=say),
        validate_submission({"account": "", "upns": "not-an-address", "groups": "", "body": ""}, say)[1],
    ]
    # What people read: the platform ids (callback, block and action ids) are not text.
    text = re.sub(r'"(callback_id|block_id|action_id)": "[^"]*"', "", json.dumps(rendered, ensure_ascii=False))
    assert "Enter the site." in text and "Printer problem" in text and "Open the chat" in text  # the toy pack's own
    # (The form's IdP, UPN and group fields are the hand-off's own; a pack without them gets their default labels.)
    assert not re.search(r"scim|cato", text, re.I), text


# ---- wording problems fail the load, with file and line ---------------------------------------------


def test_a_mapping_that_drops_an_idp_fails(tmp_path):
    manifest = _copy(tmp_path, edit=lambda t: t.replace("      zenith: In the Zenith Web Console, is Draft Mode switched on?\n", "", 1))
    with pytest.raises(KnowledgeError) as err:
        load_pack(manifest)
    issue = err.value.issues[0]
    assert issue.path == "checks[1].ask" and "no wording for zenith" in issue.message
    assert issue.line == _line_of(manifest, "acme: On the Acme Panel, is Economy Print") - 1


def test_a_text_for_one_idp_with_another_idps_console_terms_fails(tmp_path):
    manifest = _copy(
        tmp_path,
        edit=lambda t: t.replace(
            "zenith: In the Zenith Web Console, is Draft Mode switched on?",
            "zenith: In the Zenith Web Console, is Economy Print switched on?",
            1,
        ),
    )
    with pytest.raises(KnowledgeError) as err:
        load_pack(manifest)
    text = str(err.value)
    line = _line_of(manifest, "zenith: In the Zenith Web Console, is Economy Print")
    assert f"pack.yaml:{line}: checks[1].ask.zenith: carries Acme LaserJet's console term 'Economy Print'" in text


def test_a_neutral_text_with_a_console_term_fails(tmp_path):
    manifest = _copy(tmp_path, edit=lambda t: t.replace("verify: Ten pages print without a jam.", "verify: The Supplies page shows no jam.", 1))
    with pytest.raises(KnowledgeError) as err:
        load_pack(manifest)
    assert re.search(r"pack\.yaml:\d+: causes\[2\]\.resolution\.verify: carries Zenith PrintPro's console term 'Supplies page', but is shown to every IdP", str(err.value))


def test_an_idp_scoped_error_may_use_its_own_terms_only(tmp_path):
    # toner-out is idp: acme, so "Acme Panel" in its plain explain is fine; "Draft Mode" is not
    manifest = _copy(tmp_path, edit=lambda t: t.replace("explain: The Acme Panel says the toner cartridge is empty.", "explain: The Acme Panel says Draft Mode.", 1))
    with pytest.raises(KnowledgeError) as err:
        load_pack(manifest)
    assert "errors[0].explain: carries Zenith PrintPro's console term 'Draft Mode', but is shown to acme" in str(err.value)


def test_unknown_idp_key_fails(tmp_path):
    manifest = _copy(tmp_path, edit=lambda t: t.replace("      other: In your printer's settings, is a toner", "      othr: In your printer's settings, is a toner", 1))
    with pytest.raises(KnowledgeError) as err:
        load_pack(manifest)
    assert "checks[1].ask.othr: unknown IdP 'othr'" in str(err.value)


def test_messages_unknown_placeholder_and_missing_id_fail_with_the_messages_file(tmp_path):
    def edit(t: str) -> str:
        t = t.replace('  flow-start: "Got it — **{title}**. {summary}"', '  flow-start: "Got it — **{titel}**. {summary}"', 1)
        return t.replace("  feedback-thanks: Thanks!\n", "", 1)

    manifest = _copy(tmp_path, "messages.yaml", edit)
    with pytest.raises(KnowledgeError) as err:
        load_pack(manifest)
    text = str(err.value)
    line = _line_of(manifest.parent / "messages.yaml", "{titel}")
    assert f"messages.yaml:{line}: messages.flow-start: unknown placeholder(s) {{titel}}" in text
    assert "missing message 'feedback-thanks'" in text


def test_errors_need_exactly_one_target_and_known_refs(tmp_path):
    manifest = _copy(tmp_path, edit=lambda t: t.replace("    topic: paper-jam-recurring\n", "    topic: paper-jam\n", 1))
    with pytest.raises(KnowledgeError) as err:
        load_pack(manifest)
    assert "errors[1].topic: unknown topic 'paper-jam'" in str(err.value)


def test_reference_facts_need_sources(tmp_path):
    manifest = _copy(tmp_path, edit=lambda t: t.replace("    source: reference\n    sources: [https://example.invalid/printer-manual]\n    resolution:", "    source: reference\n    resolution:", 1))
    with pytest.raises(KnowledgeError) as err:
        load_pack(manifest)
    assert "is `source: reference`: list its `sources`" in str(err.value)


def test_old_schema_keys_say_where_they_went(tmp_path):
    manifest = _copy(tmp_path, edit=lambda t: t.replace("generic_idp: other\n", "generic_idp: other\ndefault_idp: acme\n", 1))
    with pytest.raises(KnowledgeError) as err:
        load_pack(manifest)
    assert "`default_idp` is gone" in str(err.value)
