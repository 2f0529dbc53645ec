"""The labelled corpus in knowledge/corpus/: loading, validation (`scim-help kb check`) and the one-time import
of the writers' files.

    knowledge/corpus/reports.jsonl  {"text", "label", "cause", "idp", "short", "hard", "writer", "split"}
    knowledge/corpus/replies.jsonl  {"prompt", "text", "act", "option", "value", "writer", "split"}

`label` is a symptom id, "unclear" (SCIM into Cato, symptom not told), a topic id (beyond the playbook, still
SCIM into Cato) or "off-topic". Splits are by writer and fixed: every writer is in exactly one split, so the
held-out figure measures voices the models never saw. Held-out lines are for aggregate numbers only: no tool
here prints them.

    python -m bot.understand.corpus import SRC_DIR [--old OLD_CLASSIFY_JSONL]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
CORPUS_DIR = ROOT / "knowledge" / "corpus"

# Fixed before any model was trained (issue #12): train = the old dev set (w0), a new admin (w1), a terse
# Slack user (w3), a log paster (w5); dev = an MSP (w2); heldout = a non-native speaker (w4), a manager /
# identity engineer (w6).
# Added later, to train only (the evaluation splits stay as they were): a service-desk agent relaying
# second-hand reports (w7), an admin typing on a phone (w8), an admin who describes exactly what the
# console shows (w9).
SPLITS: dict[str, str] = {
    "w0": "train", "w1": "train", "w3": "train", "w5": "train", "w2": "dev", "w4": "heldout", "w6": "heldout",
    "w7": "train", "w8": "train", "w9": "train",
}
WRITERS = {
    "w0": "the project's own labelled set (tests/data/classify.jsonl before issue #12)",
    "w1": "a new admin",
    "w2": "an MSP engineer",
    "w3": "a terse Slack user",
    "w4": "a non-native speaker",
    "w5": "someone who pastes logs",
    "w6": "a manager / identity engineer",
    "w7": "a service-desk agent relaying what users said",
    "w8": "an admin typing fast on a phone",
    "w9": "an admin who describes exactly what the console shows",
}
# The out-of-playbook SCIM topics (knowledge issue); the pack's `topics:` are used instead when it has them.
TOPICS = (
    "leavers-still-active", "duplicate-conflict", "quarantine", "no-mail-attribute", "attribute-errors",
    "transient-errors", "okta-matching-user-not-found", "okta-assigned-before-provisioning",
    "onelogin-pending-approval", "ldap-to-scim", "email-upn-change",
)
UNCLEAR = "unclear"
OFF_TOPIC = "off-topic"
ACTS = ("answer", "question", "complaint", "info", "fixed", "still-broken", "skip", "human", "restart", "aside")
IDPS = ("entra", "okta", "onelogin", "other")

# The prompts the writers answered (corpus BRIEF): kind, pack id, options as (id, label, kind).
PROMPTS: dict[str, dict[str, Any]] = {
    "P1": {"kind": "check", "id": "test-connection", "options": [("fails", "It shows an error", "yes"), ("succeeds", "It succeeds", "no"), ("unsure", "Not sure / can't find it", "unsure")]},
    "P2": {"kind": "check", "id": "sdp-licence-events", "options": [("yes", "Yes, there are Sdp licence events", "yes"), ("no", "No such events", "no"), ("unsure", "Not sure", "unsure")]},
    "P3": {"kind": "check", "id": "email-field", "options": [("empty", "Empty or invalid", "yes"), ("valid", "It has a valid address", "no"), ("unsure", "Not sure", "unsure")]},
    "P4": {"kind": "check", "id": "provision-on-demand", "options": [("out-of-scope", "Skipped — not in scope", "other"), ("not-assigned", "Not assigned to the application", "other"), ("succeeds", "The user was created", "other"), ("other-error", "Another error", "other"), ("unsure", "Not sure", "unsure")]},
    "P5": {"kind": "fixed", "id": None, "options": [("yes", "Yes, it's fixed", "yes"), ("no", "No, still broken", "no")]},
    "P6": {"kind": "field", "id": "account", "options": []},
    "P7": {"kind": "field", "id": "upns", "options": []},
    "P8": {"kind": "idp", "id": "idp", "options": [("entra", "Microsoft Entra ID", None), ("okta", "Okta", None), ("onelogin", "OneLogin", None), ("other", "Another IdP", None)]},
    "P9": {"kind": "helpful", "id": None, "options": [("yes", "Yes, helpful", "yes"), ("no", "Not really", "no")]},
    "P10": {"kind": "check", "id": "changed-attribute", "options": [("email", "Email", "other"), ("upn", "UPN", "other"), ("first-name", "First name", "other"), ("last-name", "Last name", "other"), ("phone", "Phone number", "other"), ("other", "Another attribute", "other")]},
    "P11": {"kind": "check", "id": "test-connection", "options": [("fails", "It shows an error", "yes"), ("succeeds", "It succeeds", "no"), ("unsure", "Not sure / can't find it", "unsure")]},
    "P12": {"kind": "check", "id": "nested-membership", "options": [("direct", "Direct member", "no"), ("nested", "Only through a nested group", "yes"), ("unsure", "Not sure", "unsure")]},
}
# The prompt kind each act can answer.
_SKIP_PROMPTS = {"P6", "P7"}


def norm_key(text: str) -> str:
    """Duplicate key: case, accents' forms, spacing and edge punctuation do not make a new line."""
    t = unicodedata.normalize("NFKC", text).lower()
    t = re.sub(r"\s+", " ", t).strip(" .!?")
    return t


