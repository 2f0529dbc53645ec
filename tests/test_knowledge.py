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
from knowledge.schema import squash

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


def test_symptoms_and_causes_have_the_fixed_ids_and_playbook_titles(bundle):
    assert {s.id: s.title for s in bundle.pack.symptoms} == FACTS["symptoms"]
    assert {c.id: c.title for c in bundle.pack.causes} == FACTS["causes"]


@pytest.mark.parametrize("symptom,causes", FACTS["symptom_causes"].items())
def test_each_symptom_reaches_the_causes_the_playbook_gives_it(bundle, symptom, causes):
    sym = bundle.symptoms[symptom]
    listed = [w.cause for w in sym.causes]
    confirmable = {a.confirms for cid in sym.checks for a in bundle.checks[cid].answers if a.confirms}
    for cause in causes:
        assert cause in listed, f"{symptom} does not list {cause}"
        assert cause in confirmable, f"no check of {symptom} confirms {cause}"
    # The first check asked for a symptom (in the pack's own order) belongs to the playbook.
    assert bundle.checks[sym.checks[0]].source == "playbook"


@pytest.mark.parametrize("path", FACTS["paths"])
def test_every_console_path_of_the_playbook_is_in_the_pack(pack_text, path):
    assert squash(path) in pack_text


@pytest.mark.parametrize("term", FACTS["terms"])
def test_every_message_field_and_button_of_the_playbook_is_in_the_pack(pack_text, term):
    assert squash(term) in pack_text


def test_updatable_fields_and_the_remove_then_check_step(bundle):
    res = bundle.causes["untracked-attribute-update"].resolution
    text = " ".join(s.text for s in res.steps)
    for field in FACTS["updatable_fields"]:
        assert field in text
    assert "disabled state" in text
    assert "Support" in res.verify


def test_escalation_details(bundle):
    esc = bundle.pack.escalation
    assert esc.include == FACTS["escalation"]
    assert [f.id for f in esc.fields] == ["account", "idp", "upns", "groups"]
    assert bundle.causes["account-requirements"].resolution.escalate is True


def test_every_check_has_a_path_or_says_where(bundle):
    for check in bundle.pack.checks:
        assert check.ask.strip()
        assert len(check.answers) >= 2
        assert any(a.kind == "unsure" for a in check.answers), f"{check.id} has no 'not sure' answer"


def test_reference_signatures_are_exact(bundle):
    sigs = {s.text for c in bundle.pack.causes for s in c.signatures}
    for expected in [
        "Can't enable SCIM provisioning. Please contact Support and refer to Account ID Configuration - Email",
        "SystemForCrossDomainIdentityManagementCredentialValidationUnavailable",
        "LicenseLimitExceeded",
        "NotEffectivelyEntitled",
        "The credentials used to connect to the API were invalid; please check your configuration",
    ]:
        assert expected in sigs


# ---- validation errors carry file and line ---------------------------------------------------------


def _copy_pack(tmp_path: Path, edit=None, file: str = "scim.yaml") -> Path:
    for name in ("scim.yaml", "classifier.yaml", "lexicon.yaml"):
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
    manifest = _copy_pack(tmp_path, lambda t: t.replace("default_idp: entra\n", "default_idp: entra\ndefault_idp: okta\n", 1))
    with pytest.raises(KnowledgeError) as err:
        load_pack(manifest)
    assert "duplicate key 'default_idp'" in str(err.value)
    assert err.value.issues[0].line == _line_of(manifest, "default_idp: okta")


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
        t = t.replace("checks: [updated-field, sync-since-change, mapping-apply]", "checks: [updated-field]", 1)
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


def test_kb_check_cli_ok_and_broken(tmp_path):
    ok = _cli("kb", "check")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ok:") and "5 symptoms" in ok.stdout and "8 causes" in ok.stdout
    manifest = _copy_pack(tmp_path, lambda t: t.replace("tests: scoping\n    where: idp\n    path: Enterprise applications > Cato Provisioning Application > Provisioning > Provision on demand", "tests: scopin\n    where: idp\n    path: Enterprise applications > Cato Provisioning Application > Provisioning > Provision on demand", 1))
    bad = _cli("kb", "check", str(manifest))
    assert bad.returncode == 1
    assert re.search(r"scim\.yaml:\d+: checks\[\d+\]\.tests: unknown cause 'scopin'", bad.stderr), bad.stderr


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


# ---- another pack, no code changes -------------------------------------------------------------------

MINI = """
version: 1
name: Printer toner troubleshooting
source: test
classifier: classifier.yaml
lexicon: lexicon.yaml
default_idp: none
idps:
  - {id: none, name: No IdP, console: the printer panel}
symptoms:
  - id: pale-prints
    title: Prints are pale
    summary: Pages come out faint.
    checks: [toner-light]
    causes:
      - {cause: empty-toner, weight: 0.7}
      - {cause: eco-mode, weight: 0.3}
checks:
  - id: toner-light
    title: Toner light
    tests: empty-toner
    where: cma
    ask: Is the toner light on?
    answers:
      - {id: on, label: It is on, kind: yes, confirms: empty-toner, finding: Toner light on.}
      - {id: off, label: It is off, kind: no, rules_out: [empty-toner], finding: Toner light off.}
      - {id: unsure, label: Not sure, kind: unsure, finding: Unknown.}
causes:
  - id: empty-toner
    title: The toner is empty
    summary: Toner ran out.
    resolution:
      summary: Replace it.
      steps:
        - text: Replace the toner cartridge.
      verify: Prints are dark again.
  - id: eco-mode
    title: Eco mode is on
    summary: Eco mode saves toner.
    signatures:
      - text: ECO MODE ACTIVE
        source: the printer panel
        match: exact
    resolution:
      summary: Turn eco mode off.
      steps:
        - text: Switch eco mode off.
      verify: Prints are dark again.
escalation:
  intro: Let's call the vendor.
  portal_url: https://example.invalid/support
  portal_label: Vendor support
  guidance: Paste this.
  include: [Printer model]
  fields:
    - {id: account, label: Site, ask: "Which site?"}
"""


async def test_engine_walks_a_different_pack_without_code_changes(tmp_path):
    from bot.classify import Classifier
    from bot.engine import Engine
    from bot.events import Incoming
    from bot.store.memory import MemoryStore

    (tmp_path / "scim.yaml").write_text(MINI, encoding="utf-8")
    (tmp_path / "classifier.yaml").write_text("symptoms: {}\n", encoding="utf-8")
    (tmp_path / "lexicon.yaml").write_text((PACK_DIR / "lexicon.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    bundle = load_pack(tmp_path / "scim.yaml")
    engine = Engine(bundle, Classifier(bundle), MemoryStore())

    async def turn(**kw):
        return await engine.handle(Incoming(channel="test", conversation_id="p1", **kw))

    t = await turn(choice="pale-prints")
    assert t.phase == "checking" and t.probing == "empty-toner"
    t = await turn(text="nope")
    assert t.cause == "eco-mode" and t.phase == "resolving"  # last cause standing
    t = await turn(choice="fixed:no")
    assert t.phase == "escalating" and t.asking == "account"
    t = await turn(text="Building 7")
    assert t.phase == "closed" and t.ticket.account == "Building 7"
    assert "Printer model" in t.ticket.body
