"""`wfbus serve` benchmark: HTTP -> broker with every event confirmed (issue 16's targets).

    .venv/bin/python bench/serve_bench.py [--brokers kafka,rabbitmq] [--duration 10]
        [--connections 64]

Starts `wfbus serve` in front of a fresh topic/queue on the real servers of scripts/services (it
starts no broker itself) and drives it from the same 2-core machine:

- throughput, single-event and 100-event requests: `wrk` (Debian's, C, closed loop) when installed,
  else an aiohttp client; every answer must be 200 (= confirmed by the broker), and the server's
  published counter must equal the events answered 200;
- latency at a fixed rate (1,000 requests/s, single events): an open-loop aiohttp client, p50/p99;
- the seed's pattern for comparison: the same server with `serve.coalesce: false`, one broker
  publish awaited per request (what its NestJS controller does), no micro-batching.

Targets: >= 5,000 events/s single-event, >= 50,000 events/s with 100-event requests, p99 <= 50 ms at
1,000 requests/s. Prints a markdown table and writes bench/results/serve-latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(
    0, str(ROOT / "tests")
)  # the contract kits make fresh topics/queues the way the tests do


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def event_body(count: int) -> bytes:
    events = [
        {"topic": "order.submit", "urn": f"o-{i % 50}", "payload": {"total": 150.0, "i": i}}
        for i in range(count)
    ]
    return json.dumps(events[0] if count == 1 else events, separators=(",", ":")).encode()


class Served:
    def __init__(self, directory: Path, target: dict, serve: dict) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "default_broker": "target",
            "brokers": {"target": target},
            "serve": {"max_concurrent": 4096, "max_events": 1000, "depth_brokers": [], **serve},
        }
        (directory / "wfbus.yaml").write_text(yaml.safe_dump(config))
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wfbus",
                "-c",
                str(directory / "wfbus.yaml"),
                "serve",
                "--listen",
                f"127.0.0.1:{self.port}",
            ],
            cwd=directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        import urllib.request

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise SystemExit(
                f"wfbus serve did not start: {self.proc.stderr.read().decode()[-2000:]}"
            )
        # the first request opens the broker connection: not part of any measurement
        urllib.request.urlopen(
            urllib.request.Request(f"{self.url}/events", data=event_body(1), method="POST")
        )

    def published(self) -> int:
        import urllib.request

        text = urllib.request.urlopen(f"{self.url}/metrics").read().decode()
        return int(
            sum(
                float(v)
                for v in re.findall(
                    r"^wfbus_serve_events_published_total\{[^}]*\} (\S+)$", text, re.M
                )
            )
        )

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


def wrk_throughput(url: str, body: bytes, duration: float, connections: int) -> dict:
    script = Path(tempfile.mkdtemp()) / "post.lua"
    script.write_text(
        "wrk.method = 'POST'\nwrk.headers['Content-Type'] = 'application/json'\n"
        f"wrk.body = {json.dumps(body.decode())}\n"
    )
    proc = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{int(duration)}s",
            "--latency",
            "-s",
            str(script),
            f"{url}/events",
        ],
        capture_output=True,
        text=True,
        timeout=duration + 120,
    )
    out = proc.stdout
    if " requests in " not in out:
        raise SystemExit(f"wrk failed: {out} {proc.stderr}")
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    p99 = re.search(r"99%\s+(\S+)", out)
    seconds = float(re.search(r"requests in ([\d.]+)(m?s)", out).group(1))
    unit = re.search(r"requests in [\d.]+(m?s)", out).group(1)
    seconds = seconds / 1000 if unit == "ms" else seconds
    return {
        "requests": requests,
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1) if errors else "",
        "seconds": seconds,
        "p99": p99.group(1) if p99 else None,
        "tool": "wrk",
    }


async def _aiohttp_throughput(url: str, body: bytes, duration: float, connections: int) -> dict:
    import aiohttp

    counts = {"ok": 0, "bad": 0}
    stop_at = time.monotonic() + duration

    async def worker(session) -> None:
        while time.monotonic() < stop_at:
            async with session.post(
                f"{url}/events", data=body, headers={"content-type": "application/json"}
            ) as answer:
                await answer.read()
                counts["ok" if answer.status == 200 else "bad"] += 1

    started = time.monotonic()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:
        await asyncio.gather(*(worker(session) for _ in range(connections)))
    return {
        "requests": counts["ok"] + counts["bad"],
        "non_2xx": counts["bad"],
        "socket_errors": "",
        "seconds": time.monotonic() - started,
        "p99": None,
        "tool": "aiohttp",
    }


async def _open_loop(url: str, rate: float, duration: float) -> dict:
    """Requests at a fixed rate whatever the answers (open loop): latency as a client at that
    rate sees it."""
    import aiohttp

    body = event_body(1)
    latencies: list[float] = []
    bad = 0

    async def one(session) -> None:
        nonlocal bad
        started = time.perf_counter()
        async with session.post(
            f"{url}/events", data=body, headers={"content-type": "application/json"}
        ) as answer:
            await answer.read()
            if answer.status != 200:
                bad += 1
        latencies.append(time.perf_counter() - started)

    tasks = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000)) as session:
        start = time.perf_counter()
        total = int(rate * duration)
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(session)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {
        "requests": len(latencies),
        "non_2xx": bad,
        "achieved_rate": len(latencies) / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": latencies[-1] * 1000,
    }


def run(kind: str, args: argparse.Namespace) -> list[dict]:
    from contract.kits import KITS

    rows = []
    use_wrk = shutil.which("wrk") is not None and not args.aiohttp
    patterns = (
        ("wfbus serve (micro-batching)", {}),
        ("seed's pattern (one publish per request)", {"coalesce": False}),
    )
    for pattern, serve in patterns[:1] if args.no_seed else patterns:
        for events in [int(n) for n in args.events.split(",")]:
            kit = KITS[kind]()
            directory = Path(tempfile.mkdtemp(prefix="serve-bench-"))
            try:
                served = Served(
                    directory, kit.settings(directory), {**serve, **json.loads(args.serve)}
                )
                try:
                    before = served.published()
                    body = event_body(events)
                    if use_wrk:
                        got = wrk_throughput(served.url, body, args.duration, args.connections)
                    else:
                        got = asyncio.run(
                            _aiohttp_throughput(served.url, body, args.duration, args.connections)
                        )
                    confirmed = served.published() - before
                    ok_events = (got["requests"] - got["non_2xx"]) * events
                    rows.append(
                        {
                            "broker": kind,
                            "pattern": pattern,
                            "events_per_request": events,
                            "requests_per_s": got["requests"] / got["seconds"],
                            "events_per_s": ok_events / got["seconds"],
                            "non_2xx": got["non_2xx"],
                            "confirmed_by_metrics": confirmed,
                            "answered_200_events": ok_events,
                            "p99": got["p99"],
                            "tool": got["tool"],
                        }
                    )
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
                    if events == 1 and pattern.startswith("wfbus") and not args.no_latency:
                        lat = asyncio.run(_open_loop(served.url, args.rate, args.duration))
                        rows.append(
                            {
                                "broker": kind,
                                "pattern": f"{pattern}, {args.rate:g} req/s open loop",
                                "events_per_request": 1,
                                **lat,
                                "tool": "aiohttp",
                            }
                        )
                        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
                finally:
                    served.stop()
            finally:
                kit.cleanup()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--brokers", default="kafka,rabbitmq")
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--connections", type=int, default=256)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument(
        "--serve", default="{}", help="extra serve: settings as JSON (e.g. linger_ms)"
    )
    parser.add_argument("--events", default="1,100", help="events per request, comma separated")
    parser.add_argument("--no-seed", action="store_true", help="skip the seed's pattern")
    parser.add_argument("--no-latency", action="store_true", help="skip the fixed-rate latency run")
    parser.add_argument(
        "--aiohttp", action="store_true", help="drive throughput with aiohttp even if wrk exists"
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "serve-latest.json"
    )
    args = parser.parse_args()
    rows = [row for kind in args.brokers.split(",") for row in run(kind.strip(), args)]
    print("| broker | pattern | events/request | events/s | requests/s | non-2xx | p50 ms | p99 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['broker']} | {r['pattern']} | {r['events_per_request']} | "
            f"{r.get('events_per_s', 0):,.0f} | "
            f"{r.get('requests_per_s', r.get('achieved_rate', 0)):,.0f} | {r['non_2xx']} | "
            f"{r.get('p50_ms', '')!s:.6} | {r.get('p99_ms', r.get('p99'))!s:.6} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
                "duration_s": args.duration,
                "connections": args.connections,
                "rows": rows,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
