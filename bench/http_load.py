"""HTTP load benchmark: signed Slack events and Teams activities against a running `scim-help serve`.

    python -m bench.http_load [--stores sqlite,redis] [--rates 50,200,500] [--duration 10]
                              [--concurrency 1,50,200] [--closed-duration 6] [--workers N] [--processors M] [--json OUT]

Everything runs on 127.0.0.1 only:
- the server is a real `scim-help serve` subprocess (SQLite in a temporary directory, or Redis — a
  throwaway `redis-server` on a free port), with the deployment's logging (JSON at INFO);
- the Slack Web API and the Bot Connector are the local recorder fakes (tests/fakes/) in a separate process
  (tests/support/fakes_proc.py), so their CPU is not the server's; `SCIM_HELP_SLACK_API_URL` and each
  activity's `serviceUrl` point at them;
- this process generates load: every request is built and signed before the clock starts.

Open loop (Slack and Teams): requests arrive on a fixed schedule (`rate` per second for `duration` seconds)
whatever the server does; latencies are measured from the scheduled arrival, so a stalled server is not
hidden (no coordinated omission). Reported: ack latency p50/p99/max (HTTP response), whether every event
was answered exactly once (the recorder's `chat.postMessage` / connector replies per event, against the
number of messages one rendering of that turn gives), and answer latency p50/p99/max (recorder receipt
minus scheduled arrival; both clocks are CLOCK_MONOTONIC).

The Slack mix: half app mentions in channels (each a new thread), half DM turns — conversations of up to
three turns two seconds apart (report, then answers such as "yes", "it says 401"), each turn written in its
own DM thread so its answer is attributable — plus 2% of events redelivered by "Slack" one second later
with `X-Slack-Retry-Num` (same `event_id`), which must not be answered again.

Closed loop (1, 50, 200 concurrent clients sending back to back): saturation throughput. For Slack the ack
comes before the work, so both the ack rate and the answered rate (events answered / time until the last
answer) are given.

Peak RSS of the server process(es) is sampled every 100 ms (psutil) over each store's whole run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.http_measure import RssSampler, closed_loop, cpu_of, open_loop  # noqa: E402
from bench.http_requests import Endless, Expected, slack_requests, teams_requests  # noqa: E402
from tests.support import platform as P  # noqa: E402
from tests.support.fakes_proc import FakesProcess  # noqa: E402
from tests.support.procs import RedisProcess, ServerProcess, base_env, free_port  # noqa: E402

# ---- orchestration ---------------------------------------------------------------------------------------


def _server_env(store: str, data_dir: Path, fakes: FakesProcess, redis_url: str | None, workers: int, processors: int = 0) -> dict[str, str]:
    extra = {
        "SLACK_BOT_TOKEN": P.BOT_TOKEN,
        "SLACK_SIGNING_SECRET": P.SIGNING_SECRET,
        "SCIM_HELP_SLACK_API_URL": fakes.slack_api_url,
        "SCIM_HELP_STORE": store,
        "SCIM_HELP_CONVERSATION_TTL": "3600",
    }
    if redis_url:
        extra["SCIM_HELP_REDIS_URL"] = redis_url
    if workers > 1:
        extra["SCIM_HELP_WORKERS"] = str(workers)
    if processors:
        extra["SCIM_HELP_PROCESSORS"] = str(processors)
    return base_env(data_dir, **extra)


async def run_store(store: str, args: argparse.Namespace, fakes: FakesProcess, expected: Expected) -> dict[str, Any]:
    workers = args.workers_by_store.get(store, 1)
    processors = args.processors_by_store.get(store, 0)
    tmp = Path(tempfile.mkdtemp(prefix=f"scim-help-bench-{store}-"))
    redis: RedisProcess | None = None
    if store == "redis":
        redis = RedisProcess().start()
    server_args: tuple[str, ...] = ("--workers", str(workers)) if workers > 1 else ()
    env = _server_env(store, tmp / "data", fakes, redis.url if redis else None, workers, processors)
    server = ServerProcess(env, port=free_port(), args=server_args, cwd=tmp)
    out: dict[str, Any] = {"store": store, "workers": workers, "processors": processors, "open_loop": [], "closed_loop": []}
    rss = RssSampler()
    others = _OtherCpu(fakes, redis)
    try:
        server.start()
        rss.watch(server.pid)  # type: ignore[arg-type]
        profiler = _start_profiler(server, args, store)
        # Warm-up (imports, first auth.test, SQLite file, connection pools): not measured.
        for ch in ("slack", "teams"):
            warm = slack_requests(40, 1.0, seed=99) if ch == "slack" else teams_requests(40, 1.0, fakes.connector_url, seed=99)
            await open_loop(server, fakes, warm, expected, "warm-up")
        cpu0 = rss.cpu_seconds()
        for channel in args.channels:
            for rate in args.rates:
                if channel == "slack":
                    reqs = slack_requests(rate, args.duration)
                else:
                    reqs = teams_requests(rate, args.duration, fakes.connector_url)
                c0, o0, st0 = rss.cpu_seconds(), others.cpu(), _steal_seconds()
                rss.phase_start()
                r = await open_loop(server, fakes, reqs, expected, f"{channel} {rate}/s")
                r["rate"] = rate
                r["server_cpu_s"] = round(rss.cpu_seconds() - c0, 2)
                r["other_cpu_s"] = {"load_generator": r.pop("load_generator_cpu_s")} | {k: round(v - o0[k], 2) for k, v in others.cpu().items()}
                r["steal_s"] = round(_steal_seconds() - st0, 2)
                r["peak_rss_mb"] = rss.phase_peak_mb()
                out["open_loop"].append(r)
                _print_open(store, r)
        for channel in args.channels:
            for conc in args.concurrency:
                make = Endless(channel, fakes.connector_url)
                rss.phase_start()
                r = await closed_loop(server, fakes, make, conc, args.closed_duration, channel)
                r["peak_rss_mb"] = rss.phase_peak_mb()
                out["closed_loop"].append(r)
                _print_closed(store, r)
        out["server_cpu_s"] = round(rss.cpu_seconds() - cpu0, 1)
        errors = [line for line in server.log().splitlines() if '"level": "ERROR"' in line or "Traceback" in line]
        out["server_errors_logged"] = len(errors)
        out["server_error_samples"] = errors[:3]
    finally:
        out["rss"] = rss.stop()
        if "profiler" in locals() and profiler is not None:
            profiler.send_signal(2)
            profiler.wait(60)
        server.cleanup()
        if redis:
            redis.cleanup()
    return out


def _steal_seconds() -> float:
    """CPU time the hypervisor gave to others while this VM wanted it (/proc/stat "steal", all CPUs):
    runs with much steal are slower for reasons outside the bot."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


