"""LiveClient against a real server: calls, subscriptions, filters, deltas, errors."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from conftest import run, until
from realtime_client import Gap, LiveClient, LiveClientError, LiveEvent, Position


def test_publish_subscribe_request_probe(server):
    async def main() -> None:
        async with LiveClient(server.url) as client:
            first = await client.publish("ticker.demo.BTC-USDT", {"bid": 1, "ask": 2})
            assert isinstance(first, Position) and first.seq == 1 and isinstance(first.epoch, str)
            events: list[LiveEvent[Any]] = []
            sub = await client.subscribe("ticker.demo.>", events.append)
            await until(lambda: len(events) == 1, "the snapshot")
            assert (events[0].type, events[0].topic, events[0].seq, events[0].data) == ("snapshot", "ticker.demo.BTC-USDT", 1, {"bid": 1, "ask": 2})
            second = await client.publish("ticker.demo.BTC-USDT", {"bid": 1.5, "ask": 2})
            await until(lambda: len(events) == 2, "the event")
            assert (events[1].type, events[1].seq, events[1].epoch, events[1].data) == ("event", 2, second.epoch, {"bid": 1.5, "ask": 2})
            assert isinstance(events[1].ts, int)
            result = await client.request("time")
            assert isinstance(result["serverTime"], int)
            assert await client.probe() > 0
            await sub.unsubscribe()
            await client.publish("ticker.demo.BTC-USDT", {"bid": 3})
            assert (await client.request("snapshot", {"topic": "ticker.demo.BTC-USDT"}))["seq"] == 3
            assert len(events) == 2

    run(main())
