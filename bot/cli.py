"""`scim-help` command line. Each subcommand lives in its own small function; heavy imports are deferred
into them, so `scim-help kb check` does not pay for the Slack and Teams SDKs."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any


def _load_bundle(path: str | None):
    from knowledge.loader import KnowledgeError, load_pack

    try:
        return load_pack(path)
    except KnowledgeError as exc:
        print(f"knowledge pack is invalid ({len(exc.issues)} problem(s)):", file=sys.stderr)
        for issue in exc.issues:
            print(f"  {issue}", file=sys.stderr)
        raise SystemExit(1) from None


def _pack_path(args: argparse.Namespace) -> str | None:
    if getattr(args, "knowledge", None):
        return args.knowledge
    from bot.settings import knowledge_path_from_env

    return knowledge_path_from_env()


# ---- kb --------------------------------------------------------------------------------------------


def cmd_kb_check(args: argparse.Namespace) -> int:
    """Load the pack with every check the engine relies on (schema, graph, per-IdP wording and console
    ownership, message placeholders); any problem is printed as file:line: path: message."""
    bundle = _load_bundle(args.path or _pack_path(args))
    p = bundle.pack
    answers = sum(len(c.answers) for c in p.checks)
    matches = sum(len(e.match) for e in p.errors)
    designed = sum(1 for c in p.causes if c.as_designed)
    print(
        f"ok: {bundle.origin}: {len(p.symptoms)} symptoms, {len(p.topics)} topics, {len(p.checks)} checks "
        f"({answers} answers), {len(p.causes)} causes ({designed} as designed), {len(p.errors)} errors "
        f"({matches} strings), {len(bundle.messages.messages)} messages, {len(p.idps)} IdPs "
        f"({', '.join(i.id for i in p.idps)}), "
        f"{sum(len(m.examples) for m in bundle.classifier.symptoms.values())} classifier examples"
    )
    return _check_corpus(bundle)


def _check_corpus(bundle) -> int:
    """The labelled corpus next to the pack (knowledge/corpus/), when there is one."""
    from pathlib import Path

    from bot.understand.corpus import validate

    corpus = Path(bundle.origin).resolve().parent / "corpus"
    if not (corpus / "reports.jsonl").exists():
        return 0
    problems, summary = validate(corpus, bundle)
    for note in summary.get("notes", []):
        print(f"  {note}")
    if problems:
        print(f"corpus is invalid ({len(problems)} problem(s)):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    parts = []
    for kind in ("reports", "replies"):
        per_split = summary.get(kind, {})
        parts.append(f"{kind} " + ", ".join(f"{sp} {sum(c.values())}" for sp, c in sorted(per_split.items())))
    print(f"ok: corpus {corpus}: " + "; ".join(parts) + f"; writers {', '.join(f'{w}={s}' for w, s in sorted(summary['writers'].items()))}")
    return 0


def cmd_kb_train(args: argparse.Namespace) -> int:
    """Rebuild the reader's model artefact (knowledge/model/) from the corpus: one reproducible command."""
    try:
        from bot.understand import train as tr
    except ImportError as exc:  # scikit-learn is in the bench extra
        print(f"kb train needs scikit-learn (pip install '.[bench]'): {exc}", file=sys.stderr)
        return 2
    import time

    bundle = _load_bundle(_pack_path(args))
    t0 = time.perf_counter()
    meta, arrays = tr.train(bundle, tr.Config(thresholds=tr.THRESHOLDS))
    meta_path, arr_path = tr.save(meta, arrays)
    size = (meta_path.stat().st_size + arr_path.stat().st_size) / 1024
    print(
        f"ok: trained on {meta['trained_on']['reports']} reports and {meta['trained_on']['replies']} replies "
        f"({', '.join(meta['trained_on']['splits'])}) in {time.perf_counter() - t0:.0f} s; corpus {meta['corpus_hash']}; "
        f"wrote {meta_path} and {arr_path.name} ({size:.0f} KB)"
    )
    return 0


def cmd_kb_graph(args: argparse.Namespace) -> int:
    from knowledge.graph import mermaid

    print(mermaid(_load_bundle(_pack_path(args))))
    return 0


# ---- classify --------------------------------------------------------------------------------------


def cmd_classify(args: argparse.Namespace) -> int:
    from bot.understand import Context, Reader

    bundle = _load_bundle(_pack_path(args))
    reader = Reader(bundle)
    if args.text:
        text = " ".join(args.text)
        reading = reader.read(text, Context(addressed=False))
        print(reader.explain(reading))
        return 0
    # JSON Lines contract: exactly one output line per input line, in order, flushed as we go.
    for lineno, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        out: dict[str, Any]
        try:
            out = reader.classify(_classify_input(line))
        except ValueError as exc:
            print(f"line {lineno}: {exc}", file=sys.stderr)
            out = {"symptom": None, "cause": None, "confidence": 0.0, "candidates": [], "in_domain": False, "topic": None, "error": str(exc)}
        sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    return 0