class _OtherCpu:
    """CPU of everything on the machine that is not the server, per phase: this load generator, the platform
    fakes and redis-server. All share the two cores with the server, so the server's headroom is what they
    leave."""

    def __init__(self, fakes: FakesProcess, redis: RedisProcess | None) -> None:
        import psutil

        self.psutil = psutil
        # The load generator's own CPU is taken in open_loop, from the first request on (building the
        # requests and their expected answers before the clock starts is not load).
        self.procs = {"fakes": [psutil.Process(fakes.proc.pid)]}  # type: ignore[union-attr]
        if redis is not None and redis.proc is not None:
            self.procs["redis"] = [psutil.Process(redis.proc.pid)]

    def cpu(self) -> dict[str, float]:
        return {k: cpu_of(self.psutil, v) for k, v in self.procs.items()}


def _start_profiler(server: ServerProcess, args: argparse.Namespace, store: str) -> Any:
    """py-spy over the server process(es) for the whole run (`--profile DIR`): a speedscope file per store."""
    if not args.profile:
        return None
    import shutil
    import subprocess

    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    args.profile.mkdir(parents=True, exist_ok=True)
    out = args.profile / f"{store}.{args.profile_format}"
    cmd = [spy, "record", "--pid", str(server.pid), "--subprocesses", "--rate", "200", "--format", args.profile_format, "--output", str(out), "--nonblocking"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _print_open(store: str, r: dict[str, Any]) -> None:
    a, w = r["ack"], r["answer"]
    print(
        f"  [{store}] open {r['label']:<14} events={r['events']:<5} ack p50={a['p50_ms']:.1f} p99={a['p99_ms']:.1f} max={a['max_ms']:.1f} ms | "
        f"exactly-once {r['answered_exactly_once']}/{r['events']} (missing {r['missing']}, dup {r['duplicated']}"
        f"{'; refused ' + str(r['refused']) + ', delivered again' if r.get('refused') else ''}) | "
        f"answer p50={w['p50_ms']:.0f} p99={w['p99_ms']:.0f} max={w['max_ms']:.0f} ms, within 2 s {r['answered_within_2s']} | cpu {r['server_cpu_s']}s "
        f"(others {', '.join(f'{k} {v}s' for k, v in r.get('other_cpu_s', {}).items())}; steal {r.get('steal_s')}s) | rss {r['peak_rss_mb']} MB",
        flush=True,
    )


def _print_closed(store: str, r: dict[str, Any]) -> None:
    print(
        f"  [{store}] closed {r['channel']:<5} x{r['concurrency']:<4} {r['req_per_s']:.0f} req/s acked, {r['answered_per_s']:.0f}/s answered "
        f"(p50 {r['latency']['p50_ms']:.1f} ms, p99 {r['latency']['p99_ms']:.1f} ms, errors {r['errors']})",
        flush=True,
    )


async def evaluate_async(args: argparse.Namespace) -> dict[str, Any]:
    expected = Expected()
    fakes = FakesProcess().start()
    try:
        results = []
        for store in args.stores:
            results.append(await run_store(store, args, fakes, expected))
    finally:
        fakes.stop()
        expected.close()
    return {
        "config": {
            "rates": args.rates,
            "duration_s": args.duration,
            "concurrency": args.concurrency,
            "closed_duration_s": args.closed_duration,
            "workers": args.workers_by_store,
            "processors": args.processors_by_store,
            "channels": args.channels,
        },
        "stores": results,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.http_load", description=__doc__.split("\n")[0])
    ap.add_argument("--stores", default="sqlite,redis")
    ap.add_argument("--channels", default="slack,teams")
    ap.add_argument("--rates", default="50,200,500")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--concurrency", default="1,50,200")
    ap.add_argument("--closed-duration", type=float, default=6.0)
    ap.add_argument("--workers", default=os.environ.get("SCIM_HELP_BENCH_WORKERS", "1"), help="server processes: N, or per store as sqlite=1,redis=2")
    ap.add_argument("--processors", default=os.environ.get("SCIM_HELP_BENCH_PROCESSORS", "0"), help="Slack processor processes: M, or per store as sqlite=2,redis=2")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--profile", type=Path, help="record the server with py-spy into this directory")
    ap.add_argument("--profile-format", default="speedscope", choices=["speedscope", "flamegraph", "raw"])
    args = ap.parse_args(argv)
    args.stores = [s for s in args.stores.split(",") if s]
    args.channels = [s for s in args.channels.split(",") if s]
    args.rates = [float(x) for x in args.rates.split(",") if x]
    args.concurrency = [int(x) for x in args.concurrency.split(",") if x]
    args.workers_by_store = _per_store(str(args.workers), args.stores)
    args.processors_by_store = _per_store(str(args.processors), args.stores)
    return args


def _per_store(spec: str, stores: list[str]) -> dict[str, int]:
    """A count per store from "2" (every store) or "sqlite=1,redis=2"."""
    if "=" in spec:
        return {k.strip(): int(v) for k, v in (p.split("=") for p in spec.split(",") if p.strip())}
    return {s: int(spec) for s in stores}


def evaluate(argv: list[str] | None = None) -> dict[str, Any]:
    return asyncio.run(evaluate_async(parse_args(argv)))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = asyncio.run(evaluate_async(args))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
