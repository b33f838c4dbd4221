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
            first = await client.publish("quotes.demo.BTC-USDT", {"bid": 1, "ask": 2})
            assert isinstance(first, Position) and first.seq == 1 and isinstance(first.epoch, str)
            events: list[LiveEvent[Any]] = []
            sub = await client.subscribe("quotes.demo.>", events.append)
            await until(lambda: len(events) == 1, "the snapshot")
            assert (events[0].type, events[0].topic, events[0].seq, events[0].data) == ("snapshot", "quotes.demo.BTC-USDT", 1, {"bid": 1, "ask": 2})
            second = await client.publish("quotes.demo.BTC-USDT", {"bid": 1.5, "ask": 2})
            await until(lambda: len(events) == 2, "the event")
            assert (events[1].type, events[1].seq, events[1].epoch, events[1].data) == ("event", 2, second.epoch, {"bid": 1.5, "ask": 2})
            assert isinstance(events[1].ts, int)
            result = await client.request("time")
            assert isinstance(result["serverTime"], int)
            assert await client.probe() > 0
            await sub.unsubscribe()
            await client.publish("quotes.demo.BTC-USDT", {"bid": 3})
            assert (await client.request("snapshot", {"topic": "quotes.demo.BTC-USDT"}))["seq"] == 3
            assert len(events) == 2

    run(main())


def test_server_errors_keep_their_code(server):
    async def main() -> None:
        async with LiveClient(server.url) as client:
            with pytest.raises(LiveClientError) as err:
                await client.publish("quotes.>", {"bid": 1})
            assert err.value.code == "bad_request" and "wildcard" in err.value.message
            # Market topics are typed where they enter: a ticker without its sizes is refused by name.
            with pytest.raises(LiveClientError) as err:
                await client.publish("ticker.demo.BTC-USDT", {"bid": 1, "ask": 2})
            assert (err.value.code, err.value.message) == ("bad_request", '"ticker.demo.BTC-USDT": data.bidSize must be a positive number under 1e100')
            tick = {"bid": 99.5, "ask": 100.5, "bidSize": 2, "askSize": 3, "ts": 1765000000000}
            assert (await client.publish("ticker.demo.BTC-USDT", tick)).seq == 1
            with pytest.raises(LiveClientError) as err:
                await client.request("no-such-method")
            assert err.value.code == "not_found"
            with pytest.raises(LiveClientError) as err:
                await client.request("snapshot", {"topic": "nothing.here"})
            assert err.value.code == "not_found"
            assert await client.probe() > 0  # the connection stays usable

    run(main())


def test_a_bad_filter_is_refused_before_sending_with_the_servers_message(server):
    import msgpack
    import websockets

    async def main() -> None:
        text = 'netBps >= 10 and symbol in ["BTC-USD" "ETH-USD"]'
        sent: list[Any] = []
        async with LiveClient(server.url) as client:
            original = client._send
            client._send = lambda frame: (sent.append(frame), original(frame))  # type: ignore[method-assign]
            with pytest.raises(LiveClientError) as err:
                await client.subscribe("opportunities.>", lambda e: None, filter=text)
            assert err.value.code == "bad_request"
            assert not [f for f in sent if f["type"] == "subscribe"], "never sent"
        # The server's own answer to the same filter: the same message, the same position.
        async with websockets.connect(server.url, subprotocols=["live.v1.msgpack"]) as raw:
            await raw.send(msgpack.packb({"type": "subscribe", "id": 1, "topic": "opportunities.>", "filter": text}))
            reply = msgpack.unpackb(await raw.recv())
        assert reply["code"] == "bad_request" and reply["message"] == err.value.message
        assert "at position 38" in err.value.message

    run(main())


def test_filters_deliver_only_what_passes_and_report_no_gap(server):
    async def main() -> None:
        async with LiveClient(server.url) as client:
            events: list[LiveEvent[Any]] = []
            gaps: list[Gap] = []
            await client.subscribe("opportunities.>", events.append, filter='netBps >= 10 and symbol in ["BTC-USD"]', on_gap=gaps.append)
            for i, (symbol, bps) in enumerate([("BTC-USD", 5), ("BTC-USD", 12), ("ETH-USD", 50), ("BTC-USD", 10), ("BTC-USD", 9.99)]):
                await client.publish(f"opportunities.{symbol}", {"symbol": symbol, "netBps": bps, "i": i})
            await client.publish("opportunities.BTC-USD", {"symbol": "BTC-USD", "netBps": 99, "i": "last"})
            await until(lambda: events and events[-1].data["i"] == "last", "the last event")
            assert [e.data["i"] for e in events] == [1, 3, "last"]
            assert [e.seq for e in events] == [2, 3, 5]  # opportunities.BTC-USD's seqs: a jump by design
            assert gaps == []
            # Another pattern without the filter is refused on this client (the server holds one per pattern).
            with pytest.raises(LiveClientError, match="another filter"):
                await client.subscribe("opportunities.>", events.append)

    run(main())


def book(i: int) -> dict[str, Any]:
    return {"exchange": "okx", "symbol": "BTC-USDT", "bids": [[64000.5 + i, 0.25 * (i % 7)], [63990, 1]], "asks": [[64001.5 + i, 2]], "ts": 1767225600000 + i, "n": i}