CLASSIFY_INPUT = 'expected {"text": "..."}'


def _classify_input(line: str) -> str:
    """The text of one `classify` input line; ValueError saying what is expected when it has none."""
    try:
        item = json.loads(line)
    except ValueError as exc:
        raise ValueError(f"not JSON ({exc.args[0] if exc.args else exc}): {CLASSIFY_INPUT}") from None
    text = item.get("text") if isinstance(item, dict) else None
    if not isinstance(text, str):
        raise ValueError(CLASSIFY_INPUT)
    return text


# ---- conversation ------------------------------------------------------------------------------------


def cmd_chat(args: argparse.Namespace) -> int:
    from bot.terminal import run_chat

    return run_chat(args)


def cmd_replay(args: argparse.Namespace) -> int:
    from bot.terminal import run_replay

    return run_replay(args)


def cmd_serve(args: argparse.Namespace) -> int:
    from bot.server import run_server

    return run_server(args)


def cmd_config(args: argparse.Namespace) -> int:
    from bot.settings import print_config

    return print_config()


def cmd_graph_check(args: argparse.Namespace) -> int:
    from bot.graph.check import run_graph_check

    return run_graph_check(args)


def cmd_stats(args: argparse.Namespace) -> int:
    from bot.stats import run_stats

    return run_stats(args)


DESCRIPTION = (
    "scim-help walks IT admins through troubleshooting SCIM provisioning into the Cato Management Application: "
    "talk to it here (chat), serve it to Slack, Teams and the web chat (serve), or check its knowledge pack (kb)."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scim-help", description=DESCRIPTION)
    parser.add_argument("--knowledge", help="knowledge pack manifest (default: SCIM_HELP_KNOWLEDGE or the shipped pack)")
    sub = parser.add_subparsers(dest="command", required=True)

    kb = sub.add_parser("kb", help="validate or draw the knowledge pack")
    kb_sub = kb.add_subparsers(dest="kb_command", required=True)
    check = kb_sub.add_parser("check", help="validate a pack; prints file:line: path: problem for each error")
    check.add_argument("path", nargs="?", help="pack manifest (default: the configured pack)")
    check.set_defaults(func=cmd_kb_check)
    train = kb_sub.add_parser("train", help="rebuild the understanding model (knowledge/model/) from knowledge/corpus/")
    train.set_defaults(func=cmd_kb_train)
    graph = kb_sub.add_parser("graph", help="print the decision graph as a Mermaid flowchart")
    graph.set_defaults(func=cmd_kb_graph)

    cls = sub.add_parser("classify", help="classify text (argument: readable; none: JSON Lines on stdin)")
    cls.add_argument("text", nargs="*")
    cls.set_defaults(func=cmd_classify)

    chat = sub.add_parser("chat", help="talk to the bot in the terminal")
    chat.add_argument("--conversation", help="conversation id to resume (default: a new one)")
    chat.set_defaults(func=cmd_chat)

    replay = sub.add_parser("replay", help="JSON Lines turns on stdin -> one JSON line per turn on stdout")
    replay.add_argument("--conversation", help="conversation id (default: a new one)")
    replay.set_defaults(func=cmd_replay)

    serve = sub.add_parser("serve", help="run the HTTP server (web chat, Slack, Teams, health, metrics)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, help="server processes sharing the port and store (default: SCIM_HELP_WORKERS or 1)")
    serve.add_argument(
        "--processors",
        type=int,
        help="processes that run Slack's requests while the workers only acknowledge them (default: SCIM_HELP_PROCESSORS or 0)",
    )
    serve.set_defaults(func=cmd_serve)

    config = sub.add_parser("config", help="print the effective configuration, secrets masked")
    config.set_defaults(func=cmd_config)

    graph_cmd = sub.add_parser("graph", help="the optional Microsoft Graph connection (SCIM_HELP_GRAPH_*)")
    graph_sub = graph_cmd.add_subparsers(dest="graph_command", required=True)
    gcheck = graph_sub.add_parser("check", help="verify the connection and each permission; print what is missing")
    gcheck.add_argument("--upn", help="a user to test the per-user reads with (default: one the app is assigned to)")
    gcheck.set_defaults(func=cmd_graph_check)

    stats = sub.add_parser("stats", help="outcomes per symptom and cause, read from the store")
    stats.add_argument("--json", action="store_true", help="machine-readable output")
    stats.set_defaults(func=cmd_stats)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
