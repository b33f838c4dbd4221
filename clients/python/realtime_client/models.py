"""A KServe v2 inference server around a Python function, standard library only.

A desk that trained a model in Python serves it to the realtime server in a few lines::

    from realtime_client.models import serve

    clf = joblib.load("fill.joblib")                      # scikit-learn, xgboost, anything
    serve(lambda rows: clf.predict_proba(rows)[:, 1],     # rows: a list of feature rows
          name="fill", inputs=["netBps", "maxTickAgeMs", "size"], port=8080)

and drops a card with ``"url": "http://127.0.0.1:8080"`` in the server's MODELS folder (README
"AI/ML hooks"). The server speaks the KServe v2 inference protocol's REST side, as Triton,
KServe and MLServer do:

- ``GET /v2/health/live``, ``GET /v2/health/ready``
- ``GET /v2/models/{name}[/versions/{v}]`` (metadata), ``.../ready``
- ``POST /v2/models/{name}[/versions/{v}]/infer`` with one input tensor of shape ``[N, len(inputs)]``
  (FP32 or FP64), answering one FP64 output tensor of shape ``[N, 1]``.

Bad requests answer 400 with ``{"error": ...}`` and nothing the client sends can make the
server hold more than ``max_body`` bytes; a function that raises answers 500.
"""

from __future__ import annotations

import json
import math
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional, Sequence

__all__ = ["ModelServer", "make_server", "serve"]

Rows = list[list[float]]
Predict = Callable[[Rows], Sequence[float]]

_PATH = re.compile(r"^/v2/models/([A-Za-z0-9_.-]{1,128})(?:/versions/([A-Za-z0-9_.-]{1,128}))?(/ready|/infer)?$")
_DATATYPES = ("FP32", "FP64")


class _BadRequest(Exception):
    pass


class ModelServer(ThreadingHTTPServer):
    """The HTTP server; ``url`` is where it listens. ``serve_forever()`` runs it, ``shutdown()`` stops it."""

    daemon_threads = True

    def __init__(self, fn: Predict, name: str, inputs: Sequence[str], version: str, input_name: str, host: str, port: int, max_body: int) -> None:
        if not re.match(r"^[A-Za-z0-9_.-]{1,128}$", name):
            raise ValueError(f"name {name!r}: 1 to 128 letters, digits, '_', '.' or '-'")
        if len(inputs) == 0:
            raise ValueError("inputs: name at least one feature")
        self.fn = fn
        self.model_name = name
        self.features = list(inputs)
        self.version = version
        self.input_name = input_name
        self.max_body = max_body
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.model_name,
            "versions": [self.version],
            "platform": "python",
            "inputs": [{"name": self.input_name, "datatype": "FP64", "shape": [-1, len(self.features)], "parameters": {"features": self.features}}],
            "outputs": [{"name": "output", "datatype": "FP64", "shape": [-1, 1]}],
        }

    def infer(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
            raise _BadRequest('the body must be {"inputs": [...]}')
        tensor = next((i for i in body["inputs"] if isinstance(i, dict) and i.get("name") == self.input_name), None)
        if tensor is None:
            raise _BadRequest(f'no input named "{self.input_name}"')
        width = len(self.features)
        shape = tensor.get("shape")
        if tensor.get("datatype") not in _DATATYPES:
            raise _BadRequest(f'input "{self.input_name}": datatype must be one of {", ".join(_DATATYPES)}')
        if not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(d, int) and not isinstance(d, bool) for d in shape) and shape[0] >= 1 and shape[1] == width):
            raise _BadRequest(f'input "{self.input_name}": shape must be [N, {width}]')
        data = _flatten(tensor.get("data"))
        if len(data) != shape[0] * width:
            raise _BadRequest(f'input "{self.input_name}": {len(data)} numbers where the shape says {shape[0] * width}')
        rows = [data[r * width : (r + 1) * width] for r in range(shape[0])]
        out = [float(v) for v in self.fn(rows)]
        if len(out) != len(rows):
            raise RuntimeError(f"the function answered {len(out)} values for {len(rows)} rows")
        reply: dict[str, Any] = {"model_name": self.model_name, "model_version": self.version, "outputs": [{"name": "output", "datatype": "FP64", "shape": [len(out), 1], "data": out}]}
        if isinstance(body.get("id"), str):
            reply["id"] = body["id"]
        return reply