def row_key(kind: str, row: dict[str, Any]) -> tuple[str, str]:
    """What makes a line the same line: its text's duplicate key, and for a reply its prompt too (a reply is
    read with its prompt: "yes" to two different prompts is two items)."""
    return (row.get("prompt", "") if kind == "replies" else "", norm_key(row["text"]))


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rows.append(json.loads(line))
    return rows


def load(kind: str = "reports", corpus_dir: Path = CORPUS_DIR) -> list[dict[str, Any]]:
    return read_jsonl(Path(corpus_dir) / f"{kind}.jsonl")


def corpus_hash(corpus_dir: Path = CORPUS_DIR) -> str:
    """What the model artefact was trained on: a stale model fails loudly (tests/test_understand_model.py)."""
    h = hashlib.sha256()
    for name in ("reports.jsonl", "replies.jsonl"):
        h.update(name.encode())
        h.update((Path(corpus_dir) / name).read_bytes())
    return h.hexdigest()[:16]


# ---- validation -----------------------------------------------------------------------------------------


def validate(corpus_dir: Path = CORPUS_DIR, bundle=None) -> tuple[list[Problem], dict[str, Any]]:
    """Every problem (labels, causes, topics, acts, options, duplicates, leakage between splits, writers in
    one split each) and a summary of counts. Problems name file and line, never a held-out line's text."""
    corpus_dir = Path(corpus_dir)
    checker = _Checker(bundle)
    summary: dict[str, Any] = {}
    for kind in ("reports", "replies"):
        path = corpus_dir / f"{kind}.jsonl"
        fname = f"knowledge/corpus/{kind}.jsonl"
        if not path.exists():
            checker.problems.append(Problem(fname, 0, "missing"))
            continue
        summary[kind] = checker.file(kind, path, fname)
    summary["writers"] = checker.writer_split
    summary["notes"] = [str(x) for x in checker.notes]
    return checker.problems, summary


