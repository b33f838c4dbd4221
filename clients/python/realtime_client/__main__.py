"""python3 -m realtime_client sub | pub | ping: the SDK from a desk's shell, as `realtime` (the CLI) does it."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import signal
import sys
from typing import Any, Optional, Sequence

from .client import Gap, LiveClient, LiveClientError, LiveEvent

USAGE_EPILOG = "exit codes: 0 done, 1 refused or unreachable (the reason is printed), 2 usage"


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=os.environ.get("REALTIME_URL", "ws://127.0.0.1:8765/ws/live"), help="live endpoint (default $REALTIME_URL or %(default)s)")
    common.add_argument("--token", default=os.environ.get("REALTIME_TOKEN"), help="credential (default $REALTIME_TOKEN)")
    common.add_argument("--codec", choices=["msgpack", "json"], default="msgpack", help="frame codec (default msgpack)")
    common.add_argument("--json", action="store_true", help="one JSON object per line instead of the readable form")
    parser = argparse.ArgumentParser(prog="python3 -m realtime_client", description="The realtime live protocol from a terminal.", epilog=USAGE_EPILOG)
    commands = parser.add_subparsers(dest="command", required=True, metavar="{sub,pub,ping}")
    sub = commands.add_parser("sub", parents=[common], help="print events of the topics matching a pattern (* one token, > the rest)", epilog=USAGE_EPILOG)
    sub.add_argument("pattern")
    sub.add_argument("--count", type=_count, help="exit after N events")
    sub.add_argument("--no-snapshot", action="store_true", help="start with live events, without each topic's last value")
    sub.add_argument("--filter", help="only events whose data passes EXPR, e.g. 'netBps >= 10 and symbol in [\"BTC-USD\"]'")
    sub.add_argument("--delta", action="store_true", help="events travel as deltas against the one before (printed whole)")
    sub.add_argument("--retry", action="store_true", help="keep reconnecting (and recovering) when the server is away; without it a disconnect is exit 1")
    pub = commands.add_parser("pub", parents=[common], help="publish JSON data on a topic; prints the seq and epoch", epilog=USAGE_EPILOG)
    pub.add_argument("topic")
    pub.add_argument("data", help="the data, as JSON")
    ping = commands.add_parser("ping", parents=[common], help="round-trip percentiles of latency probes", epilog=USAGE_EPILOG)
    ping.add_argument("--count", type=_count, default=100, help="probes to send (default 100)")
    ping.add_argument("--interval", type=_count, default=10, help="pause between probes in ms (default 10)")
    return parser


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}")
    return value


def _say(message: str) -> None:
    sys.stderr.write(f"realtime: {message}\n")
    sys.stderr.flush()


def _print_event(event: LiveEvent[Any], as_json: bool) -> None:
    if as_json:
        line = json.dumps({"type": event.type, "topic": event.topic, "seq": event.seq, "epoch": event.epoch, "ts": event.ts, "data": event.data}, separators=(",", ":"))
    else:
        ts = event.ts if isinstance(event.ts, (int, float)) else 0
        when = datetime.datetime.fromtimestamp(ts / 1000, datetime.timezone.utc).strftime("%H:%M:%S.%f")[:12]
        snapshot = " (snapshot)" if event.type == "snapshot" else ""
        line = f"{when} {event.topic} #{event.seq}{snapshot} {json.dumps(event.data, separators=(',', ':'))}"
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _client(args: argparse.Namespace, retry: bool) -> LiveClient:
    return LiveClient(args.url, codec=args.codec, token=args.token or None, reconnect=retry, on_error=lambda err: _say(str(err)) if retry else None)


async def _sub(args: argparse.Namespace) -> int:
    done = asyncio.get_running_loop().create_future()
    seen = 0

    def on_close(code: int, reason: str) -> None:
        _say(f"disconnected ({code}{' ' + reason if reason else ''}){'; reconnecting' if args.retry else ''}")
        if not args.retry and not done.done():
            done.set_result(1)

    def on_event(event: LiveEvent[Any]) -> None:
        nonlocal seen
        _print_event(event, args.json)
        seen += 1
        if args.count is not None and seen >= args.count and not done.done():
            done.set_result(0)

    def on_gap(gap: Gap) -> None:
        jump = f" (expected #{gap.expected}, got #{gap.received})" if gap.expected is not None else ""
        _say(f"gap on {gap.topic or gap.pattern}: {gap.reason}{jump}")

    client = _client(args, args.retry)
    client.on_close = on_close
    loop = asyncio.get_running_loop()
    def interrupted() -> None:
        if not done.done():
            done.set_result(0)

    loop.add_signal_handler(signal.SIGINT, interrupted)
    try:
        await client.connect()
        await client.subscribe(args.pattern, on_event, filter=args.filter, delta=args.delta, snapshot=not args.no_snapshot, on_gap=on_gap)
        if args.count == 0:
            return 0
        return int(await done)
    finally:
        await client.close()


async def _pub(args: argparse.Namespace) -> int:
    try:
        data = json.loads(args.data)
    except ValueError:
        raise _UsageError(f"data is not JSON: {args.data[:80]}") from None
    client = _client(args, False)
    try:
        await client.connect()
        ack = await client.publish(args.topic, data)
    finally:
        await client.close()
    if args.json:
        print(json.dumps({"topic": args.topic, "seq": ack.seq, "epoch": ack.epoch}, separators=(",", ":")))
    else:
        print(f"{args.topic} #{ack.seq} (epoch {ack.epoch})")
    return 0


async def _ping(args: argparse.Namespace) -> int:
    client = _client(args, False)
    rtts: list[float] = []
    try:
        await client.connect()
        for _ in range(args.count):
            rtts.append(await client.probe())
            if args.interval > 0:
                await asyncio.sleep(args.interval / 1000)
    finally:
        await client.close()
    rtts.sort()

    def percentile(p: float) -> float:
        return rtts[min(len(rtts) - 1, int(len(rtts) * p / 100))] if rtts else 0.0

    summary = {"probes": args.count, "p50": percentile(50), "p90": percentile(90), "p99": percentile(99), "max": rtts[-1] if rtts else 0.0}
    if args.json:
        print(json.dumps({k: round(v, 3) for k, v in summary.items()}))
    else:
        print(f"{args.count} probes to {args.url}: p50 {summary['p50']:.3f} ms, p90 {summary['p90']:.3f} ms, p99 {summary['p99']:.3f} ms, max {summary['max']:.3f} ms")
    return 0


class _UsageError(Exception):
    pass


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)  # exits 2 with the usage on a bad command line
    command = {"sub": _sub, "pub": _pub, "ping": _ping}[args.command]
    try:
        return asyncio.run(command(args))
    except _UsageError as err:
        parser.print_usage(sys.stderr)
        _say(str(err))
        return 2
    except LiveClientError as err:
        _say(str(err))
        return 1
    except OSError as err:
        _say(f"cannot reach {args.url}: {err}")
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
