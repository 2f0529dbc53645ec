"""The knowledge pack: complete against the playbook, validated with file:line errors, drawable, and
replaceable by another pack without code changes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from knowledge.loader import DEFAULT_PACK, KnowledgeError, load_pack
from knowledge.schema import iter_texts, squash

DATA = Path(__file__).parent / "data"
FACTS = yaml.safe_load((DATA / "playbook_facts.yaml").read_text(encoding="utf-8"))
PACK_DIR = DEFAULT_PACK.parent


def _strings(obj) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for k, v in obj.items() for s in _strings(k) + _strings(v)]
    if isinstance(obj, (list, tuple)):
        return [s for v in obj for s in _strings(v)]
    return []


@pytest.fixture(scope="module")
def pack_text(bundle) -> str:
    return "\n".join(squash(s) for s in _strings(bundle.pack.model_dump()))


# ---- completeness ------------------------------------------------------------------------------

IDPS = ["entra", "okta", "onelogin", "other"]
TOPICS = [
    "leavers-still-active", "duplicate-conflict", "quarantine", "no-mail-attribute", "attribute-errors",
    "transient-errors", "okta-matching-user-not-found", "okta-assigned-before-provisioning",
    "onelogin-pending-approval", "ldap-to-scim", "email-upn-change",
]


def test_symptoms_and_playbook_causes_have_the_fixed_ids_and_playbook_titles(bundle):
    assert {s.id: s.title for s in bundle.pack.symptoms} == FACTS["symptoms"]
    playbook = {c.id: c.title for c in bundle.pack.causes if c.source == "playbook"}
    assert playbook == FACTS["causes"]


def test_everything_beyond_the_playbook_is_marked_and_sourced(bundle):
    for cause in bundle.pack.causes:
        if cause.id not in FACTS["causes"]:
            assert cause.source == "reference" and cause.sources, cause.id
    for check in bundle.pack.checks:
        if check.source == "reference":
            assert check.sources, check.id
    for topic in bundle.pack.topics:
        assert topic.source == "reference" and topic.sources
        for w in topic.causes:
            assert bundle.causes[w.cause].source == "reference", (topic.id, w.cause)


def test_topics_have_the_fixed_ids(bundle):
    assert [t.id for t in bundle.pack.topics] == TOPICS
    assert set(bundle.flows) == set(FACTS["symptoms"]) | set(TOPICS)


def test_unverified_facts_say_so(bundle):
    assert bundle.causes["email-upn-change"].unverified
    assert "distributor" in bundle.word(bundle.causes["email-upn-change"].unverified).lower()
    assert "distributor" in bundle.word(bundle.causes["leaver-disabled-not-deleted"].unverified).lower()


@pytest.mark.parametrize("symptom,causes", FACTS["symptom_causes"].items())
def test_each_symptom_reaches_the_causes_the_playbook_gives_it(bundle, symptom, causes):
    sym = bundle.symptoms[symptom]
    listed = [w.cause for w in sym.causes]
    confirmable = {a.confirms for cid in sym.checks for a in bundle.checks[cid].answers if a.confirms}
    for cause in causes:
        assert cause in listed, f"{symptom} does not list {cause}"
        assert cause in confirmable, f"no check of {symptom} confirms {cause}"
    # The first check asked for a symptom belongs to the playbook.
    first = (sym.ask_first or sym.checks)[0]
    assert bundle.checks[first].source == "playbook"


def test_what_is_missing_in_the_cma_is_asked_first(bundle):
    assert bundle.symptoms["additional-users-missing"].ask_first == ["cma-missing-objects"]
    for idp in IDPS:
        assert bundle.checks_for("additional-users-missing", idp)[0].id == "cma-missing-objects"


@pytest.mark.parametrize("path", FACTS["paths"])
def test_every_console_path_of_the_playbook_is_in_the_pack(pack_text, path):
    assert squash(path) in pack_text


@pytest.mark.parametrize("quoted,real", FACTS["relabelled"].items())
def test_a_relabelled_playbook_quote_stands_beside_the_real_label(pack_text, quoted, real):
    assert squash(quoted) in pack_text and squash(real) in pack_text


@pytest.mark.parametrize("term", FACTS["terms"])
def test_every_message_field_and_button_of_the_playbook_is_in_the_pack(pack_text, term):
    assert squash(term) in pack_text


@pytest.mark.parametrize("idp", IDPS)
def test_updatable_fields_and_the_remove_then_check_step(bundle, idp):
    res = bundle.causes["untracked-attribute-update"].resolution
    text = " ".join(s.text for s in bundle.steps(res, idp))
    for field in FACTS["updatable_fields"]:
        assert field in text
    assert "disabled state" in text
    assert "Support" in bundle.word(res.verify, idp)


def test_escalation_details(bundle):
    esc = bundle.pack.escalation
    assert esc.include == FACTS["escalation"]
    assert [f.id for f in esc.fields] == ["account", "idp", "upns", "groups"]
    assert bundle.causes["account-requirements"].resolution.escalate is True
    okta, entra = bundle.attachments("okta"), bundle.attachments("entra")
    assert any("Dashboard > Tasks" in a for a in okta) and any("Provisioning logs" in a for a in entra)
    assert len(okta) == len(entra) == len(bundle.attachments(None)) >= 2


def test_every_check_has_an_unsure_answer(bundle):
    for check in bundle.pack.checks:
        assert len(check.answers) >= 2
        assert any(a.kind == "unsure" for a in check.answers), f"{check.id} has no 'not sure' answer"


EXPECTED_ERRORS = {
    "Can't enable SCIM provisioning. Please contact Support and refer to Account ID Configuration - Email": "account-requirements",
    "SystemForCrossDomainIdentityManagementCredentialValidationUnavailable": "credentials-mismatch",
    "CredentialValidationUnavailable": "credentials-mismatch",
    "LicenseLimitExceeded": "insufficient-licenses",
    "MandatoryFieldsMissing": "missing-attributes",
    "NotEffectivelyEntitled": "group-not-assigned",
    "InsufficientRights": "credentials-mismatch",
    "StagedDelete": "deprovisioning-blocked",
    "SchemaAttributeNotFound": "attribute-not-in-target",
    "InvalidDomain": "invalid-domain",
    "ImportSkipped": "matching-attribute-empty",
    "EntryConflict": "topic:duplicate-conflict",
    "DuplicateTargetEntries": "topic:duplicate-conflict",
    "TooManyRequests": "topic:transient-errors",
    "Timeout": "topic:transient-errors",
    "InternalServerError": "topic:transient-errors",
    "EncounteredQuarantineException": "topic:quarantine",
    "The credentials used to connect to the API were invalid; please check your configuration": "credentials-mismatch",
    "Matching user not found": "topic:okta-matching-user-not-found",
}


@pytest.mark.parametrize("text,target", EXPECTED_ERRORS.items())
def test_the_error_catalogue_maps_each_string_exactly(bundle, text, target):
    entry = next((e for e in bundle.pack.errors if text in e.match), None)
    assert entry is not None, text
    assert (entry.cause if entry.topic is None else f"topic:{entry.topic}") == target


def test_pasted_codes_are_found_as_whole_words(bundle):
    assert [e.id for e in bundle.find_errors("log says: Skip reason = NotEffectivelyEntitled, Active = True")] == ["entra-not-entitled"]
    assert bundle.find_errors("EntryConflictX") == []
    assert [e.id for e in bundle.find_errors("got LicenseLimitExceeded", idp="entra")] == ["entra-licence-limit"]
    assert bundle.find_errors("got LicenseLimitExceeded", idp="okta") == []  # an Entra log code


def test_compat_signatures_are_the_pinning_errors(bundle):
    sigs = {s.text for c in bundle.pack.causes for s in c.signatures}
    assert "LicenseLimitExceeded" in sigs
    # NotEffectivelyEntitled is printed alike for unassigned and nested-only users: it shifts, never pins
    assert "NotEffectivelyEntitled" not in sigs
    assert bundle.errors["entra-not-entitled"].boost == {"group-not-assigned": 2.5, "nested-groups": 2.5}


# ---- the expert review's corrections -------------------------------------------------------------------


def _answer(bundle, check, answer):
    return bundle.answer(check, answer)


def test_on_demand_not_assigned_keeps_nested_groups_open_and_success_rules_it_out(bundle):
    not_assigned = _answer(bundle, "provision-on-demand", "not-assigned")
    assert not_assigned.confirms is None
    assert not_assigned.boost["nested-groups"] == not_assigned.boost["group-not-assigned"] > 1
    worked = _answer(bundle, "provision-on-demand", "worked")
    assert "nested-groups" in worked.rules_out and "nested-groups" not in worked.boost
    # the follow-up that tells them apart
    nested = _answer(bundle, "direct-or-nested", "nested")
    assert nested.confirms == "nested-groups"
    assert "direct-or-nested" in bundle.symptoms["additional-users-missing"].checks


def test_on_demand_names_each_scope_property_and_a_disabled_user_is_not_scoping(bundle):
    check = bundle.checks["provision-on-demand"]
    labels = " ".join(bundle.word(a.label, "entra") for a in check.answers)
    for prop in ("Assigned to application", "Active in source system", "Scoping filter evaluation"):
        assert prop in labels
    assert "Scope: sync all" in bundle.word(check.look_for, "entra")
    inactive = _answer(bundle, "provision-on-demand", "inactive")
    assert inactive.confirms == "user-inactive" and "scoping" not in inactive.boost


def test_only_users_missing_is_no_evidence_against_nesting(bundle):
    assert _answer(bundle, "cma-missing-objects", "users").boost.get("nested-groups", 1.0) >= 1.0


def test_failed_licence_assignment_proves_neither_cause_alone(bundle):
    ans = _answer(bundle, "licence-assign-events", "failed-assign")
    assert ans.confirms is None
    assert ans.boost["missing-attributes"] == ans.boost["insufficient-licenses"] > 1


def test_console_labels_are_the_real_ones(bundle):
    entra = " ".join(t for _, t in iter_texts(bundle, "entra"))
    assert "Enterprise applications > Cato Provisioning Application > Users and groups" in entra
    assert "Synchronize Microsoft Entra users to Cato Networks" in entra
    everyone = " ".join(t for _, t in iter_texts(bundle, None))
    assert "Access > User Groups" in everyone


def test_scim_and_ldap_run_side_by_side(pack_text):
    assert "stops LDAP" not in pack_text and "disables LDAP" not in pack_text
    assert "side by side" in pack_text


def test_okta_has_no_scoping_filters_and_its_group_rules_live_under_directory(bundle):
    check = bundle.checks["scope-filter"]
    assert bundle.word(check.path, "okta") == "Directory > Groups > Rules"
    assert "no scoping filters" in bundle.word(check.ask, "okta")
    okta_scoping = " ".join(s.text + " " + (s.path or "") for s in bundle.steps(bundle.causes["scoping"].resolution, "okta"))
    assert "Directory > Groups > Rules" in okta_scoping and "Source Object Scope" not in okta_scoping


def test_onelogin_user_status_is_on_the_users_tab_and_under_users_provisioning(bundle):
    assert bundle.word(bundle.checks["onelogin-user-status"].path, "onelogin").endswith("> Users")
    assert "Users > Provisioning" in bundle.word(bundle.checks["onelogin-user-status"].ask, "onelogin")
    assert bundle.checks["approval-required"].path == "Users > Provisioning"


def test_okta_admins_are_never_told_to_wait_40_minutes(bundle):
    for where, text in iter_texts(bundle, "okta"):
        assert "40 minutes" not in text, where
    assert "40 minutes" in bundle.message("fixed-ask", "entra")


def test_no_users_at_all_checks_each_consoles_switches(bundle):
    words = {idp: " ".join(bundle.word(bundle.checks[c.id].ask, idp) for c in bundle.checks_for("initial-provisioning-fails", idp)) for idp in IDPS}
    for needle in ("Provisioning Status", "Scope", "quarantine", "progress bar"):
        assert needle in words["entra"]
    assert "Create Users" in words["okta"]
    assert "Enable provisioning" in words["onelogin"] and "Require admin approval" in words["onelogin"]


def test_causes_apply_per_idp(bundle):
    def causes(flow, idp):
        return {w.cause for w in bundle.causes_for(flow, idp)}

    assert "provisioning-off" in causes("additional-users-missing", "okta")  # "Matching user not found"
    assert "provisioning-off" not in causes("additional-users-missing", "onelogin")
    assert "quarantined" in causes("initial-provisioning-fails", "entra")
    assert "quarantined" not in causes("initial-provisioning-fails", "okta")
    assert "approval-pending" in causes("updates-not-reflected", "onelogin")
    assert "approval-pending" not in causes("updates-not-reflected", "entra")
    assert {c.id for c in bundle.checks_for("additional-users-missing", "okta")} >= {"okta-assignments", "okta-tasks"}
    assert "provision-on-demand" not in {c.id for c in bundle.checks_for("additional-users-missing", "okta")}


def test_updates_check_whether_updates_may_flow(bundle):
    assert "Update" in bundle.word(bundle.checks["updates-allowed"].ask, "entra")
    assert "Update User Attributes" in bundle.word(bundle.checks["updates-allowed"].ask, "okta")
    onelogin = [c.id for c in bundle.checks_for("updates-not-reflected", "onelogin")]
    assert "approval-required" in onelogin and "updates-allowed" not in onelogin


def test_an_attribute_cato_does_not_take_is_works_as_designed(bundle):
    assert _answer(bundle, "updated-field", "other-attribute").confirms == "attribute-not-taken"
    cause = bundle.causes["attribute-not-taken"]
    assert cause.as_designed and not cause.resolution.escalate
    text = " ".join(s.text for s in bundle.steps(cause.resolution, None))
    for attr in ("emails", "userName", "givenName", "familyName", "phoneNumbers", "active", "externalId", "displayName", "members"):
        assert attr in text


# ---- every IdP in its own words ---------------------------------------------------------------------


def _terms(bundle) -> dict[str, list[re.Pattern]]:
    return {
        i.id: [re.compile(r"(?<![A-Za-z0-9])" + re.escape(t) + r"(?![A-Za-z0-9])") for t in i.console_terms]
        for i in bundle.pack.idps
    }


@pytest.mark.parametrize("idp", [*IDPS, None])
def test_no_reply_for_one_idp_carries_another_consoles_terms(bundle, idp):
    terms = _terms(bundle)
    seen = 0
    for where, text in iter_texts(bundle, idp):
        seen += 1
        for other, pats in terms.items():
            if other == idp:
                continue
            for rx in pats:
                assert not rx.search(text), f"{idp}: {where} carries {other}'s {rx.pattern!r}: {text}"
    assert seen > 400


@pytest.mark.parametrize("idp", IDPS)
def test_every_flow_check_and_answer_renders_for_every_idp(bundle, idp):
    # each flow × IdP × answer: the texts the engine shows exist and are not another IdP's
    for flow_id in bundle.flows:
        for check in bundle.checks_for(flow_id, idp):
            assert bundle.word(check.ask, idp)
            for a in check.answers:
                assert bundle.word(a.label, idp) and bundle.word(a.finding, idp)
        for w in bundle.causes_for(flow_id, idp):
            res = bundle.causes[w.cause].resolution
            assert bundle.steps(res, idp) and bundle.word(res.verify, idp)


def test_the_generic_wording_names_no_vendor(bundle):
    for where, text in iter_texts(bundle, "other"):
        assert not re.search(r"Entra|Azure|Microsoft|Okta|OneLogin", text), f"{where}: {text}"


# ---- validation errors carry file and line ---------------------------------------------------------


def _copy_pack(tmp_path: Path, edit=None, file: str = "scim.yaml") -> Path:
    for name in ("scim.yaml", "classifier.yaml", "lexicon.yaml", "messages.yaml"):
        text = (PACK_DIR / name).read_text(encoding="utf-8")
        if name == file and edit:
            text = edit(text)
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path / "scim.yaml"


def _line_of(path: Path, needle: str) -> int:
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(needle)


def test_unknown_reference_names_file_line_and_path(tmp_path):
    manifest = _copy_pack(tmp_path, lambda t: t.replace("checks: [enable-error]", "checks: [enable-eror]", 1))
    with pytest.raises(KnowledgeError) as err:
        load_pack(manifest)
    issue = err.value.issues[0]
    assert issue.file.endswith("scim.yaml")
    assert issue.line == _line_of(manifest, "checks: [enable-eror]")
    assert issue.path == "symptoms[0].checks[0]"
    assert "unknown check 'enable-eror'" in issue.message


def test_schema_error_names_the_line(tmp_path):
    manifest = _copy_pack(tmp_path, lambda t: t.replace("where: cma\n    path: Access > Directory Services > SCIM", "where: cloud\n    path: Access > Directory Services > SCIM", 1))
    with pytest.raises(KnowledgeError) as err:
        load_pack(manifest)
    text = str(err.value)
    assert f"scim.yaml:{_line_of(manifest, 'where: cloud')}: checks[0].where" in text


def test_yaml_syntax_error_names_the_line(tmp_path):
    manifest = _copy_pack(tmp_path, lambda t: t.replace("name: Cato SCIM provisioning troubleshooting", "name: [unclosed", 1))
    with pytest.raises(KnowledgeError) as err:
        load_pack(manifest)
    assert err.value.issues[0].line is not None
    assert "YAML syntax" in err.value.issues[0].message


def test_duplicate_keys_are_refused(tmp_path):
    manifest = _copy_pack(tmp_path, lambda t: t.replace("generic_idp: other\n", "generic_idp: other\ngeneric_idp: okta\n", 1))
    with pytest.raises(KnowledgeError) as err:
        load_pack(manifest)
    assert "duplicate key 'generic_idp'" in str(err.value)
    assert err.value.issues[0].line == _line_of(manifest, "generic_idp: okta")


def test_an_answer_leading_nowhere_is_refused(tmp_path):
    def edit(t: str) -> str:
        return t.replace("        rules_out: [account-requirements]\n        finding: Enabling SCIM fails", "        finding: Enabling SCIM fails", 1)

    manifest = _copy_pack(tmp_path, edit)
    with pytest.raises(KnowledgeError) as err:
        load_pack(manifest)
    assert "leads nowhere" in str(err.value)
    assert "checks[0].answers[1]" in str(err.value)


def test_an_unreachable_cause_is_refused(tmp_path):
    def edit(t: str) -> str:
        t = t.replace(
            "checks: [updated-field, sync-since-change, updates-allowed, mapping-apply, approval-required]",
            "checks: [updated-field, sync-since-change, updates-allowed, approval-required]",
            1,
        )
        return t

    manifest = _copy_pack(tmp_path, edit)
    with pytest.raises(KnowledgeError) as err:
        load_pack(manifest)
    assert "not used by any symptom" in str(err.value)


def test_yaml_11_booleans_stay_words(bundle):
    # `id: yes` / `kind: no` must not turn into True/False.
    answers = {a.id for c in bundle.pack.checks for a in c.answers}
    assert {"yes", "no"} <= answers


def test_classifier_material_errors_name_the_classifier_file(tmp_path):
    manifest = _copy_pack(tmp_path)
    cls = tmp_path / "classifier.yaml"
    text = cls.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^symptoms:.*$", "symptoms:\n  no-such-symptom:\n    examples: [x]", text, count=1)
    cls.write_text(text, encoding="utf-8")
    with pytest.raises(KnowledgeError) as err:
        load_pack(manifest)
    assert err.value.issues[0].file.endswith("classifier.yaml")
    assert "no-such-symptom" in str(err.value)


# ---- CLI -------------------------------------------------------------------------------------------


def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], input=stdin, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_kb_check_cli_ok_and_broken(tmp_path):
    ok = _cli("kb", "check")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ok:") and "5 symptoms" in ok.stdout and "11 topics" in ok.stdout
    manifest = _copy_pack(tmp_path, lambda t: t.replace("    tests: scoping\n    where: idp\n    idps: [entra]\n", "    tests: scopin\n    where: idp\n    idps: [entra]\n", 1))
    bad = _cli("kb", "check", str(manifest))
    assert bad.returncode == 1
    assert re.search(r"scim\.yaml:\d+: checks\[\d+\]\.tests: unknown cause 'scopin'", bad.stderr), bad.stderr


@pytest.mark.slow
def test_kb_graph_is_a_mermaid_flowchart_of_the_whole_pack(bundle):
    out = _cli("kb", "graph")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.startswith("flowchart")
    for sym in bundle.pack.symptoms:
        assert sym.title in text
    for cause in bundle.pack.causes:
        assert f"K_{cause.id.replace('-', '_')}" in text
    assert "ESC" in text
    # every confirming answer is an edge check -> cause
    edges = re.findall(r"C_(\w+) -- \"[^\"]+\" --> K_(\w+)", text)
    assert len(edges) == sum(1 for c in bundle.pack.checks for a in c.answers if a.confirms)


# ---- wording ownership through the CLI ------------------------------------------------------------------


@pytest.mark.slow
def test_kb_check_fails_on_a_pack_that_drops_an_idps_wording(tmp_path):
    # drop OneLogin's wording of the assignment question
    needle = "      onelogin: >-\n        OneLogin provisions the users who have the Cato app, usually through a role."
    manifest = _copy_pack(tmp_path, lambda t: _drop_block(t, needle))
    bad = _cli("kb", "check", str(manifest))
    assert bad.returncode == 1
    assert re.search(r"scim\.yaml:\d+: checks\[\d+\]\.ask: no wording for onelogin", bad.stderr), bad.stderr


@pytest.mark.slow
def test_kb_check_fails_where_one_idps_text_names_another_console(tmp_path):
    manifest = _copy_pack(
        tmp_path,
        lambda t: t.replace(
            "okta: In Okta, open the Cato app's **Assignments** tab. Is the missing user",
            "okta: In Okta, open **Users and groups**. Is the missing user",
            1,
        ),
    )
    bad = _cli("kb", "check", str(manifest))
    assert bad.returncode == 1
    line = _line_of(manifest, "okta: In Okta, open **Users and groups**")
    assert f"scim.yaml:{line}: checks[" in bad.stderr and "ask.okta: carries Microsoft Entra ID's console term 'Users and groups', but is shown to okta" in bad.stderr


def _drop_block(text: str, first_lines: str) -> str:
    """Remove a mapping entry that starts with `first_lines` and runs until the next line indented as much."""
    start = text.index(first_lines)
    indent = len(first_lines) - len(first_lines.lstrip(" "))
    lines = text[start:].split("\n")
    end = 1
    while end < len(lines) and (len(lines[end]) - len(lines[end].lstrip(" ")) > indent or not lines[end].strip()):
        end += 1
    return text[:start] + "\n".join(lines[end:])


# ---- another pack, no code changes -------------------------------------------------------------------

TOY = DATA / "toy-pack"


async def test_engine_walks_a_different_pack_without_code_changes():
    from bot.engine import Engine
    from bot.events import Incoming
    from bot.store.memory import MemoryStore

    bundle = load_pack(TOY)
    engine = Engine(bundle, MemoryStore())

    async def turn(**kw):
        return await engine.handle(Incoming(channel="test", conversation_id="p1", **kw))

    t = await turn(choice="pale-prints")
    if t.phase == "clarifying" or (t.replies and t.replies[-1].choices and t.replies[-1].choices[0].id.startswith("idp:")):
        t = await turn(choice="idp:acme")
    assert t.phase == "checking" and t.probing == "empty-toner"
    t = await turn(text="nope")
    assert t.probing == "eco-mode"
    t = await turn(text="nope")
    t = await turn(choice="fixed:no") if t.phase == "resolving" else t
    if t.phase == "clarifying":  # nothing fitted: the other problems are offered once; none is it
        t = await turn(choice="cmd:escalate")
    assert t.phase == "escalating" and t.asking == "account"
    t = await turn(text="Building 7")
    assert t.phase == "closed" and t.ticket.account == "Building 7"
    assert "Printer model" in t.ticket.body