@pytest.mark.parametrize("codec", ["msgpack", "json"])
def test_deltas_are_applied_and_verified(server, codec):
    async def main() -> None:
        async with LiveClient(server.url, codec=codec) as publisher, LiveClient(server.url, codec=codec) as client:
            applied = 0
            undelta = client._undelta

            def counting(*args: Any) -> Any:
                nonlocal applied
                applied += 1
                return undelta(*args)

            client._undelta = counting  # type: ignore[method-assign]
            events: list[LiveEvent[Any]] = []
            errors: list[BaseException] = []
            client.on_error = errors.append
            await client.subscribe("depth.okx.BTC-USDT", events.append, delta=True)
            for i in range(70):
                await publisher.publish("depth.okx.BTC-USDT", book(i))
            await until(lambda: len(events) == 70, "70 events")
            assert [e.data for e in events] == [book(i) for i in range(70)]
            assert [e.seq for e in events] == list(range(1, 71))
            # Whole first and every 32nd: the rest came as deltas, each applied and checked.
            assert applied >= 60, applied
            assert errors == []

    run(main())


def test_a_dropped_connection_resubscribes_with_since_and_the_delta_chain_goes_on(server):
    async def main() -> None:
        async with LiveClient(server.url) as publisher, LiveClient(server.url, min_delay=0.05, max_delay=0.2) as client:
            events: list[LiveEvent[Any]] = []
            gaps: list[Gap] = []
            opened = 0

            def on_open() -> None:
                nonlocal opened
                opened += 1

            client.on_open = on_open
            await client.subscribe("depth.okx.>", events.append, delta=True, on_gap=gaps.append)
            for i in range(100):
                if i in (30, 60):
                    await until(lambda: len(events) == i, f"{i} events before the drop")
                    client._socket.transport.abort()  # type: ignore[union-attr]
                await publisher.publish("depth.okx.BTC-USDT", book(i))
            await until(lambda: len(events) == 100, "all 100 events")
            assert [e.seq for e in events] == list(range(1, 101)), "each once, in order"
            assert [e.data for e in events] == [book(i) for i in range(100)]
            assert gaps == [] and opened == 2
            assert client._subscriptions[0].positions["depth.okx.BTC-USDT"].seq == 100

    run(main())


def test_calls_in_flight_on_a_dropped_connection_raise_disconnected():
    from conftest import FakeServer

    async def never_answer(socket: Any, frames: Any, n: int) -> None:
        await frames.get()  # the request, never answered
        await socket.close(1011, "gone")

    async def main() -> None:
        async with FakeServer(never_answer) as fake:
            async with LiveClient(fake.url, reconnect=False) as client:
                with pytest.raises(LiveClientError) as err:
                    await client.request("time")
                assert err.value.code == "disconnected"

    run(main())


def test_a_silent_server_is_detected_by_heartbeat_and_the_token_asked_again():
    from conftest import FakeServer

    async def silent(socket: Any, frames: Any, n: int) -> None:
        await socket.wait_closed()  # accepts, answers nothing (not even the ping frames)

    async def main() -> None:
        tokens = iter(f"token-{i}" for i in range(100))
        async with FakeServer(silent) as fake:
            client = LiveClient(fake.url, token=lambda: next(tokens), heartbeat=0.1, min_delay=0.01, max_delay=0.05)
            errors: list[BaseException] = []
            client.on_error = errors.append
            await client.connect()
            await until(lambda: fake.connections >= 3, "reconnects after silence")
            pings = [f for f in fake.received if f["type"] == "ping"]
            assert pings, "it pinged before giving up"
            assert any("no frame from the server" in str(e) for e in errors)
            assert [h["Authorization"] for h in fake.headers[:3]] == ["Bearer token-0", "Bearer token-1", "Bearer token-2"]
            await client.close()

    run(main())


def test_backoff_is_exponential_with_jitter_in_the_upper_half():
    client = LiveClient("ws://127.0.0.1:9/ws/live", min_delay=0.25, max_delay=10)
    for attempt, ceiling in [(0, 0.25), (1, 0.5), (3, 2), (5, 8), (6, 10), (60, 10)]:
        delays = [client._backoff(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 100  # drawn, not fixed


def test_async_handlers_and_iteration(server):
    async def main() -> None:
        async with LiveClient(server.url) as client:
            seen: list[int] = []

            async def handler(event: LiveEvent[Any]) -> None:
                await asyncio.sleep(0)
                # A handler may call the client: it runs beside the reader, not in it.
                await client.probe()
                seen.append(event.seq)

            class Collector:  # an object whose __call__ is a coroutine function counts as async too
                def __init__(self) -> None:
                    self.seqs: list[int] = []

                async def __call__(self, event: LiveEvent[Any]) -> None:
                    await asyncio.sleep(0)
                    self.seqs.append(event.seq)

            collector = Collector()
            await client.subscribe("quotes.a.X", handler)
            await client.subscribe("quotes.a.*", collector)
            sub = await client.subscribe("quotes.b.>")
            for i in range(5):
                await client.publish("quotes.a.X", {"i": i})
                await client.publish("quotes.b.Y", {"i": i})
            got = []
            async for event in sub:
                got.append(event.data["i"])
                if len(got) == 5:
                    await sub.unsubscribe()
            assert got == [0, 1, 2, 3, 4]
            await until(lambda: len(seen) == 5, "the async handler's 5")
            assert seen == [1, 2, 3, 4, 5]
            await until(lambda: len(collector.seqs) == 5, "the callable object's 5")
            assert collector.seqs == [1, 2, 3, 4, 5]

    run(main())
