#!/usr/bin/env python3
"""Events per second one Python process takes in: the Python SDK (realtime_client.LiveClient)
against a bare `websockets` + `msgpack` loop, in the same run, on the same server and events.

    flock /work/.bench.lock /usr/bin/python3 bench/python-intake.py [--quick] [--events N] [--rounds R]

Each measurement is a fresh receiver process. It subscribes, then stops reading (its loop blocked
on stdin) while a Node publisher publishes all N events: the server holds them (MAX_QUEUED_BYTES
is raised so it does), and the receiver's reading, once released, is the only thing timed, from
its first event to its N-th. So the figure is what the receiver can take in, not what the
publisher or the server can send. Without deltas both receivers get whole events; with deltas
both get the same delta frames, which the SDK applies (Fossil, checksum) and decodes into whole
events, and the bare loop only unpacks (it cannot use them: the ratio shows the price of deltas
in Python). Needs `npm run build` (dist/server.js) and the SDK importable (PYTHONPATH=clients/python).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
TOPICS = 16

PUBLISHER = r"""
import WebSocket from 'ws'
import { Encoder, Decoder } from '@msgpack/msgpack'
const [url, count, topics] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])]
const encoder = new Encoder(), decoder = new Decoder()
const ws = new WebSocket(url, ['live.v1.msgpack'])
let acked = 0, sent = 0
const WINDOW = 2000
function pump() {
  while (sent < count && sent - acked < WINDOW) {
    const i = sent++
    const t = i % topics, step = Math.floor(i / topics)
    // A ticker whose prices and sizes move a little each time: what deltas are for.
    const data = { exchange: 'bench', symbol: `SYM${t}-USDT`, bid: 100 + t + (step % 50) / 100, ask: 100.5 + t + (step % 50) / 100,
      bidSize: 1 + (step % 7), askSize: 2 + (step % 5), ts: 1767225600000 + step }
    ws.send(encoder.encode({ type: 'publish', id: i, topic: `ticker.bench.SYM${t}-USDT`, data }))
  }
}
ws.on('open', pump)
ws.on('message', (m) => {
  const f = decoder.decode(m)
  if (f.type !== 'ack') { console.error('publisher:', JSON.stringify(f)); process.exit(1) }
  if (++acked === count) { ws.close(); return }
  pump()
})
"""


def receiver(kind: str, url: str, count: int, delta: bool) -> None:
    """One measurement, in this process: subscribe, say so, wait for stdin, then take in `count` events."""
    import msgpack

    frame: dict[str, object] = {"type": "subscribe", "id": 1, "topic": "ticker.bench.>", "snapshot": False}
    if delta:
        frame["delta"] = True

    async def bare() -> tuple[float, int]:
        import websockets

        async with websockets.connect(url, subprotocols=["live.v1.msgpack"], max_size=None, ping_interval=None, compression=None) as ws:
            await ws.send(msgpack.packb(frame))
            assert msgpack.unpackb(await ws.recv())["type"] == "ack"
            release()
            n = 0
            unpack = msgpack.unpackb
            start = 0.0
            async for message in ws:
                f = unpack(message)
                if f["type"] == "event":
                    if n == 0:
                        start = time.perf_counter()
                    n += 1
                    if n == count:
                        return time.perf_counter() - start, count

        raise RuntimeError("closed early")

    async def sdk() -> tuple[float, int]:
        from realtime_client import LiveClient

        done = asyncio.get_running_loop().create_future()
        n = 0
        start = 0.0
        wrong = 0

        def handler(event: object) -> None:
            nonlocal n, start, wrong
            if n == 0:
                start = time.perf_counter()
            n += 1
            if n == count:
                done.set_result(time.perf_counter() - start)

        async with LiveClient(url, heartbeat=3600, on_error=lambda err: print(f"receiver: {err}", file=sys.stderr)) as client:
            await client.subscribe("ticker.bench.>", handler, delta=delta, snapshot=False)
            release()
            return await done, count

    def release() -> None:
        print("subscribed", flush=True)
        sys.stdin.readline()  # blocks the loop: nothing is read until the publisher is done

    if os.environ.get("INTAKE_PROFILE"):
        import cProfile
        import pstats

        profile = cProfile.Profile()
        profile.enable()
        seconds, n = asyncio.run(bare() if kind == "bare" else sdk())
        profile.disable()
        pstats.Stats(profile, stream=sys.stderr).sort_stats("tottime").print_stats(14)
    else:
        seconds, n = asyncio.run(bare() if kind == "bare" else sdk())
    print(json.dumps({"kind": kind, "delta": delta, "events": n, "seconds": seconds}), flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(kind: str, url: str, count: int, delta: bool) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "clients" / "python")}
    child = subprocess.Popen(
        [sys.executable, __file__, "--receiver", kind, "--url", url, "--events", str(count), *(["--delta"] if delta else [])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdin is not None and child.stdout is not None
    assert child.stdout.readline().strip() == "subscribed"
    subprocess.run(["node", "--input-type=module", "-e", PUBLISHER, url, str(count), str(TOPICS)], cwd=ROOT, check=True)
    child.stdin.write("go\n")
    child.stdin.flush()
    result = json.loads(child.stdout.readline())
    child.wait(60)
    return float(result["events"]) / float(result["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--receiver", choices=["bare", "sdk"])
    parser.add_argument("--url")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--delta", action="store_true")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.receiver:
        receiver(args.receiver, args.url, args.events, args.delta)
        return
    if args.quick:
        args.events, args.rounds = 100_000, 2
    port = free_port()
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": "warn",
        "PUBLISHER_RATE_LIMIT": "0",
        "MAX_QUEUED_BYTES": str(1024 * 1024 * 1024),
        "ARBITRAGE": "false",
        "HISTORY_DIR": "",
        # The server holds every event for the stopped receiver (hundreds of MiB): the memory
        # guard the server process has by default (200 MiB of RSS) would refuse the publishes.
        "MEMORY_LIMIT_MB": "0",
    }
    server = subprocess.Popen(["node", "dist/server.js"], cwd=ROOT, env=env)
    try:
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.05)
        url = f"ws://127.0.0.1:{port}/ws/live"
        load = os.getloadavg()
        results: dict[tuple[str, bool], list[float]] = {}
        for _ in range(args.rounds):
            for delta in (False, True):
                for kind in ("bare", "sdk"):
                    results.setdefault((kind, delta), []).append(measure(kind, url, args.events, delta))
        print(f"{args.events:,} events a measurement, {TOPICS} topics, {args.rounds} rounds; load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        print("| receiver | deltas | events/s (median) | all rounds | SDK / bare |")
        print("|---|---|---|---|---|")
        for delta in (False, True):
            bare = statistics.median(results[("bare", delta)])
            for kind in ("bare", "sdk"):
                rates = results[(kind, delta)]
                ratio = "" if kind == "bare" else f"{statistics.median(rates) / bare:.2f}"
                print(f"| {kind} | {'yes' if delta else 'no'} | {statistics.median(rates):,.0f} | {', '.join(f'{r:,.0f}' for r in rates)} | {ratio} |")
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
