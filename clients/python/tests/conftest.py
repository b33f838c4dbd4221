"""A real server for the tests: the repository's dist/server.js on a port of its own (and a
redis-server of its own for BUS=redis), started and killed like the TypeScript tests do."""

from __future__ import annotations

import asyncio
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from typing import Any, Awaitable, Callable, Iterator, Optional

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
SERVER = ROOT / "dist" / "server.js"
NODE = shutil.which("node") or "node"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One server process; `kill()` is SIGKILL, `start()` again listens on the same port."""

    def __init__(self, env: dict[str, str]) -> None:
        if not SERVER.exists():
            raise RuntimeError(f"{SERVER} is missing: run `npm run build` first")
        self.env = env
        self.port = free_port()
        self.process: Optional[subprocess.Popen[str]] = None
        self.output: list[str] = []

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/live"

    def start(self) -> None:
        # Memory only unless a test names a journal (the server process journals to ./data by default).
        env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(self.port), "LOG_LEVEL": "warn", "HISTORY_DIR": "", **self.env}
        env.pop("REALTIME_URL", None)
        # LOG_LEVEL=warn hides the listening line: the port is chosen here, and /ready polled.
        self.process = subprocess.Popen([NODE, str(SERVER)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        process = self.process
        threading.Thread(target=lambda: self.output.extend(process.stdout or []), daemon=True).start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}: {''.join(self.output)}")
            try:
                # Ready, not just listening: with BUS=redis it answers 503 until its backplane is up.
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ready", timeout=5) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"server was not ready on {self.port}: {''.join(self.output)}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(30)
        self.process = None


class Redis:
    """A redis-server of the test's own on an ephemeral port, persistence off."""

    def __init__(self) -> None:
        if shutil.which("redis-server") is None:
            if os.environ.get("REQUIRE_REDIS") == "1":
                raise RuntimeError("REQUIRE_REDIS=1 but redis-server is missing (Debian package redis-server)")
            pytest.skip("needs redis-server (Debian package redis-server)")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="live-redis-")
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", self.dir]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on {self.port} did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(30)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def start_server() -> Iterator[Callable[..., Server]]:
    """Starts servers with the given environment; all are killed at the end of the test."""
    servers: list[Server] = []

    def start(**env: str) -> Server:
        server = Server(env)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.kill()


@pytest.fixture
def server(start_server: Callable[..., Server]) -> Server:
    return start_server()


@pytest.fixture
def redis() -> Iterator[Redis]:
    instance = Redis()
    yield instance
    instance.stop()


def run(coro: Awaitable[Any], timeout: float = 60) -> Any:
    """Runs a test's coroutine with a bound: a hang is a failure, never a stuck suite."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


async def until(predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Waits for a condition the test is about (not a timing assertion: the bound only ends a hang)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.01)


class FakeServer:
    """A hostile or scripted server on an ephemeral port: `script(socket, frames, connection)` runs
    per connection (frames: an asyncio.Queue of what the client sent, decoded)."""

    def __init__(self, script: Callable[..., Awaitable[None]]) -> None:
        self.script = script
        self.connections = 0
        self.received: list[dict[str, Any]] = []
        self.headers: list[Any] = []
        self.server: Any = None

    async def __aenter__(self) -> "FakeServer":
        import msgpack
        import websockets

        async def handle(socket: Any, path: str = "") -> None:
            self.connections += 1
            self.headers.append(socket.request_headers)
            frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

            async def read() -> None:
                async for message in socket:
                    frame = msgpack.unpackb(message) if isinstance(message, bytes) else __import__("json").loads(message)
                    self.received.append(frame)
                    frames.put_nowait(frame)

            reader = asyncio.ensure_future(read())
            script = asyncio.ensure_future(self.script(socket, frames, self.connections))
            closed = asyncio.ensure_future(socket.wait_closed())
            # The script ends with its connection (a client that went away mid-script is no error).
            await asyncio.wait({script, closed}, return_when=asyncio.FIRST_COMPLETED)
            for task in (reader, script, closed):
                task.cancel()
            await asyncio.gather(reader, script, closed, return_exceptions=True)

        self.server = await websockets.serve(handle, "127.0.0.1", 0, subprotocols=["live.v1.msgpack", "live.v1.json"], max_size=None, ping_interval=None)
        return self

    @property
    def url(self) -> str:
        port = self.server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}/ws/live"

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()


def pack(frame: dict[str, Any]) -> bytes:
    import msgpack

    return msgpack.packb(frame)
