"""LiveClient: one connection that reconnects by itself, requests with timeouts, and subscriptions
that survive reconnects by resubscribing with `since`, so a subscriber either gets every event or
is told what it missed (docs/PROTOCOL.md "Delivery"). The TypeScript SDK's behaviour, in asyncio.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import random
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Generic, Literal, Optional, TypeVar, Union

import msgpack  # type: ignore[import]
from websockets.exceptions import ConnectionClosed
from websockets.legacy.client import WebSocketClientProtocol, connect
from websockets.typing import Subprotocol

from .filter import Filter, FilterError, parse_filter
from .fossil import apply_delta
from .jsjson import js_json
from .patterns import is_pattern, matches

__all__ = ["Gap", "LiveClient", "LiveClientError", "LiveEvent", "Position", "Subscription"]

log = logging.getLogger("realtime_client")

Codec = Literal["msgpack", "json"]
SUBPROTOCOL_OF = {"msgpack": "live.v1.msgpack", "json": "live.v1.json"}
# Refusals that pass: the server (or its backplane) is busy or still starting.
TRANSIENT = frozenset(["unavailable", "rate_limited", "timeout", "internal"])
# Topics whose matching subscriptions are remembered (a hostile server could name endless topics).
_ROUTE_CACHE = 10_000

T = TypeVar("T")


class LiveClientError(Exception):
    """An `error` frame (its code kept), a `timeout`, a lost connection (`disconnected`), a frame
    the server should not have sent (`bad_frame`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(frozen=True, slots=True)
class Position:
    """Where a topic is: what a publish was acked with, and what a resubscribe recovers from."""

    epoch: str
    seq: int


@dataclass(slots=True)
class LiveEvent(Generic[T]):
    """An event or snapshot as the server sends it (deltas already applied)."""

    type: Literal["event", "snapshot"]
    topic: str
    seq: int
    epoch: str
    ts: Union[int, float, None]
    data: T


@dataclass(frozen=True, slots=True)
class Gap:
    """What a subscriber is told when it may have missed events.

    `not-recovered`: a resubscribe after a reconnect got recovered:false (a snapshot follows).
    `seq-jump`: a live event skipped seqs (`expected`, `received`): the server conflated, or lost them.
    `epoch`: the topic's history was reset on the server (a new epoch)."""

    pattern: str
    reason: Literal["not-recovered", "seq-jump", "epoch"]
    topic: Optional[str] = None
    expected: Optional[int] = None
    received: Optional[int] = None


Handler = Callable[[LiveEvent[Any]], Any]
GapHandler = Callable[[Gap], Any]
Token = Union[str, Callable[[], Union[str, Awaitable[str]]], None]

_END = object()


class _Pending:
    __slots__ = ("future", "frame", "sent", "timer", "then")

    def __init__(self, future: asyncio.Future[dict[str, Any]], frame: dict[str, Any]) -> None:
        self.future = future
        self.frame = frame
        self.sent = False
        self.timer: Optional[asyncio.TimerHandle] = None
        # Called as the answer is read, before the next frame (a future's callbacks would run later).
        self.then: Optional[Callable[[Optional[dict[str, Any]], Optional[LiveClientError]], None]] = None


class Subscription:
    """One subscribe of a client: its handler (or `async for event in subscription`), its filter and
    delta choice, and the last position seen per concrete topic, which a resubscribe recovers from."""

    def __init__(
        self,
        client: LiveClient,
        pattern: str,
        handler: Optional[Handler],
        filter: Optional[Filter],
        filter_text: Optional[str],
        delta: bool,
        snapshot: bool,
        on_gap: Optional[GapHandler],
        queue_size: int,
    ) -> None:
        self.pattern = pattern
        self.filter = filter_text
        self.delta = delta
        self.snapshot = snapshot
        self.on_gap = on_gap
        self._client = client
        self._filter = filter
        self._wildcard = is_pattern(pattern)
        self._positions: dict[str, tuple[str, int]] = {}
        self._acked: asyncio.Future[None] = client._loop.create_future()
        self.is_acked = False
        self.in_flight = False
        self.refusals = 0
        self.retry: Optional[asyncio.TimerHandle] = None
        self._ended = False
        # A plain function is called in the reader, in order. A coroutine function, or iteration,
        # reads from a bounded queue: when it is full the reader waits (TCP pushes back on the server).
        self._handler = handler
        self._queue: Optional[asyncio.Queue[Any]] = None
        self._task: Optional[asyncio.Task[None]] = None
        if handler is None or inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(getattr(handler, "__call__", None)):
            self._queue = asyncio.Queue(queue_size)
        if handler is not None and self._queue is not None:
            self._task = client._loop.create_task(self._run_handler())

    @property
    def positions(self) -> dict[str, Position]:
        """The last position seen per concrete topic."""
        return {topic: Position(epoch, seq) for topic, (epoch, seq) in self._positions.items()}

    async def unsubscribe(self) -> None:
        """Stops delivery here; the server subscription ends with the last subscription of its pattern."""
        await self._client._unsubscribe(self)

    def __aiter__(self) -> Subscription:
        if self._handler is not None:
            raise TypeError("a subscription with a handler is not iterable")
        return self

    async def __anext__(self) -> LiveEvent[Any]:
        assert self._queue is not None
        if self._ended and self._queue.empty():
            raise StopAsyncIteration
        event = await self._queue.get()
        if event is _END:
            raise StopAsyncIteration
        return event  # type: ignore[no-any-return]

    def _receive(self, event: LiveEvent[Any]) -> Optional[Awaitable[None]]:
        """Delivers an event unless it was already seen; reports jumps. An awaitable: the queue is full."""
        known = self._positions.get(event.topic)
        if known is not None:
            if known[0] == event.epoch:
                if event.seq <= known[1]:
                    return None  # a replay overlapping what was delivered
                if event.type == "event" and event.seq != known[1] + 1 and self._filter is None:
                    self._gap(Gap(self.pattern, "seq-jump", event.topic, known[1] + 1, event.seq))
            elif event.type == "event":
                self._gap(Gap(self.pattern, "epoch", event.topic))
        self._positions[event.topic] = (event.epoch, event.seq)
        if self._filter is not None and not self._filter.test(event.data):
            return None
        queue = self._queue
        if queue is None:
            self._handler(event)  # type: ignore[misc]
            return None
        if queue.full():
            return queue.put(event)
        queue.put_nowait(event)
        return None

    def _gap(self, gap: Gap) -> None:
        if self.on_gap is None:
            log.warning("missed events: %s", gap)
            return
        try:
            result = self.on_gap(gap)
            if inspect.isawaitable(result):
                self._client._loop.create_task(result)  # type: ignore[arg-type]
        except Exception as err:  # noqa: BLE001 - a caller's callback must not stop the reader
            self._client._report(err)

    async def _run_handler(self) -> None:
        assert self._queue is not None and self._handler is not None
        while True:
            event = await self._queue.get()
            if event is _END:
                return
            try:
                await self._handler(event)
            except Exception as err:  # noqa: BLE001
                self._client._report(err)

    def _settle(self, err: Optional[BaseException] = None) -> None:
        if self._acked.done():
            return
        if err is None:
            self.is_acked = True
            self._acked.set_result(None)
        else:
            self._acked.set_exception(err)

    def _end(self) -> None:
        """No more events: iteration stops after what is queued, an async handler after its last."""
        if self._ended:
            return
        self._ended = True
        if self.retry is not None:
            self.retry.cancel()
        if self._queue is not None and not self._queue.full():
            self._queue.put_nowait(_END)
        elif self._task is not None:
            self._task.cancel()

    def _frame(self) -> dict[str, Any]:
        """The subscribe frame: with `since` for every topic already seen, so a resubscribe recovers them."""
        frame: dict[str, Any] = {"type": "subscribe", "topic": self.pattern}
        if not self.snapshot:
            frame["snapshot"] = False
        if self.filter is not None:
            frame["filter"] = self.filter
        if self.delta:
            frame["delta"] = True
        if not self._positions:
            return frame
        if not self._wildcard:
            epoch, seq = self._positions[self.pattern]
            frame["since"] = {"epoch": epoch, "seq": seq}
        else:
            frame["since"] = {topic: {"epoch": epoch, "seq": seq} for topic, (epoch, seq) in self._positions.items()}
        return frame


class LiveClient:
    """A connection to the live endpoint that keeps itself up: use `async with LiveClient(url) as client`
    (or `await client.connect()` and `await client.close()`)."""

    def __init__(
        self,
        url: str,
        *,
        codec: Codec = "msgpack",
        token: Token = None,
        request_timeout: float = 5.0,
        heartbeat: float = 5.0,
        dead_after: Optional[float] = None,
        reconnect: bool = True,
        min_delay: float = 0.25,
        max_delay: float = 10.0,
        max_frame_bytes: int = 16 * 1024 * 1024,
        queue_size: int = 10_000,
        on_error: Optional[Callable[[BaseException], Any]] = None,
        on_open: Optional[Callable[[], Any]] = None,
        on_close: Optional[Callable[[int, str], Any]] = None,
    ) -> None:
        """`token` is sent as `Authorization: Bearer`; a function is asked again before each attempt.
        After `heartbeat` s without a frame the client pings; after `dead_after` (3 x heartbeat)
        without one, or without an answer to the upgrade, it drops the connection and reconnects,
        with delays from `min_delay` doubling to `max_delay`, each drawn in the upper half of its step."""
        if codec not in SUBPROTOCOL_OF:
            raise ValueError(f"codec must be msgpack or json, not {codec!r}")
        self.url = url
        self.codec: Codec = codec
        self.request_timeout = request_timeout
        self.heartbeat = heartbeat
        self.dead_after = dead_after if dead_after is not None else 3 * heartbeat
        self.reconnect = reconnect
        self.min_delay = min_delay
        self.max_delay = max_delay
        self.max_frame_bytes = max_frame_bytes
        self.queue_size = queue_size
        self.on_error = on_error
        self.on_open = on_open
        self.on_close = on_close
        self._token = token
        self._socket: Optional[WebSocketClientProtocol] = None
        self._pending: dict[int, _Pending] = {}
        self._subscriptions: list[Subscription] = []
        self._routes: dict[str, tuple[list[Subscription], bool]] = {}
        self._delta_subscriptions = 0
        # Per topic, the last whole data as the server encoded it: what its next delta applies to.
        self._bases: dict[str, tuple[str, int, bytes]] = {}
        self._next_id = 1
        self._attempt = 0
        self._closed = False
        # Frames read (the watchdog notices it move: cheaper than reading the clock per frame).
        self._frames = 0
        self._loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._task: Optional[asyncio.Task[None]] = None
        self._opened: Optional[asyncio.Future[None]] = None
        self._sends: set[asyncio.Task[None]] = set()
        self._packer = msgpack.Packer()
        self._unpack = msgpack.unpackb

    # ---- life cycle ----

    async def connect(self) -> LiveClient:
        """Starts the connection (it keeps reconnecting) and waits for the first one to open."""
        self._start()
        assert self._opened is not None
        await asyncio.shield(self._opened)
        return self

    async def __aenter__(self) -> LiveClient:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._socket is not None and self._socket.open

    def _start(self) -> None:
        if self._closed:
            raise LiveClientError("disconnected", "the client is closed")
        if self._task is None:
            self._loop = asyncio.get_running_loop()
            self._opened = self._loop.create_future()
            self._task = self._loop.create_task(self._run())

    async def close(self) -> None:
        """Closes for good: no reconnect; calls waiting for an answer raise `disconnected`."""
        if self._closed:
            return
        self._closed = True
        socket = self._socket
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - it is gone either way
                pass
        if socket is not None:
            try:
                await asyncio.wait_for(socket.close(1000, "client closed"), 2)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001
                socket.transport.abort()
        if self._opened is not None and not self._opened.done():
            self._opened.set_exception(LiveClientError("disconnected", "the client was closed before it connected"))
            self._opened.exception()  # retrieved: nobody may be waiting
        for pending in self._pending.values():
            self._fail(pending, LiveClientError("disconnected", "client closed"))
        self._pending.clear()
        for subscription in self._subscriptions:
            subscription._settle(LiveClientError("disconnected", "client closed"))
            subscription._end()

    # ---- calls ----

    async def request(self, method: str, params: Any = None, timeout: Optional[float] = None) -> Any:
        """Calls a request method (`time`, `topics`, `snapshot`, ...); raises with the server's error code, or `timeout`."""
        frame: dict[str, Any] = {"type": "request", "method": method}
        if params is not None:
            frame["params"] = params
        return (await self._call(frame, timeout)).get("result")

    async def publish(self, topic: str, data: Any, timeout: Optional[float] = None) -> Position:
        """Publishes one event; returns its seq and epoch once the server acked it."""
        ack = await self._call({"type": "publish", "topic": topic, "data": data}, timeout)
        seq, epoch = ack.get("seq"), ack.get("epoch")
        if type(seq) is not int or not isinstance(epoch, str):
            raise LiveClientError("bad_frame", f"publish ack without seq and epoch: {ack!r}")
        return Position(epoch, seq)

    async def probe(self, timeout: Optional[float] = None) -> float:
        """A latency probe: the round trip of a `request` carrying a timestamp, in ms."""
        self._start()
        start = self._loop.time()
        await self._call({"type": "request", "timestamp": self._loop.time()}, timeout)
        return (self._loop.time() - start) * 1000

    async def subscribe(
        self,
        pattern: str,
        handler: Optional[Handler] = None,
        *,
        filter: Optional[str] = None,
        delta: bool = False,
        snapshot: bool = True,
        on_gap: Optional[GapHandler] = None,
    ) -> Subscription:
        """Delivers each event (and the snapshot) of topics matching `pattern` to `handler` (a function
        or a coroutine function; without one, iterate the subscription), across reconnects: it
        resubscribes with the last seq seen per topic and gets exactly what it missed, or `on_gap`
        hears that it could not. Returns once the server acknowledged (after the next connect when
        there is no connection now); raises LiveClientError when the server refuses."""
        self._start()
        if not isinstance(pattern, str):
            raise LiveClientError("bad_request", "pattern must be a string")
        parsed: Optional[Filter] = None
        if filter is not None:
            try:
                parsed = parse_filter(filter)
            except FilterError as err:
                raise LiveClientError("bad_request", str(err)) from None
        # The server holds one filter per pattern and connection: a second one would replace the first.
        for other in self._subscriptions:
            if other.pattern == pattern and (other._filter.key if other._filter else None) != (parsed.key if parsed else None):
                raise LiveClientError("bad_request", f'"{pattern}" is subscribed with another filter on this client; use another client or one filter')
        subscription = Subscription(self, pattern, handler, parsed, filter, delta, snapshot, on_gap, self.queue_size)
        self._subscriptions.append(subscription)
        self._routes.clear()
        if delta:
            self._delta_subscriptions += 1
        if self.connected:
            self._resubscribe(subscription)
        try:
            await asyncio.shield(subscription._acked)
        except BaseException:
            self._forget(subscription)
            subscription._end()
            raise
        return subscription

    async def _unsubscribe(self, subscription: Subscription) -> None:
        subscription._end()
        if not self._forget(subscription):
            return
        still_wanted = any(s.pattern == subscription.pattern for s in self._subscriptions)
        if not still_wanted and self.connected:
            await self._call({"type": "unsubscribe", "topic": subscription.pattern})

    def _forget(self, subscription: Subscription) -> bool:
        if subscription not in self._subscriptions:
            return False
        self._subscriptions.remove(subscription)
        self._routes.clear()
        if subscription.delta:
            self._delta_subscriptions -= 1
        return True

    def _resubscribe(self, subscription: Subscription) -> None:
        again = subscription.is_acked
        subscription.in_flight = True
        self._call(subscription._frame(), then=lambda ack, err: self._subscribed(subscription, again, ack, err))

    def _subscribed(self, subscription: Subscription, again: bool, ack: Optional[dict[str, Any]], err: Optional[LiveClientError]) -> None:
        subscription.in_flight = False
        if ack is not None:
            subscription.refusals = 0
            if again and ack.get("recovered") is False:
                subscription._gap(Gap(subscription.pattern, "not-recovered"))
            subscription._settle()
            return
        assert err is not None
        code = err.code
        if code == "disconnected" and not self._closed:
            return  # the next connection subscribes again
        if not subscription.is_acked or self._closed:
            self._forget(subscription)
            subscription._settle(err)
            return
        if code in TRANSIENT:
            # Held before, refused now (a node still reaching its backplane, say): try again with backoff.
            self._report(err)

            def again_later() -> None:
                subscription.retry = None
                if self.connected and subscription in self._subscriptions and not subscription.in_flight:
                    self._resubscribe(subscription)

            subscription.retry = self._loop.call_later(self._backoff(subscription.refusals), again_later)
            subscription.refusals += 1
            return
        # Refused for good (its grant was withdrawn, say): it ends, and the caller hears so.
        self._forget(subscription)
        subscription._end()
        self._report(LiveClientError(code, f'subscription to "{subscription.pattern}" ended: {err}'))

    def _call(self, frame: dict[str, Any], timeout: Optional[float] = None, then: Any = None) -> asyncio.Future[dict[str, Any]]:
        self._start()
        ident = self._next_id
        self._next_id += 1
        frame["id"] = ident
        future: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        pending = _Pending(future, frame)
        pending.then = then
        seconds = self.request_timeout if timeout is None else timeout
        pending.timer = self._loop.call_later(seconds, self._time_out, ident, seconds)
        self._pending[ident] = pending
        if self.connected:
            self._transmit(pending)
        return future

    def _time_out(self, ident: int, seconds: float) -> None:
        pending = self._pending.pop(ident, None)
        if pending is not None:
            self._fail(pending, LiveClientError("timeout", f"no answer to {pending.frame['type']} within {seconds} s"))

    def _transmit(self, pending: _Pending) -> None:
        pending.sent = True
        self._send(pending.frame)

    def _send(self, frame: dict[str, Any]) -> None:
        """Sends in order: each send's task writes its frame in its first step, and tasks start in order."""
        socket = self._socket
        if socket is None:
            return
        data: Union[bytes, str] = self._packer.pack(frame) if self.codec == "msgpack" else json.dumps(frame, separators=(",", ":"))
        task = self._loop.create_task(socket.send(data))
        self._sends.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sends.discard(task)
        if not task.cancelled() and task.exception() is not None:
            pass  # the connection is closing; its reader ends it and fails what was in flight

    @staticmethod
    def _answer(pending: _Pending, frame: dict[str, Any]) -> None:
        if pending.timer is not None:
            pending.timer.cancel()
        if pending.then is not None:
            pending.then(frame, None)
        if not pending.future.done():
            pending.future.set_result(frame)

    @staticmethod
    def _fail(pending: _Pending, err: LiveClientError) -> None:
        if pending.timer is not None:
            pending.timer.cancel()
        if pending.then is not None:
            pending.then(None, err)
        if not pending.future.done():
            pending.future.set_exception(err)
            pending.future.exception()  # retrieved: the caller may have stopped waiting

    # ---- connection ----

    async def _run(self) -> None:
        failure = LiveClientError("disconnected", f"cannot reach {self.url}")
        while not self._closed:
            try:
                socket = await self._open()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - unreachable, refused, or a token function that failed
                failure = LiveClientError("unavailable", f"cannot reach {self.url}: {err}")
                self._report(failure)
                socket = None
            if socket is not None:
                await self._serve(socket)
            if self._closed or not self.reconnect:
                break
            await asyncio.sleep(self._backoff(self._attempt))
            self._attempt += 1
        if not self._closed and self._opened is not None and not self._opened.done():
            self._opened.set_exception(failure)

    async def _open(self) -> WebSocketClientProtocol:
        token = self._token() if callable(self._token) else self._token
        if inspect.isawaitable(token):
            token = await token
        headers = {"Authorization": f"Bearer {token}"} if token else None
        return await connect(
            self.url,
            subprotocols=[Subprotocol(SUBPROTOCOL_OF[self.codec])],
            extra_headers=headers,
            open_timeout=self.dead_after,
            ping_interval=None,  # liveness is the watchdog's: any frame counts, a ping frame when silent
            close_timeout=1,
            max_size=self.max_frame_bytes,
            compression=None,
        )

    async def _serve(self, socket: WebSocketClientProtocol) -> None:
        self._socket = socket
        self._attempt = 0
        watchdog = self._loop.create_task(self._watch(socket))
        # Resubscribe first (with since), then whatever calls waited for this connection.
        for subscription in list(self._subscriptions):
            if subscription.retry is not None:
                subscription.retry.cancel()
                subscription.retry = None
            self._resubscribe(subscription)
        for pending in list(self._pending.values()):
            if not pending.sent:
                self._transmit(pending)
        self._callback(self.on_open)
        if self._opened is not None and not self._opened.done():
            self._opened.set_result(None)
        code, reason = 1006, ""
        on_frame = self._on_frame
        try:
            async for message in socket:
                wait = on_frame(message)
                if wait is not None:
                    await wait
        except ConnectionClosed as closed:
            # The code that ended it: the server's, or the client's own (1009 for a frame too large).
            frame = closed.rcvd if closed.rcvd_then_sent or closed.sent is None else closed.sent
            if frame is not None:
                code, reason = frame.code, frame.reason
        finally:
            watchdog.cancel()
            self._drop(socket)
        if socket.close_code is not None and code == 1006:
            code, reason = socket.close_code, socket.close_reason or ""
        self._callback(self.on_close, code, reason)

    async def _watch(self, socket: WebSocketClientProtocol) -> None:
        """No frame for `heartbeat`: ping. None for `dead_after`: the server or the path is gone."""
        last_frame = pinged = self._loop.time()
        frames = self._frames
        while True:
            await asyncio.sleep(max(0.05, self.heartbeat / 2))
            now = self._loop.time()
            if self._frames != frames:
                frames = self._frames
                last_frame = now
            silent = now - last_frame
            if silent >= self.dead_after:
                self._report(LiveClientError("disconnected", f"no frame from the server for {silent:.1f} s: reconnecting"))
                socket.transport.abort()
                return
            if silent >= self.heartbeat and now - pinged >= self.heartbeat:
                pinged = now
                self._send({"type": "ping"})

    def _drop(self, socket: WebSocketClientProtocol) -> None:
        if self._socket is socket:
            self._socket = None
        # Calls sent on the lost connection cannot be answered: a publish may or may not have landed.
        for ident, pending in list(self._pending.items()):
            if pending.sent:
                del self._pending[ident]
                self._fail(pending, LiveClientError("disconnected", "the connection closed before the answer"))

    def _backoff(self, attempt: int) -> float:
        """The delay before try `attempt` (from 0): exponential up to max_delay, drawn in the upper half of its step."""
        ceiling = min(self.max_delay, self.min_delay * 2.0 ** min(attempt, 32))
        return ceiling / 2 + random.random() * ceiling / 2

    # ---- frames ----

    def _on_frame(self, message: Union[bytes, str]) -> Optional[Awaitable[Any]]:
        """Handles one frame; an awaitable when a subscription's queue is full (the reader waits)."""
        self._frames += 1
        try:
            frame = self._unpack(message) if type(message) is bytes else json.loads(message)
            kind = frame["type"]
            if kind == "event" or kind == "snapshot":
                return self._on_event(frame, kind)
            ident = frame.get("id")
            pending = self._pending.pop(ident, None) if type(ident) is int else None
            if pending is None:
                if kind == "error":
                    self._report(LiveClientError(str(frame.get("code")), str(frame.get("message"))))
                return None
            if kind == "error":
                self._fail(pending, LiveClientError(str(frame.get("code")), str(frame.get("message"))))
            else:
                self._answer(pending, frame)
        except Exception as err:  # noqa: BLE001 - a hostile or broken frame never stops the reader
            self._report(LiveClientError("bad_frame", f"undecodable frame from the server: {err!r}"[:500]))
        return None

    def _on_event(self, frame: dict[str, Any], kind: Literal["event", "snapshot"]) -> Optional[Awaitable[Any]]:
        topic, seq, epoch = frame["topic"], frame["seq"], frame["epoch"]
        if type(topic) is not str or type(seq) is not int or type(epoch) is not str:
            raise ValueError(f"{kind} without a string topic, an integer seq and a string epoch")
        route = self._routes.get(topic)
        if route is None:
            route = self._route(topic)
        if "delta" in frame:
            data = self._undelta(frame, topic, seq, epoch)
            if data is _END:
                return None
        else:
            data = frame.get("data")
            if route[1]:
                self._keep_base(topic, seq, epoch, data)
        event: LiveEvent[Any] = LiveEvent(kind, topic, seq, epoch, frame.get("ts"), data)
        waits: Optional[list[Awaitable[None]]] = None
        for subscription in route[0]:
            try:
                wait = subscription._receive(event)
            except Exception as err:  # noqa: BLE001 - one handler's failure is reported, not fatal
                self._report(err)
                continue
            if wait is not None:
                waits = [wait] if waits is None else [*waits, wait]
        if waits is None:
            return None
        return waits[0] if len(waits) == 1 else asyncio.gather(*waits)

    def _route(self, topic: str) -> tuple[list[Subscription], bool]:
        """The subscriptions a topic's events go to, and whether one of them takes deltas."""
        subscriptions = [s for s in self._subscriptions if s.pattern == topic or (s._wildcard and matches(s.pattern, topic))]
        route = (subscriptions, any(s.delta for s in subscriptions))
        if len(self._routes) >= _ROUTE_CACHE:
            self._routes.clear()
        self._routes[topic] = route
        return route

    def _undelta(self, frame: dict[str, Any], topic: str, seq: int, epoch: str) -> Any:
        """A delta event's data, verified (base seq, Fossil's checksum); _END when it cannot be."""
        base = self._bases.get(topic)
        try:
            if base is None or base[0] != epoch or base[1] != frame["base"]:
                raise ValueError(f"no event #{frame['base']!r} to apply it to")
            delta = frame["delta"]
            if type(delta) is bytes:
                out = apply_delta(base[2], delta, self.max_frame_bytes)
                data = self._unpack(out)
            elif type(delta) is str:
                out = apply_delta(base[2], delta.encode(), self.max_frame_bytes)
                data = json.loads(out)
            else:
                raise ValueError("delta is neither bytes nor text")
            self._bases[topic] = (epoch, seq, out)
            return data
        except Exception as err:  # noqa: BLE001
            # Lost its way (a conflated queue, a base it never had, a broken delta): recover through since.
            self._bases.pop(topic, None)
            self._report(LiveClientError("bad_frame", f"delta on {topic} #{seq} not applied ({err}): recovering"))
            for subscription in self._routes.get(topic, ([], False))[0]:
                if subscription.delta and not subscription.in_flight:
                    self._resubscribe(subscription)
            return _END

    def _keep_base(self, topic: str, seq: int, epoch: str, data: Any) -> None:
        """A whole event of a topic a delta subscription matches: its data as the server encoded it."""
        try:
            encoded = self._packer.pack(data) if self.codec == "msgpack" else js_json(data).encode()
        except Exception:  # noqa: BLE001 - data the server could not have encoded: no base, the next delta recovers
            self._bases.pop(topic, None)
            return
        self._bases[topic] = (epoch, seq, encoded)

    # ---- reporting ----

    def _report(self, err: BaseException) -> None:
        if self.on_error is None:
            log.warning("%s", err)
            return
        self._callback(self.on_error, err)

    def _callback(self, callback: Optional[Callable[..., Any]], *args: Any) -> None:
        if callback is None:
            return
        try:
            result = callback(*args)
            if inspect.isawaitable(result):
                self._loop.create_task(result)  # type: ignore[arg-type]
        except Exception as err:  # noqa: BLE001
            log.warning("callback %r failed: %r", callback, err)