class _Checker:
    """One validation run: the pack's ids to check labels against, and what the files seen so far hold
    (writers' splits and texts are checked across both files)."""

    def __init__(self, bundle: Any = None):
        self.bundle = bundle
        self.symptoms: tuple[str, ...] = ()
        self.causes: tuple[str, ...] = ()
        topics: tuple[str, ...] = TOPICS
        if bundle is not None:
            self.symptoms = tuple(s.id for s in bundle.pack.symptoms)
            self.causes = tuple(c.id for c in bundle.pack.causes)
            pack_topics = getattr(bundle.pack, "topics", None)
            if pack_topics:
                topics = tuple(t.id for t in pack_topics)
        self.labels = set(self.symptoms) | {UNCLEAR, OFF_TOPIC} | set(topics)
        self.problems: list[Problem] = []
        self.notes: list[Problem] = []
        # The split as a line gives it, even an unknown one (reported on its own): a writer's first line sets it.
        self.writer_split: dict[str, Any] = {}
        self.seen_split: dict[str, tuple[str, int, Any]] = {}

    def file(self, kind: str, path: Path, fname: str) -> dict[str, dict[str, int]]:
        """Checks every line of one file; returns its counts per split and label (or act)."""
        seen: dict[tuple[str, str], int] = {}
        counts: dict[str, dict[str, int]] = {}
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as exc:
                    self.problems.append(Problem(fname, n, f"not JSON: {exc}"))
                    continue
                text, split = row.get("text"), row.get("split")
                if not isinstance(text, str) or not text.strip():
                    self.problems.append(Problem(fname, n, "text: missing or empty"))
                    continue
                self.placement(kind, fname, n, row, seen)
                bucket = self.report(fname, n, row) if kind == "reports" else self.reply(fname, n, row)
                counts.setdefault(str(split), {}).setdefault(bucket, 0)
                counts[str(split)][bucket] += 1
        return counts

    def placement(self, kind: str, fname: str, n: int, row: dict[str, Any], seen: dict[tuple[str, str], int]) -> None:
        """The line's split and writer, and its text once in the file and in one split only."""
        problems = self.problems
        writer, split = row.get("writer"), row.get("split")
        if split not in ("train", "dev", "heldout"):
            problems.append(Problem(fname, n, f"split: unknown '{split}'"))
        if not isinstance(writer, str) or not writer:
            problems.append(Problem(fname, n, "writer: missing"))
        elif self.writer_split.setdefault(writer, split) != split:
            problems.append(Problem(fname, n, f"writer '{writer}' is in split '{split}' and '{self.writer_split[writer]}': a writer belongs to one split"))
        elif writer in SPLITS and SPLITS[writer] != split:
            problems.append(Problem(fname, n, f"writer '{writer}' belongs to split '{SPLITS[writer]}', not '{split}'"))
        ctx, key = row_key(kind, row)
        if (ctx, key) in seen:
            problems.append(Problem(fname, n, f"duplicate text (first at line {seen[(ctx, key)]})"))
        seen.setdefault((ctx, key), n)
        skey = f"{ctx}\x00{key}"
        other = self.seen_split.get(skey)
        if other and other[2] != split:
            problems.append(Problem(fname, n, f"text also in split '{other[2]}' ({other[0]}:{other[1]}): leakage between splits"))
        self.seen_split.setdefault(skey, (fname, n, split))

    def report(self, fname: str, n: int, row: dict[str, Any]) -> str:
        """A report line's label, cause, IdP and hardness; returns the label it counts under."""
        problems, symptoms, bundle = self.problems, self.symptoms, self.bundle
        label, cause = row.get("label"), row.get("cause")
        if label not in self.labels:
            problems.append(Problem(fname, n, f"label: unknown '{label}'"))
        if cause is not None:
            if self.causes and cause not in self.causes:
                problems.append(Problem(fname, n, f"cause: unknown '{cause}'"))
            if symptoms and label not in symptoms:
                problems.append(Problem(fname, n, f"cause '{cause}' on a '{label}' line: causes go on symptom lines only"))
            elif bundle is not None and label in bundle.symptoms and cause not in {w.cause for w in bundle.symptoms[label].causes}:
                # The writer's judgement (a scoping filter can keep out every user) against the
                # pack's graph: a note for the pack, not an error in the corpus.
                self.notes.append(Problem(fname, n, f"note: cause '{cause}' is not listed under symptom '{label}' in the pack"))
        if row.get("idp") not in (None, *IDPS):
            problems.append(Problem(fname, n, f"idp: unknown '{row.get('idp')}'"))
        if row.get("hard") and label != OFF_TOPIC:
            problems.append(Problem(fname, n, "hard: only off-topic lines are hard negatives"))
        return str(label)

    def reply(self, fname: str, n: int, row: dict[str, Any]) -> str:
        """A reply line's prompt, act and option; returns the act it counts under."""
        problems = self.problems
        prompt, act, option = row.get("prompt"), row.get("act"), row.get("option")
        if prompt not in PROMPTS:
            problems.append(Problem(fname, n, f"prompt: unknown '{prompt}'"))
        if act not in ACTS:
            problems.append(Problem(fname, n, f"act: unknown '{act}'"))
        if prompt in PROMPTS and option is not None:
            ids = {o[0] for o in PROMPTS[prompt]["options"]}
            if ids and option not in ids:
                problems.append(Problem(fname, n, f"option: '{option}' is not an option of {prompt}"))
        if act == "skip" and prompt not in _SKIP_PROMPTS:
            problems.append(Problem(fname, n, f"act 'skip' answers a ticket field only, not {prompt}"))
        return str(act)


# ---- import ---------------------------------------------------------------------------------------------


def _old_rows(path: Path) -> list[dict[str, Any]]:
    out = []
    for r in read_jsonl(path):
        label = r.get("symptom") or OFF_TOPIC
        words = len(r["text"].split())
        out.append({
            "text": r["text"], "label": label, "cause": r.get("cause"), "idp": None,
            # The old set was not labelled for shortness: short = a plain in-domain line of <= 10 words.
            "short": bool(label != OFF_TOPIC and words <= 10), "hard": False,
        })
    return out


