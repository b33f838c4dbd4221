#!/usr/bin/python3
"""Writes a 32-64-1 MLP (ReLU, sigmoid; fixed random weights) as an ONNX model for bench/models.ts.

  /usr/bin/python3 bench/make-mlp.py OUT.onnx
Debian's python3-onnx and python3-numpy only.
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(29)
w1 = rng.normal(0, 0.2, (32, 64)).astype(np.float32)
b1 = rng.normal(0, 0.1, (64,)).astype(np.float32)
w2 = rng.normal(0, 0.2, (64, 1)).astype(np.float32)
b2 = np.zeros((1,), dtype=np.float32)
graph = helper.make_graph(
    [
        helper.make_node("Gemm", ["features", "w1", "b1"], ["h"]),
        helper.make_node("Relu", ["h"], ["hr"]),
        helper.make_node("Gemm", ["hr", "w2", "b2"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p"]),
    ],
    "mlp-32-64-1",
    [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 32])],
    [helper.make_tensor_value_info("p", TensorProto.FLOAT, ["N", 1])],
    [numpy_helper.from_array(a, n) for a, n in [(w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2")]],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 7
onnx.checker.check_model(model)
onnx.save(model, sys.argv[1])
