"""The blocking face of LiveClient, for scripts and notebooks: no event loop to run.

    from realtime_client.sync import connect

    with connect("ws://127.0.0.1:8765/ws/live") as client:
        print(client.publish("quotes.demo.BTC-USDT", {"bid": 1, "ask": 2}))
        for event in client.subscribe("quotes.demo.>", filter="bid > 0"):
            print(event.topic, event.seq, event.data)

The asyncio client runs on a loop in a thread of its own; each call waits for its answer there.
Events reach the caller through a bounded queue: when the caller reads slower than the server
sends, the client stops reading the socket (the server then applies its slow-consumer policy),
never growing without bound.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any, Coroutine, Iterator, Optional, TypeVar

from .client import Gap, GapHandler, LiveClient, LiveClientError, LiveEvent, Position, Subscription

__all__ = ["Client", "SyncSubscription", "connect"]

T = TypeVar("T")
_END = object()
# How often a blocked iteration looks whether its subscription ended with a full queue.
_WAKE = 0.5


class SyncSubscription:
    """Iterate it for events (blocking); `get(timeout)` for one; `unsubscribe()` ends it."""

    def __init__(self, client: Client, events: queue.Queue[Any]) -> None:
        self._client = client
        self._events = events
        self._ended = False
        self.subscription: Optional[Subscription] = None

    def __iter__(self) -> Iterator[LiveEvent[Any]]:
        while True:
            try:
                yield self.get(_WAKE)
            except queue.Empty:
                continue
            except StopIteration:
                return

    def get(self, timeout: Optional[float] = None) -> LiveEvent[Any]:
        """The next event; queue.Empty after `timeout` seconds, StopIteration once it ended."""
        if self._ended and self._events.empty():
            raise StopIteration
        event = self._events.get(timeout=timeout)
        if event is _END:
            raise StopIteration
        return event  # type: ignore[no-any-return]

    def _end(self) -> None:
        self._ended = True
        try:
            self._events.put_nowait(_END)
        except queue.Full:
            pass  # the reader finds the flag once it has drained the queue

    @property
    def positions(self) -> dict[str, Position]:
        assert self.subscription is not None
        return self.subscription.positions

    def unsubscribe(self) -> None:
        assert self.subscription is not None
        self._client._run(self.subscription.unsubscribe())
        self._end()


class Client:
    """A LiveClient on a loop in its own thread; the same arguments as LiveClient."""

    def __init__(self, url: str, *, connect_timeout: Optional[float] = None, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="realtime-client", daemon=True)
        self._thread.start()
        self._subscriptions: list[SyncSubscription] = []
        self.live = LiveClient(url, **options)
        try:
            self._run(self.live.connect(), connect_timeout)
        except BaseException:
            self.close()
            raise

    def _run(self, coro: Coroutine[Any, Any, T], timeout: Optional[float] = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self.live.connected

    def request(self, method: str, params: Any = None, timeout: Optional[float] = None) -> Any:
        return self._run(self.live.request(method, params, timeout))

    def publish(self, topic: str, data: Any, timeout: Optional[float] = None) -> Position:
        return self._run(self.live.publish(topic, data, timeout))

    def probe(self, timeout: Optional[float] = None) -> float:
        return self._run(self.live.probe(timeout))

    def subscribe(
        self,
        pattern: str,
        *,
        filter: Optional[str] = None,
        delta: bool = False,
        snapshot: bool = True,
        on_gap: Optional[GapHandler] = None,
    ) -> SyncSubscription:
        """Subscribes (returns once acked) and gives an iterable of its events. `on_gap` is called on
        the client's thread."""
        events: queue.Queue[Any] = queue.Queue(self.live.queue_size)
        loop = self._loop

        async def deliver(event: LiveEvent[Any]) -> None:
            try:
                events.put_nowait(event)
            except queue.Full:
                # The caller is behind: wait in another thread, so the loop keeps answering calls
                # while this subscription's queue (and then the socket) pushes back.
                await loop.run_in_executor(None, events.put, event)

        result = SyncSubscription(self, events)
        result.subscription = self._run(self.live.subscribe(pattern, deliver, filter=filter, delta=delta, snapshot=snapshot, on_gap=on_gap))
        self._subscriptions.append(result)
        return result

    def close(self) -> None:
        """Closes the connection and stops the thread; iterations end."""
        if self._loop.is_closed():
            return
        try:
            self._run(self.live.close(), 10)
        finally:
            for subscription in self._subscriptions:
                subscription._end()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()


def connect(url: str, *, connect_timeout: Optional[float] = None, **options: Any) -> Client:
    """Connects (waiting for the first connection, at most `connect_timeout` s: TimeoutError) and
    returns a blocking client; use it in `with`."""
    return Client(url, connect_timeout=connect_timeout, **options)


__all__ += ["Gap", "LiveClientError", "LiveEvent", "Position"]
