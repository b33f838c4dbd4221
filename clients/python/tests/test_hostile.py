"""A hostile server cannot crash or hang the client: huge frames, decoding bombs, frames of the
wrong shape, a bogus delta, an endless replay."""

from __future__ import annotations

import asyncio
from typing import Any

import msgpack

from conftest import FakeServer, pack, run, until
from realtime_client import LiveClient, LiveClientError, LiveEvent


async def answer(socket: Any, frame: dict[str, Any], **fields: Any) -> None:
    """A well-behaved answer to one client frame."""
    kind = {"subscribe": "ack", "unsubscribe": "ack", "publish": "ack", "ping": "pong", "request": "response"}[frame["type"]]
    await socket.send(pack({"type": kind, "id": frame.get("id"), **fields}))


async def serve_calls(socket: Any, frames: asyncio.Queue[dict[str, Any]]) -> None:
    while True:
        frame = await frames.get()
        await answer(socket, frame, serverTime=1)


def event(seq: int, data: Any, topic: str = "t.a", epoch: str = "e1") -> bytes:
    return pack({"type": "event", "topic": topic, "seq": seq, "epoch": epoch, "ts": 1, "data": data})


def test_a_frame_past_the_limit_closes_that_connection_and_the_client_comes_back():
    async def script(socket: Any, frames: Any, n: int) -> None:
        subscribe = await frames.get()
        await answer(socket, subscribe, topics=["t.a"])
        if n == 1:
            await socket.send(b"\x00" * (2 * 1024 * 1024))  # past the client's max_frame_bytes
            await socket.wait_closed()
            return
        await socket.send(event(1, {"ok": True}))
        await serve_calls(socket, frames)

    async def main() -> None:
        async with FakeServer(script) as fake:
            closes: list[int] = []
            events: list[LiveEvent[Any]] = []
            async with LiveClient(fake.url, max_frame_bytes=1024 * 1024, min_delay=0.01, max_delay=0.05, on_close=lambda code, reason: closes.append(code)) as client:
                await client.subscribe("t.a", events.append)
                await until(lambda: events, "an event on the second connection")
                assert closes[0] == 1009  # closed by the client: message too big
                assert events[0].data == {"ok": True}
                assert await client.probe() >= 0

    run(main())


def test_undecodable_and_misshapen_frames_are_reported_and_skipped():
    bomb = b"\xdd\x7f\xff\xff\xff"  # an array declaring 2^31 elements in five bytes
    deep = b"\x91" * 100_000 + b"\xc0"  # nesting far past any stack
    frames_sent = [
        bomb,
        deep,
        b"\xc1",  # never used in MessagePack
        pack([1, 2, 3]),  # not a map
        pack({"no": "type"}),
        pack({"type": "event", "topic": 5, "seq": "x", "epoch": None, "data": 1}),
        pack({"type": "event", "topic": "t.a", "seq": 1.5, "epoch": "e1", "data": 1}),
        pack({"type": "snapshot", "topic": "t.a", "epoch": "e1"}),
        pack({"type": "ack", "id": "unknown"}),
        "{not json",
        pack({"type": "error", "code": {"x": 1}, "message": None}),
    ]

    async def script(socket: Any, frames: Any, n: int) -> None:
        subscribe = await frames.get()
        await answer(socket, subscribe, topics=["t.a"])
        for frame in frames_sent:
            await socket.send(frame)
        await socket.send(event(1, "fine"))
        await serve_calls(socket, frames)

    async def main() -> None:
        async with FakeServer(script) as fake:
            errors: list[BaseException] = []
            events: list[LiveEvent[Any]] = []
            async with LiveClient(fake.url, on_error=errors.append) as client:
                await client.subscribe("t.a", events.append)
                await until(lambda: events, "the good event after the bad ones")
                assert [e.data for e in events] == ["fine"]
                assert fake.connections == 1, "the connection survived"
                assert len(errors) >= 9 and all(isinstance(e, LiveClientError) for e in errors)
                assert await client.probe() >= 0

    run(main())


