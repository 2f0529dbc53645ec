"""Engine benchmark: questions-to-cause on realistic cases, and per-turn latency per store.

    python -m bench.engine_bench [--cases tests/data/engine_cases.jsonl] [--stores sqlite,redis] [--rounds 3]

Each case is an admin's opening message with the true symptom and cause. A simulated admin
(bench/oracle.py) answers every check truthfully by button, picks the true symptom when the bot asks
which one, and names the case's IdP when asked. Reported:
- mean questions-to-cause (check questions asked before the engine named a cause), overall and split by
  whether the opening message carried the evidence; cause and symptom accuracy;
- the same for a person walking the playbook top to bottom (every check in the pack's order, nothing
  read from the report) as the reference point;
- per-turn latency p50/p99/max for each store (whole `Engine.handle`: lock, load, classify, save).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.oracle import truthful_answer
from bot.classify import Classifier
from bot.engine import Engine
from bot.events import Incoming
from bot.store.base import Store
from knowledge.loader import load_pack
from knowledge.schema import Bundle

DEFAULT_CASES = Path(__file__).resolve().parent.parent / "tests" / "data" / "engine_cases.jsonl"


def load_cases(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


async def play_case(engine: Engine, case: dict, latencies: list[float]) -> dict:
    cid = f"bench:{uuid.uuid4().hex}"

    async def send(**kw) -> object:
        t0 = time.perf_counter()
        turn = await engine.handle(Incoming(channel="bench", conversation_id=cid, **kw))
        latencies.append(time.perf_counter() - t0)
        return turn

    turn = await send(text=case["text"])
    picked = False
    for _ in range(20):
        state = await engine.state(cid)
        if state is None:
            break
        if state.cause or state.phase in ("resolving", "escalating", "closed"):
            break
        pending = state.pending
        if state.phase in ("off-topic", "triage") or (pending and pending.kind == "clarify"):
            picked = True
            turn = await send(choice=case["symptom"])
            continue
        if pending and pending.kind == "idp":
            turn = await send(choice=f"idp:{case.get('idp') or engine.kb.pack.default_idp}")
            continue
        if pending and pending.kind == "check":
            check = engine.kb.checks[pending.id]
            ans = truthful_answer(check, case["cause"])
            turn = await send(choice=f"{check.id}:{ans.id}")
            continue
        break
    state = await engine.state(cid)
    return {
        "id": case.get("id"),
        "evidence": bool(case.get("evidence")),
        "symptom_ok": state is not None and state.symptom == case["symptom"],
        "symptom_picked": picked,
        "cause_ok": state is not None and state.cause == case["cause"],
        "questions": state.questions_to_cause if state and state.questions_to_cause is not None else (state.questions if state else 0),
    }


def playbook_walk(bundle: Bundle, case: dict) -> int:
    """Questions a person needs who asks every check of the symptom in the pack's order."""
    sym = bundle.symptoms[case["symptom"]]
    asked = 0
    for cid in sym.checks:
        check = bundle.checks[cid]
        asked += 1
        if truthful_answer(check, case["cause"]).confirms == case["cause"]:
            return asked
    return asked


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


def open_store(kind: str, tmp: Path) -> Store:
    if kind == "sqlite":
        from bot.store.sqlite import SQLiteStore

        return SQLiteStore(tmp / "bench.sqlite3")
    if kind == "redis":
        from bot.store.redis import RedisStore

        return RedisStore("redis://127.0.0.1:6379/14", prefix=f"scim-help-bench:{uuid.uuid4().hex}:")
    from bot.store.memory import MemoryStore

    return MemoryStore()


async def run_store(bundle: Bundle, clf: Classifier, cases: list[dict], kind: str, rounds: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(kind, Path(tmp))
        if not await store.ping():
            await store.close()
            return {"store": kind, "error": "store not reachable"}
        engine = Engine(bundle, store)
        latencies: list[float] = []
        results: list[dict] = []
        # One warm-up round (imports, caches, SQLite file creation) is not measured.
        for case in cases[:5]:
            await play_case(engine, case, [])
        for _ in range(rounds):
            results = [await play_case(engine, case, latencies) for case in cases]
        await store.close()
    ms = [x * 1000 for x in latencies]
    return {
        "store": kind,
        "turns": len(ms),
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else float("nan"),
        "results": results,
    }


def summarise(bundle: Bundle, cases: list[dict], results: list[dict]) -> dict:
    def mean_q(rows: list[dict]) -> float:
        return statistics.mean(r["questions"] for r in rows) if rows else float("nan")

    ev = [r for r in results if r["evidence"]]
    no_ev = [r for r in results if not r["evidence"]]
    walk = [playbook_walk(bundle, c) for c in cases]
    return {
        "cases": len(results),
        "mean_questions_to_cause": mean_q(results),
        "mean_questions_evidence": mean_q(ev),
        "mean_questions_no_evidence": mean_q(no_ev),
        "cause_accuracy": sum(r["cause_ok"] for r in results) / len(results),
        "symptom_accuracy": sum(r["symptom_ok"] for r in results) / len(results),
        "symptom_picked_by_admin": sum(r["symptom_picked"] for r in results),
        "playbook_walk_mean_questions": statistics.mean(walk),
        "wrong_cause_ids": [r["id"] for r in results if not r["cause_ok"]],
    }


async def evaluate(cases_path: Path = DEFAULT_CASES, stores: tuple[str, ...] = ("sqlite", "redis"), rounds: int = 3) -> dict:
    bundle = load_pack()
    clf = Classifier(bundle)
    cases = load_cases(cases_path)
    per_store = [await run_store(bundle, clf, cases, kind, rounds) for kind in stores]
    first_ok = next((s for s in per_store if "results" in s), None)
    summary = summarise(bundle, cases, first_ok["results"]) if first_ok else {}
    for s in per_store:
        s.pop("results", None)
    return {"summary": summary, "latency": per_store}


def print_report(report: dict, out=sys.stdout) -> None:
    s = report["summary"]
    print("== engine: questions-to-cause ==", file=out)
    print(f"cases                          {s['cases']}", file=out)
    print(f"mean questions-to-cause        {s['mean_questions_to_cause']:.2f}   (target <= 1.0)", file=out)
    print(f"  opening carries evidence     {s['mean_questions_evidence']:.2f}", file=out)
    print(f"  opening without evidence     {s['mean_questions_no_evidence']:.2f}", file=out)
    print(f"playbook walked top to bottom  {s['playbook_walk_mean_questions']:.2f}", file=out)
    print(f"cause accuracy                 {s['cause_accuracy']:.1%}", file=out)
    print(f"symptom accuracy (classifier)  {s['symptom_accuracy']:.1%}  ({s['symptom_picked_by_admin']} picked from the bot's menu)", file=out)
    if s["wrong_cause_ids"]:
        print(f"wrong cause                    {', '.join(s['wrong_cause_ids'])}", file=out)
    print("== engine: per-turn latency ==", file=out)
    for row in report["latency"]:
        if "error" in row:
            print(f"{row['store']:<8} {row['error']}", file=out)
        else:
            print(f"{row['store']:<8} turns={row['turns']:<5} p50={row['p50_ms']:.2f} ms  p99={row['p99_ms']:.2f} ms  max={row['max_ms']:.2f} ms   (target p99 <= 10 ms)", file=out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=Path, default=DEFAULT_CASES)
    ap.add_argument("--stores", default="sqlite,redis")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path, help="also write the report as JSON")
    args = ap.parse_args(argv)
    report = asyncio.run(evaluate(args.cases, tuple(args.stores.split(",")), args.rounds))
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
