#!/usr/bin/env python3
"""Writes the small quantised ONNX models under workloads/onnx/ that the
compiler's ONNX importer is tested on (and two it must refuse). Needs the
`onnx` package (pip install onnx) and numpy. Run from the repository root:
python3 tools/make_onnx.py

* qdq-cnn.onnx: QDQ format (QuantizeLinear/DequantizeLinear around float ops):
  Conv+Relu, MaxPool, Conv (depthwise) + Clip(0, 6), Conv 1x1, Add, Concat,
  AveragePool, GlobalAveragePool, Flatten, Gemm; int8 activations.
* qlinear.onnx: QLinearConv and QLinearMatMul with uint8 activations,
  Reshape, MaxPool.
* matmul2.onnx: matmuls of two activations (uint8, zero point 128 = int8 0):
  QLinearMatMul of two activations, and a QDQ MatMul of two dequantized
  activations + Relu.
* float-cnn.onnx: a float Conv/Relu/Gemm model (no quantisation): refused.
* unsupported-op.onnx: a QDQ model with a Sigmoid: refused.
* per-channel.onnx: per-output-channel weight scales: a QLinearConv with a
  per-axis weight scale and a QDQ Conv whose weights and bias are
  dequantized per axis (axis 0), then Relu.
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join("workloads", "onnx")
rng = np.random.default_rng(7)


def init(name, arr):
    return numpy_helper.from_array(arr, name)


def scalar(name, v, dtype):
    return init(name, np.array(v, dtype=dtype))


class G:
    def __init__(self):
        self.nodes, self.inits = [], []
        self.n = 0

    def q(self, x, scale, zp, out=None, dtype=np.int8):
        self.n += 1
        out = out or f"{x}_q{self.n}"
        self.inits += [scalar(f"{out}_s", scale, np.float32), scalar(f"{out}_z", zp, dtype)]
        self.nodes.append(helper.make_node("QuantizeLinear", [x, f"{out}_s", f"{out}_z"], [out], name=f"Q_{out}"))
        return out

    def dq(self, x, scale, zp, out=None, dtype=np.int8):
        self.n += 1
        out = out or f"{x}_dq{self.n}"
        self.inits += [scalar(f"{out}_s", scale, np.float32), scalar(f"{out}_z", zp, dtype)]
        self.nodes.append(helper.make_node("DequantizeLinear", [x, f"{out}_s", f"{out}_z"], [out], name=f"DQ_{out}"))
        return out

    def weight(self, name, shape, scale):
        w = rng.integers(-40, 41, size=shape).astype(np.int8)
        self.inits.append(init(name + "_int8", w))
        return self.dq(name + "_int8", scale, 0, out=name)

    def bias(self, name, n, scale):
        b = rng.integers(-2000, 2001, size=n).astype(np.int32)
        self.inits.append(init(name + "_int32", b))
        self.inits += [scalar(name + "_s", scale, np.float32), scalar(name + "_z", 0, np.int32)]
        self.nodes.append(helper.make_node("DequantizeLinear", [name + "_int32", name + "_s", name + "_z"], [name], name="DQ_" + name))
        return name

    def node(self, op, ins, out, **attrs):
        self.nodes.append(helper.make_node(op, ins, [out], name=out, **attrs))
        return out


def qdq_conv(g, name, x, x_scale, cin, cout, k, out_scale, out_zp, stride=1, pad=None, group=1, act=None):
    if pad is None:
        pad = k // 2
    ws = 0.004
    w = g.weight(name + "_w", (cout, cin // group, k, k), ws)
    b = g.bias(name + "_b", cout, x_scale * ws)
    y = g.node("Conv", [x, w, b], name, kernel_shape=[k, k], strides=[stride, stride],
               pads=[pad, pad, pad, pad], group=group)
    if act == "relu":
        y = g.node("Relu", [y], name + "_relu")
    elif act == "relu6":
        g.inits += [scalar(name + "_lo", 0.0, np.float32), scalar(name + "_hi", 6.0, np.float32)]
        y = g.node("Clip", [y, name + "_lo", name + "_hi"], name + "_clip")
    yq = g.q(y, out_scale, out_zp, out=name + "_out")
    return yq, g.dq(yq, out_scale, out_zp)


def model(g, name, inputs, outputs, opset=13):
    graph = helper.make_graph(g.nodes, name, inputs, outputs, g.inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="npukit tools/make_onnx.py")
    m.ir_version = 8
    onnx.checker.check_model(m)
    path = os.path.join(OUT, name + ".onnx")
    onnx.save(m, path)
    print(f"wrote {path}: {len(g.nodes)} nodes, {os.path.getsize(path)} bytes")


def qdq_cnn():
    g = G()
    xs = 0.02
    xq = g.q("image", xs, 0)
    x = g.dq(xq, xs, 0)
    a_q, a = qdq_conv(g, "conv1", x, xs, 3, 16, 3, 0.05, -128, act="relu")
    p = g.node("MaxPool", [a], "pool1", kernel_shape=[2, 2], strides=[2, 2])
    pq = g.q(p, 0.05, -128)
    p = g.dq(pq, 0.05, -128)
    d_q, d = qdq_conv(g, "dw", p, 0.05, 16, 16, 3, 6.0 / 255, -128, group=16, act="relu6")
    e_q, e = qdq_conv(g, "pw", d, 6.0 / 255, 16, 16, 1, 0.04, 0)
    s = g.node("Add", [e, p], "add")
    sq = g.q(s, 0.07, -10)
    s = g.dq(sq, 0.07, -10)
    c = g.node("Concat", [s, s], "cat", axis=1)
    cq = g.q(c, 0.07, -10)
    c = g.dq(cq, 0.07, -10)
    ap = g.node("AveragePool", [c], "avg", kernel_shape=[2, 2], strides=[2, 2])
    apq = g.q(ap, 0.05, -5)
    ap = g.dq(apq, 0.05, -5)
    gp = g.node("GlobalAveragePool", [ap], "gap")
    gpq = g.q(gp, 0.03, 0)
    gp = g.dq(gpq, 0.03, 0)
    f = g.node("Flatten", [gp], "flat", axis=1)
    w = g.weight("fc_w", (10, 32), 0.004)
    b = g.bias("fc_b", 10, 0.03 * 0.004)
    y = g.node("Gemm", [f, w, b], "fc", transB=1)
    yq = g.q(y, 0.1, 0, out="logits")
    model(g, "qdq-cnn",
          [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 16, 16])],
          [helper.make_tensor_value_info("logits", TensorProto.INT8, [1, 10])])


def qlinear():
    g = G()
    g.inits += [scalar("x_s", 0.02, np.float32), scalar("x_z", 128, np.uint8)]
    g.nodes.append(helper.make_node("QuantizeLinear", ["image", "x_s", "x_z"], ["xq"], name="Qx"))
    w = rng.integers(-40, 41, size=(8, 3, 3, 3)).astype(np.int8)
    b = rng.integers(-1000, 1001, size=8).astype(np.int32)
    g.inits += [init("w1", w), scalar("w1_s", 0.004, np.float32), scalar("w1_z", 0, np.int8), init("b1", b),
                scalar("y1_s", 0.05, np.float32), scalar("y1_z", 100, np.uint8)]
    g.nodes.append(helper.make_node("QLinearConv", ["xq", "x_s", "x_z", "w1", "w1_s", "w1_z", "y1_s", "y1_z", "b1"],
                                    ["y1"], name="qconv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]))
    g.node("MaxPool", ["y1"], "mp", kernel_shape=[2, 2], strides=[2, 2])
    g.inits.append(init("shape", np.array([1, -1], dtype=np.int64)))
    g.node("Reshape", ["mp", "shape"], "flat")
    wm = rng.integers(-40, 41, size=(8 * 3 * 3, 12)).astype(np.int8)
    g.inits += [init("w2", wm), scalar("w2_s", 0.004, np.float32), scalar("w2_z", 0, np.int8),
                scalar("y2_s", 0.08, np.float32), scalar("y2_z", 3, np.uint8)]
    g.nodes.append(helper.make_node("QLinearMatMul", ["flat", "y1_s", "y1_z", "w2", "w2_s", "w2_z", "y2_s", "y2_z"],
                                    ["out"], name="qmatmul"))
    model(g, "qlinear",
          [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 12, 12])],
          [helper.make_tensor_value_info("out", TensorProto.UINT8, [1, 12])])


def float_cnn():
    g = G()
    g.inits += [init("w", rng.standard_normal((4, 3, 3, 3)).astype(np.float32)),
                init("b", np.zeros(4, dtype=np.float32))]
    g.node("Conv", ["image", "w", "b"], "conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    g.node("Relu", ["conv"], "relu")
    model(g, "float-cnn",
          [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
          [helper.make_tensor_value_info("relu", TensorProto.FLOAT, [1, 4, 8, 8])])


def unsupported():
    g = G()
    xq = g.q("image", 0.02, 0)
    x = g.dq(xq, 0.02, 0)
    a_q, a = qdq_conv(g, "conv1", x, 0.02, 3, 4, 3, 0.05, 0)
    s = g.node("Sigmoid", [a], "sigmoid")
    g.q(s, 1.0 / 256, -128, out="out")
    model(g, "unsupported-op",
          [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
          [helper.make_tensor_value_info("out", TensorProto.INT8, [1, 4, 8, 8])])


def matmul2():
    g = G()
    u8 = np.uint8
    g.inits += [scalar("x_s", 0.05, np.float32), scalar("x_z", 128, u8)]
    g.nodes.append(helper.make_node("QuantizeLinear", ["x", "x_s", "x_z"], ["xq"], name="Qx"))
    w = rng.integers(-40, 41, size=(32, 16)).astype(np.int8)
    g.inits += [init("w1", w), scalar("w1_s", 0.004, np.float32), scalar("w1_z", 0, np.int8),
                scalar("a_s", 0.043, np.float32), scalar("a_z", 128, u8)]
    # A constant-weight QLinearMatMul, then one whose second operand is an activation.
    g.nodes.append(helper.make_node("QLinearMatMul", ["xq", "x_s", "x_z", "w1", "w1_s", "w1_z", "a_s", "a_z"],
                                    ["a"], name="proj"))
    g.inits += [scalar("b_s", 0.64, np.float32), scalar("b_z", 128, u8)]
    g.nodes.append(helper.make_node("QLinearMatMul", ["a", "a_s", "a_z", "xq", "x_s", "x_z", "b_s", "b_z"],
                                    ["b"], name="a_times_x"))
    # QDQ form: MatMul of two dequantized activations, Relu, QuantizeLinear.
    a = g.dq("a", 0.043, 128, dtype=u8)
    b = g.dq("b", 0.64, 128, dtype=u8)
    y = g.node("MatMul", [a, b], "a_times_b")
    y = g.node("Relu", [y], "relu")
    g.q(y, 2.5, 0, out="out")
    model(g, "matmul2",
          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [16, 32])],
          [helper.make_tensor_value_info("out", TensorProto.INT8, [16, 32]),
           helper.make_tensor_value_info("b", TensorProto.UINT8, [16, 32])])


def per_channel():
    g = G()
    g.inits += [scalar("x_s", 0.02, np.float32), scalar("x_z", -3, np.int8)]
    g.nodes.append(helper.make_node("QuantizeLinear", ["image", "x_s", "x_z"], ["xq"], name="Qx"))
    # QLinearConv 3 -> 8, 3x3, per-axis weight scale (one per output channel).
    w = rng.integers(-60, 61, size=(8, 3, 3, 3)).astype(np.int8)
    ws = np.linspace(0.001, 0.009, 8).astype(np.float32)
    b = rng.integers(-1000, 1001, size=8).astype(np.int32)
    g.inits += [init("w1", w), init("w1_s", ws), init("w1_z", np.zeros(8, dtype=np.int8)), init("b1", b),
                scalar("y1_s", 0.05, np.float32), scalar("y1_z", 5, np.int8)]
    g.nodes.append(helper.make_node("QLinearConv", ["xq", "x_s", "x_z", "w1", "w1_s", "w1_z", "y1_s", "y1_z", "b1"],
                                    ["y1"], name="qconv_pc", kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
    # QDQ Conv 8 -> 20, 3x3 stride 2, weights and bias dequantized per axis.
    x = g.dq("y1", 0.05, 5, dtype=np.int8)
    w2 = rng.integers(-60, 61, size=(20, 8, 3, 3)).astype(np.int8)
    ws2 = (0.0015 * (1.0 + rng.random(20) * 4.0)).astype(np.float32)
    b2 = rng.integers(-2000, 2001, size=20).astype(np.int32)
    g.inits += [init("w2_int8", w2), init("w2_s", ws2), init("w2_z", np.zeros(20, dtype=np.int8)),
                init("b2_int32", b2), init("b2_s", (ws2 * np.float32(0.05)).astype(np.float32)),
                init("b2_z", np.zeros(20, dtype=np.int32))]
    g.nodes.append(helper.make_node("DequantizeLinear", ["w2_int8", "w2_s", "w2_z"], ["w2"], name="DQ_w2", axis=0))
    g.nodes.append(helper.make_node("DequantizeLinear", ["b2_int32", "b2_s", "b2_z"], ["b2"], name="DQ_b2", axis=0))
    y = g.node("Conv", [x, "w2", "b2"], "conv_pc", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    y = g.node("Relu", [y], "conv_pc_relu")
    g.q(y, 0.04, -10, out="out")
    model(g, "per-channel",
          [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 10, 10])],
          [helper.make_tensor_value_info("out", TensorProto.INT8, [1, 20, 5, 5])])


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    qdq_cnn()
    qlinear()
    float_cnn()
    unsupported()
    matmul2()
    per_channel()