def _flatten(data: Any) -> list[float]:
    """KServe v2 JSON data: flat in row-major order, or nested by shape."""
    out: list[float] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, (int, float)) and not isinstance(item, bool) and math.isfinite(item):
            out.append(float(item))
        else:
            raise _BadRequest("data must hold finite numbers only")
    return out


class _Handler(BaseHTTPRequestHandler):
    server: ModelServer
    # Keep-alive: the realtime server sends every call over the connections it keeps open.
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes: with Nagle's algorithm the body would wait for the
    # client's delayed ACK of the headers, 40 ms on Linux, on every call.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # one line per request would drown a model's own logs

    def _send(self, status: int, body: Optional[dict[str, Any]]) -> None:
        raw = json.dumps(body if body is not None else {}).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        s = self.server
        if self.path in ("/v2/health/live", "/v2/health/ready"):
            return self._send(200, {"live": True} if self.path.endswith("live") else {"ready": True})
        if self.path == "/v2":
            return self._send(200, {"name": "realtime_client.models", "version": "2", "extensions": []})
        m = _PATH.match(self.path)
        if m is None or m.group(1) != s.model_name or m.group(2) not in (None, s.version) or m.group(3) == "/infer":
            return self._send(404, {"error": f"no model at {self.path}"})
        if m.group(3) == "/ready":
            return self._send(200, {"name": s.model_name, "ready": True})
        return self._send(200, s.metadata())

    def do_POST(self) -> None:  # noqa: N802
        s = self.server
        m = _PATH.match(self.path)
        if m is None or m.group(3) != "/infer" or m.group(1) != s.model_name or m.group(2) not in (None, s.version):
            self._discard()
            return self._send(404, {"error": f"no model at {self.path}"})
        length = self.headers.get("content-length")
        if length is None or not length.isdigit():
            self.close_connection = True
            return self._send(411, {"error": "a content-length is required"})
        if int(length) > s.max_body:
            self._discard()
            return self._send(413, {"error": f"body over {s.max_body} bytes"})
        try:
            body = json.loads(self.rfile.read(int(length)))
        except (ValueError, RecursionError) as err:  # RecursionError: nesting deeper than the parser goes
            return self._send(400, {"error": f"not JSON: {err}"})
        try:
            return self._send(200, s.infer(body))
        except _BadRequest as err:
            return self._send(400, {"error": str(err)})
        except Exception as err:  # the model's own failure: the caller's breaker counts it
            return self._send(500, {"error": f"{type(err).__name__}: {err}"})

    def _discard(self) -> None:
        """Reads a body it will not use, a chunk at a time, so the client gets its answer instead of
        a reset; one over 16 times the largest body it would take is not read, and the connection closes."""
        length = self.headers.get("content-length")
        left = int(length) if length is not None and length.isdigit() else -1
        if left < 0 or left > 16 * self.server.max_body:
            self.close_connection = True
            return
        while left > 0:
            chunk = self.rfile.read(min(left, 65536))
            if not chunk:
                break
            left -= len(chunk)


def make_server(fn: Predict, *, name: str, inputs: Sequence[str], version: str = "1", input_name: str = "features", host: str = "127.0.0.1", port: int = 8080, max_body: int = 1 << 20) -> ModelServer:
    """The server, bound but not yet serving (port 0: any free port, read it from ``.url``)."""
    return ModelServer(fn, name, inputs, version, input_name, host, port, max_body)


def serve(fn: Predict, *, name: str, inputs: Sequence[str], version: str = "1", input_name: str = "features", host: str = "127.0.0.1", port: int = 8080, max_body: int = 1 << 20) -> None:
    """Serves ``fn`` until interrupted. ``fn`` takes a list of rows (one list of floats per event,
    in the order of ``inputs``) and returns one number per row. Prints the URL it listens on."""
    server = make_server(fn, name=name, inputs=inputs, version=version, input_name=input_name, host=host, port=port, max_body=max_body)
    print(f"serving model {name} version {version} (KServe v2) at {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":  # python3 -m realtime_client.models: a demo model (the mean of the features)
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    serve(lambda rows: [sum(r) / len(r) for r in rows], name="mean", inputs=["a", "b"], port=port)
