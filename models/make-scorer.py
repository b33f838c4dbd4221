#!/usr/bin/python3
"""Writes the reference opportunity scorer as an ONNX model folder, and its Python reference outputs.

The scorer is a logistic model of the odds that an opportunity is still executable when an order
lands: sigmoid(bias + w . [netBps, maxTickAgeMs, log(1 + size * buy.price), volatilityBps]).
The graph takes the five raw fields (the card's "features") and does the log and the product
itself, so the server passes event fields through unchanged.

Uses Debian's python3-onnx and python3-numpy only:
  /usr/bin/python3 models/make-scorer.py                       # models/scorer/1/
  /usr/bin/python3 models/make-scorer.py --out DIR --bias -2   # a variant, e.g. for a test
The reference outputs (reference.json) are computed with numpy in float64 from the recorded
opportunities in test/fixtures/models/opportunities.json: the server's scores must equal them
within 1e-5 (test/models.test.ts).
"""
import argparse
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FEATURES = ["netBps", "maxTickAgeMs", "size", "buy.price", "volatilityBps"]
HERE = os.path.dirname(os.path.abspath(__file__))
RECORDED = os.path.join(HERE, "..", "test", "fixtures", "models", "opportunities.json")


def build(weights):
    """The ONNX graph: features [N, 5] float32 -> score [N, 1] float32."""
    w = np.array([[weights["netBps"]], [weights["ageMs"]], [weights["logSize"]], [weights["volatilityBps"]]], dtype=np.float32)
    inits = [
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(np.array([weights["bias"]], dtype=np.float32), "bias"),
        numpy_helper.from_array(np.array([1.0], dtype=np.float32), "one"),
    ]
    nodes = [
        helper.make_node("Split", ["features"], ["net", "age", "size", "price", "vol"], axis=1),
        helper.make_node("Mul", ["size", "price"], ["notional"]),
        helper.make_node("Add", ["notional", "one"], ["notional1"]),
        helper.make_node("Log", ["notional1"], ["logSize"]),
        helper.make_node("Concat", ["net", "age", "logSize", "vol"], ["x"], axis=1),
        helper.make_node("MatMul", ["x", "w"], ["wx"]),
        helper.make_node("Add", ["wx", "bias"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["score"]),
    ]
    graph = helper.make_graph(
        nodes,
        "opportunity-scorer",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", len(FEATURES)])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 1])],
        inits,
    )
    model = helper.make_model(graph, producer_name="realtime make-scorer.py", opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7  # readable by every onnxruntime since 1.6
    onnx.checker.check_model(model)
    return model


def field(data, path):
    for key in path.split("."):
        data = data[key]
    return float(data)


def reference(weights, opportunities):
    """The same model in float64 numpy: what the server's scores must equal."""
    x = np.array([[field(o, f) for f in FEATURES] for o in opportunities], dtype=np.float64)
    z = (
        weights["bias"]
        + weights["netBps"] * x[:, 0]
        + weights["ageMs"] * x[:, 1]
        + weights["logSize"] * np.log1p(x[:, 2] * x[:, 3])
        + weights["volatilityBps"] * x[:, 4]
    )
    return (1.0 / (1.0 + np.exp(-z))).tolist()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(HERE, "scorer", "1"), help="version folder to write")
    parser.add_argument("--version", default="1", help="version named in the card's description")
    for name, default in [("bias", -1.0), ("netBps", 0.12), ("ageMs", -0.004), ("logSize", 0.15), ("volatilityBps", -0.08)]:
        parser.add_argument(f"--{name}", type=float, default=default)
    args = parser.parse_args()
    weights = {k: getattr(args, k) for k in ["bias", "netBps", "ageMs", "logSize", "volatilityBps"]}

    os.makedirs(args.out, exist_ok=True)
    onnx.save(build(weights), os.path.join(args.out, "model.onnx"))
    card = {
        "description": "Logistic odds that an opportunity is still executable when an order lands: "
        "net spread in bps, age of the older quote in ms, log(1 + size in quote currency), recent volatility of the symbol's mid in bps per tick.",
        "topics": "opportunities.>",
        "features": FEATURES,
        "output": "score",
        "weights": weights,
    }
    with open(os.path.join(args.out, "model.json"), "w") as f:
        json.dump(card, f, indent=2)
        f.write("\n")
    if not os.path.exists(RECORDED):  # an installed package ships no tests: no reference outputs then
        return
    with open(RECORDED) as f:
        opportunities = json.load(f)
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump({"source": "test/fixtures/models/opportunities.json", "scores": reference(weights, opportunities)}, f)
        f.write("\n")


if __name__ == "__main__":
    main()
