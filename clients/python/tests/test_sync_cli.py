"""The blocking wrapper and `python3 -m realtime_client`, against a real server."""

from __future__ import annotations

import json
import os
import pathlib
import queue
import subprocess
import sys

import pytest

from realtime_client import LiveClientError
from realtime_client.sync import connect


def test_the_blocking_client_publishes_requests_and_iterates(server):
    with connect(server.url) as client:
        first = client.publish("quotes.sync.BTC-USDT", {"bid": 1})
        assert first.seq == 1
        assert isinstance(client.request("time")["serverTime"], int)
        assert client.probe() > 0
        sub = client.subscribe("quotes.sync.>", filter="bid >= 2")
        for bid in (1, 2, 3, 0.5, 4):
            client.publish("quotes.sync.BTC-USDT", {"bid": bid})
        got = []
        for event in sub:
            got.append((event.seq, event.data["bid"]))
            if len(got) == 3:
                break
        assert got == [(3, 2), (4, 3), (6, 4)]
        with pytest.raises(queue.Empty):
            sub.get(timeout=0.1)
        with pytest.raises(LiveClientError) as err:
            client.request("nope")
        assert err.value.code == "not_found"
        sub.unsubscribe()
        assert list(sub) == []
    assert not client.connected


def test_the_blocking_client_gives_up_on_an_unreachable_server_when_told():
    with pytest.raises(LiveClientError) as err:
        connect("ws://127.0.0.1:9/ws/live", reconnect=False)
    assert err.value.code == "unavailable"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-m", "realtime_client", *args], capture_output=True, text=True, timeout=120, env=env, cwd=pathlib.Path(__file__).parent)


def test_cli_pub_sub_ping(server):
    out = cli("pub", "--url", server.url, "quotes.cli.BTC-USDT", '{"bid":1,"ask":2}')
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("quotes.cli.BTC-USDT #1 (epoch ")
    out = cli("pub", "--url", server.url, "--json", "quotes.cli.BTC-USDT", '{"bid":2,"ask":3}')
    assert json.loads(out.stdout)["seq"] == 2
    out = cli("sub", "--url", server.url, "quotes.cli.>", "--count", "1", "--json", "--delta", "--filter", "bid >= 2")
    assert out.returncode == 0, out.stderr
    line = json.loads(out.stdout)
    assert (line["type"], line["seq"], line["data"]) == ("snapshot", 2, {"bid": 2, "ask": 3})
    out = cli("sub", "--url", server.url, "quotes.cli.>", "--count", "1")
    assert " quotes.cli.BTC-USDT #2 (snapshot) {\"bid\":2,\"ask\":3}" in out.stdout
    out = cli("ping", "--url", server.url, "--count", "20", "--interval", "0")
    assert out.returncode == 0 and out.stdout.startswith(f"20 probes to {server.url}: p50 ")


def test_cli_exit_codes(server):
    refused = cli("pub", "--url", server.url, "quotes.>", "{}")
    assert refused.returncode == 1 and "bad_request" in refused.stderr
    bad_filter = cli("sub", "--url", server.url, "x.>", "--filter", "a >=")
    assert bad_filter.returncode == 1 and 'found "the end" at position 4' in bad_filter.stderr
    unreachable = cli("ping", "--url", "ws://127.0.0.1:9/ws/live")
    assert unreachable.returncode == 1 and "cannot reach" in unreachable.stderr
    assert cli("pub", "--url", server.url, "t.x", "not json").returncode == 2
    assert cli("bogus").returncode == 2
