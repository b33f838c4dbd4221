"""realtime_client.models: the KServe v2 server around a Python function, over real HTTP."""

from __future__ import annotations

import http.client
import json
import threading
from typing import Any, Iterator

import pytest

from realtime_client.models import ModelServer, make_server


@pytest.fixture
def server() -> Iterator[ModelServer]:
    def weighted(rows: list[list[float]]) -> list[float]:
        if rows and rows[0][0] == -1:
            raise ValueError("the model refuses -1")
        return [2 * a + b for a, b in rows]

    s = make_server(weighted, name="fill", inputs=["netBps", "size"], version="3", port=0)
    thread = threading.Thread(target=s.serve_forever, daemon=True)
    thread.start()
    yield s
    s.shutdown()
    s.server_close()


def call(server: ModelServer, method: str, path: str, body: Any = None, raw: bytes | None = None, conn: http.client.HTTPConnection | None = None) -> tuple[int, Any]:
    c = conn or http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    c.request(method, path, body=data, headers={"content-type": "application/json"})
    res = c.getresponse()
    payload = json.loads(res.read() or b"{}")
    if conn is None:
        c.close()
    return res.status, payload


def infer_body(rows: list[list[float]], datatype: str = "FP32") -> dict[str, Any]:
    return {"inputs": [{"name": "features", "shape": [len(rows), len(rows[0])], "datatype": datatype, "data": [v for r in rows for v in r]}]}


def test_health_readiness_and_metadata(server: ModelServer) -> None:
    assert call(server, "GET", "/v2/health/live") == (200, {"live": True})
    assert call(server, "GET", "/v2/health/ready") == (200, {"ready": True})
    assert call(server, "GET", "/v2/models/fill/ready") == (200, {"name": "fill", "ready": True})
    assert call(server, "GET", "/v2/models/fill/versions/3/ready")[0] == 200
    assert call(server, "GET", "/v2/models/fill/versions/2/ready")[0] == 404
    assert call(server, "GET", "/v2/models/other/ready")[0] == 404
    status, meta = call(server, "GET", "/v2/models/fill")
    assert status == 200
    assert meta["inputs"] == [{"name": "features", "datatype": "FP64", "shape": [-1, 2], "parameters": {"features": ["netBps", "size"]}}]
    assert meta["outputs"] == [{"name": "output", "datatype": "FP64", "shape": [-1, 1]}]


def test_infer_answers_one_output_per_row_over_one_kept_alive_connection(server: ModelServer) -> None:
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    for path in ("/v2/models/fill/infer", "/v2/models/fill/versions/3/infer"):
        status, reply = call(server, "POST", path, infer_body([[1, 2], [3.5, -1]]), conn=conn)
        assert status == 200
        assert reply["model_name"] == "fill" and reply["model_version"] == "3"
        assert reply["outputs"] == [{"name": "output", "datatype": "FP64", "shape": [2, 1], "data": [4.0, 6.0]}]
    nested = {"inputs": [{"name": "features", "shape": [1, 2], "datatype": "FP64", "data": [[10, 1]]}], "id": "r1"}
    assert call(server, "POST", "/v2/models/fill/infer", nested, conn=conn) == (
        200,
        {"model_name": "fill", "model_version": "3", "id": "r1", "outputs": [{"name": "output", "datatype": "FP64", "shape": [1, 1], "data": [21.0]}]},
    )
    conn.close()


@pytest.mark.parametrize(
    "body, message",
    [
        ({"inputs": "x"}, 'the body must be {"inputs": [...]}'),
        ({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}, 'no input named "features"'),
        ({"inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}, 'input "features": shape must be [N, 2]'),
        ({"inputs": [{"name": "features", "shape": [2, 2], "datatype": "FP32", "data": [1, 2]}]}, 'input "features": 2 numbers where the shape says 4'),
        ({"inputs": [{"name": "features", "shape": [1, 2], "datatype": "BYTES", "data": ["a", "b"]}]}, 'input "features": datatype must be one of FP32, FP64'),
        ({"inputs": [{"name": "features", "shape": [1, 2], "datatype": "FP32", "data": [1, "NaN"]}]}, "data must hold finite numbers only"),
    ],
)
def test_bad_requests_answer_400_naming_what_is_wrong(server: ModelServer, body: Any, message: str) -> None:
    assert call(server, "POST", "/v2/models/fill/infer", body) == (400, {"error": message})


def test_not_json_too_large_unknown_model_and_a_failing_function(server: ModelServer) -> None:
    assert call(server, "POST", "/v2/models/fill/infer", raw=b"{not json")[0] == 400
    assert call(server, "POST", "/v2/models/fill/infer", raw=b"[" * 100_000)[0] == 400, "nesting deeper than the parser goes"
    assert call(server, "POST", "/v2/models/fill/infer", raw=b" " * (server.max_body + 1)) == (413, {"error": f"body over {server.max_body} bytes"})
    assert call(server, "POST", "/v2/models/nope/infer", infer_body([[1, 2]]))[0] == 404
    assert call(server, "POST", "/v2/models/fill/infer", infer_body([[-1, 2]])) == (500, {"error": "ValueError: the model refuses -1"})


def test_bad_arguments_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="name"):
        make_server(lambda rows: [0.0], name="no spaces", inputs=["a"], port=0)
    with pytest.raises(ValueError, match="inputs"):
        make_server(lambda rows: [0.0], name="m", inputs=[], port=0)