def import_corpus(src: Path, old: Path | None, dest: Path = CORPUS_DIR) -> dict[str, Any]:
    """Writers' files -> knowledge/corpus/*.jsonl with writer and split. A text written by several writers
    (an error string pasted verbatim) is kept once, in the most held-out split (heldout > dev > train), so no
    text is in two splits and the evaluation sets stay as written. Prints counts only."""
    order = {"heldout": 0, "dev": 1, "train": 2}
    stats: dict[str, Any] = {"dropped_duplicates": {}}
    dest.mkdir(parents=True, exist_ok=True)
    for kind in ("reports", "replies"):
        rows: list[dict[str, Any]] = []
        for writer, split in SPLITS.items():
            if writer == "w0":
                if kind == "reports" and old is not None:
                    for r in _old_rows(old):
                        rows.append({**r, "writer": "w0", "split": split})
                elif kind == "reports" and (dest / "reports.jsonl").exists():
                    # Re-import: the old set now lives only here.
                    rows += [r for r in read_jsonl(dest / "reports.jsonl") if r.get("writer") == "w0"]
                continue
            path = Path(src) / writer / f"{kind}.jsonl"
            for r in read_jsonl(path):
                rows.append({**r, "writer": writer, "split": split})
        # Keep one copy per text: the most held-out one; within a split the first written.
        best: dict[tuple[str, str], int] = {}
        for i, r in enumerate(rows):
            key = row_key(kind, r)
            j = best.get(key)
            if j is None or order[r["split"]] < order[rows[j]["split"]]:
                best[key] = i
        keep = sorted(best.values())
        kept_idx = set(keep)
        dropped: dict[str, int] = {}
        for i, r in enumerate(rows):
            if i not in kept_idx:
                dropped[r["writer"]] = dropped.get(r["writer"], 0) + 1
        stats["dropped_duplicates"][kind] = dropped
        with open(dest / f"{kind}.jsonl", "w", encoding="utf-8") as fh:
            for i in keep:
                fh.write(json.dumps(rows[i], ensure_ascii=False) + "\n")
        stats[kind] = len(keep)
    return stats


def add_writer(src: Path, writer: str, dest: Path = CORPUS_DIR, bundle: Any = None) -> dict[str, Any]:
    """Append one new writer's folder (reports.jsonl, replies.jsonl) to the corpus, in the writer's split
    (SPLITS). A text already in the corpus, in any split, is dropped, so nothing leaks into an evaluation
    split; a cause on a line that is not a symptom is dropped (causes go on symptom lines: a topic names its
    own causes). Prints counts only."""
    if writer not in SPLITS:
        raise SystemExit(f"writer '{writer}' has no split: add it to SPLITS first")
    split = SPLITS[writer]
    symptoms = {s.id for s in bundle.pack.symptoms} if bundle is not None else set()
    stats: dict[str, Any] = {"writer": writer, "split": split}
    for kind in ("reports", "replies"):
        have = read_jsonl(dest / f"{kind}.jsonl")
        if any(r.get("writer") == writer for r in have):
            raise SystemExit(f"writer '{writer}' is already in {kind}.jsonl")
        keys = {row_key(kind, r) for r in have}
        added = dropped = uncaused = 0
        with open(dest / f"{kind}.jsonl", "a", encoding="utf-8") as fh:
            for r in read_jsonl(Path(src) / f"{kind}.jsonl"):
                key = row_key(kind, r)
                if key in keys:
                    dropped += 1
                    continue
                keys.add(key)
                if kind == "reports" and r.get("cause") and symptoms and r.get("label") not in symptoms:
                    r = {**r, "cause": None}
                    uncaused += 1
                fh.write(json.dumps({**r, "writer": writer, "split": split}, ensure_ascii=False) + "\n")
                added += 1
        stats[kind] = {"added": added, "dropped_duplicates": dropped, "cause_dropped_off_symptom": uncaused}
    return stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bot.understand.corpus")
    sub = ap.add_subparsers(dest="cmd", required=True)
    imp = sub.add_parser("import", help="import writers' folders (w1..w6) into knowledge/corpus/")
    imp.add_argument("src")
    imp.add_argument("--old", help="the old labelled set (classify.jsonl) to import as w0; default: keep w0 as it is")
    add = sub.add_parser("add", help="append one new writer's folder (reports.jsonl, replies.jsonl) in its split")
    add.add_argument("src")
    add.add_argument("--writer", required=True)
    args = ap.parse_args(argv)
    if args.cmd == "add":
        from knowledge.loader import load_pack

        print(json.dumps(add_writer(Path(args.src), args.writer, bundle=load_pack()), indent=1))
        return 0
    if args.cmd == "import":
        stats = import_corpus(Path(args.src), Path(args.old) if args.old else None)
        print(json.dumps(stats, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