def test_a_bogus_delta_is_refused_before_any_work_and_recovered_through_since():
    async def script(socket: Any, frames: Any, n: int) -> None:
        subscribe = await frames.get()
        await answer(socket, subscribe, topics=["t.a"], delta=True)
        await socket.send(event(1, {"price": 1}))
        # Declares a 4 GiB result: refused on its header, not built.
        await socket.send(pack({"type": "event", "topic": "t.a", "seq": 2, "epoch": "e1", "ts": 1, "base": 1, "delta": b"~~~~~~\n1@0,0;"}))
        again = await frames.get()
        await answer(socket, again, topics=["t.a"], recovered=True, delta=True)
        await socket.send(event(2, {"price": 2}))
        await serve_calls(socket, frames)

    async def main() -> None:
        async with FakeServer(script) as fake:
            errors: list[BaseException] = []
            events: list[LiveEvent[Any]] = []
            async with LiveClient(fake.url, on_error=errors.append) as client:
                await client.subscribe("t.a", events.append, delta=True)
                await until(lambda: len(events) == 2, "the recovered event")
                assert [e.data for e in events] == [{"price": 1}, {"price": 2}]
                resubscribe = [f for f in fake.received if f["type"] == "subscribe"][1]
                assert resubscribe["since"] == {"epoch": "e1", "seq": 1} and resubscribe["delta"] is True
                assert any("exceeds the limit" in str(e) for e in errors)

    run(main())


def test_an_endless_replay_neither_floods_the_handler_nor_hangs_the_client():
    async def script(socket: Any, frames: Any, n: int) -> None:
        subscribe = await frames.get()
        await answer(socket, subscribe, topics=["t.a"])

        async def flood() -> None:
            while True:  # the same ten events, over and over
                for seq in range(1, 11):
                    await socket.send(event(seq, {"seq": seq}))
                # This server shares the test's event loop: let its own reader see the calls.
                await asyncio.sleep(0)

        flooding = asyncio.ensure_future(flood())
        try:
            await serve_calls(socket, frames)
        finally:
            flooding.cancel()

    async def main() -> None:
        async with FakeServer(script) as fake:
            events: list[LiveEvent[Any]] = []
            client = LiveClient(fake.url)
            await client.connect()
            await client.subscribe("t.a", events.append)
            received_before = 0
            for _ in range(3):
                assert await client.probe(timeout=60) >= 0, "calls are answered during the flood"
            await until(lambda: len(events) == 10, "the ten events")
            received_before = len(events)
            await asyncio.sleep(0.2)
            assert len(events) == received_before == 10, "each seq once"
            await client.close()  # returns while the server still floods

    run(main())


def test_seq_jumps_and_new_epochs_are_reported_and_transient_refusals_retried():
    async def script(socket: Any, frames: Any, n: int) -> None:
        subscribe = await frames.get()
        if n == 1:
            await answer(socket, subscribe, topics=["t.a"])
            for seq in (1, 2, 5):  # 3 and 4 never came (a conflated queue, say)
                await socket.send(event(seq, {"seq": seq}))
            await socket.send(event(1, {"reset": True}, epoch="e2"))  # the topic's history was reset
            await socket.wait_closed()
            return
        if n == 2:
            # A node still reaching its backplane: refused for now, then accepted on the retry.
            await socket.send(pack({"type": "error", "id": subscribe["id"], "code": "unavailable", "message": "the bus is unavailable"}))
            subscribe = await frames.get()
        await answer(socket, subscribe, topics=["t.a"], recovered=False)
        await socket.send(pack({"type": "snapshot", "topic": "t.a", "seq": 9, "epoch": "e3", "ts": 1, "data": {"seq": 9}}))
        await serve_calls(socket, frames)

    async def main() -> None:
        async with FakeServer(script) as fake:
            gaps: list[Any] = []
            events: list[LiveEvent[Any]] = []
            async with LiveClient(fake.url, min_delay=0.01, max_delay=0.05, on_error=lambda err: None) as client:
                await client.subscribe("t.a", events.append, on_gap=gaps.append)
                await until(lambda: len(events) == 4, "four events")
                await client._socket.close()  # type: ignore[union-attr]
                await until(lambda: len(events) == 5, "the snapshot after the refusal")
            assert [(g.reason, g.topic, g.expected, g.received) for g in gaps] == [
                ("seq-jump", "t.a", 3, 5),
                ("epoch", "t.a", None, None),
                ("not-recovered", None, None, None),
            ]
            assert [(e.type, e.epoch, e.seq) for e in events][-1] == ("snapshot", "e3", 9)
            subscribes = [f for f in fake.received if f["type"] == "subscribe"]
            assert [s.get("since") for s in subscribes] == [None, {"epoch": "e2", "seq": 1}, {"epoch": "e2", "seq": 1}]

    run(main())
