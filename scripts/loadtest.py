"""Load test of a running studio (``python app.py``) through its ``colorize`` API. Loopback only.

N concurrent clients each send M requests (default 50 x 5) with ``gradio_client``; the run is bounded
in count (at most 200 clients x 50 requests) and in time (``--deadline``). Reports failures, latency
percentiles and the peak resident memory of the server process (found by its listening port, or
``--pid``), children included.

    python scripts/loadtest.py --model eccv16-small --clients 50 --requests 5
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import statistics
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import psutil

REPO = Path(__file__).resolve().parents[1]
MAX_CLIENTS, MAX_REQUESTS = 200, 50


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    skipped: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def check_loopback(url: str) -> int:
    """The port of ``url``; refuses anything but a loopback host so the script cannot load others."""
    parsed = urlparse(url)
    host = parsed.hostname or ""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror as exc:
        raise SystemExit(f"cannot resolve {host!r}: {exc}") from exc
    if not addresses or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        raise SystemExit(f"refusing to load {host!r}: only loopback addresses (127.0.0.1, ::1) are allowed")
    return parsed.port or (443 if parsed.scheme == "https" else 80)


def server_pid(port: int) -> int | None:
    """The pid of the process listening on ``port`` on this machine, if it can be seen."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return None
    for conn in conns:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return conn.pid
    return None


class RssSampler(threading.Thread):
    """Samples the resident memory of a process and its children every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.interval = interval
        self.first = self.peak = self.last = self._rss()
        self._halt = threading.Event()

    def _rss(self) -> int:
        try:
            procs = [self.proc, *self.proc.children(recursive=True)]
            return sum(p.memory_info().rss for p in procs if p.is_running())
        except psutil.Error:
            return self.last if hasattr(self, "last") else 0

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self.last = self._rss()
            self.peak = max(self.peak, self.last)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=2)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def worker(url: str, args: argparse.Namespace, deadline: float, outcome: Outcome, start_gate: threading.Event
           ) -> None:
    from gradio_client import Client, handle_file

    try:
        client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
    except Exception as exc:  # a refused connection must count as a failure, not kill the run
        with outcome.lock:
            outcome.errors[f"connect: {type(exc).__name__}: {exc}"[:160]] += args.requests
        return
    start_gate.wait()
    for _ in range(args.requests):
        if time.monotonic() >= deadline:
            with outcome.lock:
                outcome.skipped += 1
            continue
        t0 = time.perf_counter()
        try:
            job = client.submit(handle_file(str(args.image)), args.model, args.temperature, args.top_k,
                                args.size, args.output_format, api_name="/colorize")
            job.result(timeout=max(1.0, min(args.request_timeout, deadline - time.monotonic())))
        except Exception as exc:
            with outcome.lock:
                outcome.errors[f"{type(exc).__name__}: {exc}"[:160]] += 1
            continue
        with outcome.lock:
            outcome.latencies.append(time.perf_counter() - t0)
    client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:7860/")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=5, help="requests per client")
    parser.add_argument("--model", required=True, help="a model name from the studio's list")
    parser.add_argument("--image", type=Path, default=REPO / "assets" / "examples" / "astronaut.jpg")
    parser.add_argument("--temperature", type=float, default=0.38)
    parser.add_argument("--top-k", type=int, default=0)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--output-format", default="auto", choices=["auto", "jpeg", "png"],
                        help="what the API answers with (auto: JPEG for a JPEG upload, else PNG)")
    parser.add_argument("--pid", type=int, default=None, help="server pid (default: found by port)")
    parser.add_argument("--deadline", type=float, default=300.0, help="stop sending after this many seconds")
    parser.add_argument("--request-timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= MAX_CLIENTS or not 1 <= args.requests <= MAX_REQUESTS:
        parser.error(f"--clients must be in 1..{MAX_CLIENTS} and --requests in 1..{MAX_REQUESTS}")
    if not args.image.is_file():
        parser.error(f"{args.image} does not exist")
    port = check_loopback(args.url)
    pid = args.pid or server_pid(port)
    sampler = None
    if pid is not None:
        sampler = RssSampler(pid)
        sampler.start()
    else:
        print(f"note: no process found listening on port {port}; memory is not measured (pass --pid)")

    outcome = Outcome()
    gate = threading.Event()
    total = args.clients * args.requests
    print(f"{args.clients} clients x {args.requests} requests = {total} calls of /colorize "
          f"({args.model}, size {args.size}, output {args.output_format}) against {args.url}")
    t0 = time.monotonic()
    deadline = t0 + args.deadline
    with ThreadPoolExecutor(max_workers=args.clients) as pool:
        futures = [pool.submit(worker, args.url, args, deadline, outcome, gate) for _ in range(args.clients)]
        gate.set()  # clients connect first, then all start at once
        for f in futures:
            f.result()
    wall = time.monotonic() - t0
    if sampler is not None:
        sampler.stop()

    lat = sorted(outcome.latencies)
    failures = sum(outcome.errors.values())
    print(f"done in {wall:.1f} s: {len(lat)} ok, {failures} failed, {outcome.skipped} not sent (deadline)")
    if lat:
        print(f"latency: p50 {percentile(lat, 50):.2f} s, p95 {percentile(lat, 95):.2f} s, "
              f"max {lat[-1]:.2f} s; throughput {len(lat) / wall:.2f} req/s")
    for message, count in outcome.errors.most_common(5):
        print(f"  {count} x {message}")
    if sampler is not None:
        mib = 1 << 20
        print(f"server RSS (pid {pid} + children): start {sampler.first / mib:.0f} MiB, "
              f"peak {sampler.peak / mib:.0f} MiB, end {sampler.last / mib:.0f} MiB")
    return 1 if failures or outcome.skipped else 0


if __name__ == "__main__":
    sys.exit(main())
