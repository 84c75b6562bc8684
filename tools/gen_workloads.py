#!/usr/bin/env python3
"""Writes the graph workloads under workloads/ (cnn-28, resnet18, mobilenetv2,
transformer-block): network structure and quantisation parameters only; every
weight, bias and input is a seeded random tensor that the compiler generates at
load time, so the files stay a few kilobytes instead of megabytes.

Scales are chosen so activations spread over the int8 range: a layer whose
input deviates by about SIGMA_X steps from its zero point and whose weights are
uniform in [-R, R] accumulates about sqrt(window) * SIGMA_X * R / sqrt(3)
steps of `input scale * weight scale`; the output scale maps that to about
SIGMA_Y output steps. Run from the repository root: python3 tools/gen_workloads.py
"""
import json
import math
import os

SIGMA_X = 60.0
SIGMA_Y = 45.0
W_RANGE = 40
W_SCALE = 0.004
RELU6_MAX_SCALE = 6.0 / 255.0


class Net:
    def __init__(self, name, description, shape, in_scale=0.02, in_zp=0):
        self.name = name
        self.description = description
        self.nodes = []
        self.seed = 100
        self.scales = {"x": (in_scale, in_zp)}
        self.shape = {"x": list(shape)}
        self.relu_out = {}
        self.input = {
            "name": "x",
            "shape": list(shape),
            "quant": {"scale": in_scale, "zero_point": in_zp},
            "data": {"random": {"seed": 1}},
        }

    def next_seed(self):
        self.seed += 10
        return self.seed

    def conv(self, name, inp, cout, k, stride=1, pad=None, groups=1, act="relu"):
        n, h, w, cin = self.shape[inp]
        if pad is None:
            pad = k // 2
        window = k * k * cin // groups
        sx, _ = self.scales[inp]
        acc_std = math.sqrt(window) * SIGMA_X * W_RANGE / math.sqrt(3)
        sy = sx * W_SCALE * acc_std / SIGMA_Y
        zp = -128 if act != "none" else 0
        if act == "relu6":
            sy = min(sy, RELU6_MAX_SCALE)
        seed = self.next_seed()
        b = int(acc_std / 4)
        self.nodes.append({
            "op": "conv2d", "name": name, "input": inp, "out_channels": cout,
            "kernel": k, "stride": stride, "padding": pad, "groups": groups,
            "weights": {"random": {"seed": seed, "range": [-W_RANGE, W_RANGE]}},
            "weight_quant": {"scale": W_SCALE},
            "bias": {"random": {"seed": seed + 1, "range": [-b, b]}},
            "output": {"scale": round(sy, 9), "zero_point": zp},
            "activation": act,
        })
        oh = (h + 2 * pad - k) // stride + 1
        ow = (w + 2 * pad - k) // stride + 1
        self.shape[name] = [n, oh, ow, cout]
        self.scales[name] = (sy, zp)
        return name

    def add(self, name, a, b, act="relu"):
        sa, sb = self.scales[a][0], self.scales[b][0]
        sy = (sa + sb) * 0.9
        zp = -128 if act != "none" else 0
        self.nodes.append({
            "op": "add", "name": name, "inputs": [a, b],
            "output": {"scale": round(sy, 9), "zero_point": zp}, "activation": act,
        })
        self.shape[name] = self.shape[a]
        self.scales[name] = (sy, zp)
        return name

    def maxpool(self, name, inp, k, stride, pad):
        n, h, w, c = self.shape[inp]
        self.nodes.append({"op": "maxpool", "name": name, "input": inp,
                           "kernel": k, "stride": stride, "padding": pad})
        self.shape[name] = [n, (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1, c]
        self.scales[name] = self.scales[inp]
        return name

    def gap(self, name, inp):
        n, h, w, c = self.shape[inp]
        s, zp = self.scales[inp]
        self.nodes.append({"op": "global_avgpool", "name": name, "input": inp,
                           "output": {"scale": round(s / 2, 9), "zero_point": -128}})
        self.shape[name] = [n, 1, 1, c]
        self.scales[name] = (s / 2, -128)
        return name

    def flatten(self, name, inp):
        n, h, w, c = self.shape[inp]
        self.nodes.append({"op": "flatten", "name": name, "input": inp})
        self.shape[name] = [n, 1, 1, h * w * c]
        self.scales[name] = self.scales[inp]
        return name

    def dense(self, name, inp, nout, relu=False, int32=False):
        n, _, _, k = self.shape[inp]
        sx, _ = self.scales[inp]
        acc_std = math.sqrt(k) * SIGMA_X * W_RANGE / math.sqrt(3)
        sy = sx * W_SCALE * acc_std / SIGMA_Y
        seed = self.next_seed()
        b = int(acc_std / 4)
        node = {
            "op": "dense", "name": name, "input": inp, "out_features": nout,
            "weights": {"random": {"seed": seed, "range": [-W_RANGE, W_RANGE]}},
            "weight_quant": {"scale": W_SCALE},
            "bias": {"random": {"seed": seed + 1, "range": [-b, b]}},
        }
        zp = -128 if relu else 0
        if int32:
            node["output"] = {"dtype": "int32"}
        else:
            node["output"] = {"scale": round(sy, 9), "zero_point": zp}
        if relu:
            node["activation"] = "relu"
        self.nodes.append(node)
        self.shape[name] = [n, 1, 1, nout]
        self.scales[name] = (sy, zp)
        return name

    def matmul(self, name, a, b, heads, transpose_b=False, relu=False):
        """A matmul of two tensors (zero points 0), per head."""
        n, _, _, ca = self.shape[a]
        nb, _, _, cb = self.shape[b]
        k = ca // heads
        cols = nb * heads if transpose_b else cb
        # Inputs spread about SIGMA_Y steps (a ReLU output: its rms, SIGMA_Y / sqrt(2)).
        rms = [SIGMA_Y / math.sqrt(2) if self.relu_out.get(t) else SIGMA_Y for t in (a, b)]
        acc_std = math.sqrt(k) * rms[0] * rms[1]
        sy = self.scales[a][0] * self.scales[b][0] * acc_std / SIGMA_Y
        node = {"op": "matmul", "name": name, "inputs": [a, b], "heads": heads}
        if transpose_b:
            node["transpose_b"] = True
        node["output"] = {"scale": round(sy, 12), "zero_point": 0}
        if relu:
            node["activation"] = "relu"
        self.nodes.append(node)
        self.shape[name] = [n, 1, 1, cols]
        self.scales[name] = (sy, 0)
        self.relu_out[name] = relu
        return name

    def write(self, outputs):
        doc = {"name": self.name, "description": self.description,
               "input": self.input, "nodes": self.nodes, "outputs": outputs}
        path = os.path.join("workloads", self.name + ".json")
        with open(path, "w") as f:
            f.write(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {path}: {len(self.nodes)} nodes")


def cnn28():
    net = Net("cnn-28", "A small CNN for 28x28 single-channel images (MNIST-sized): "
              "conv 3x3x8, maxpool, conv 3x3x16, maxpool, dense 784 -> 10. Seeded random weights.",
              [1, 28, 28, 1])
    x = net.conv("conv1", "x", 8, 3)
    x = net.maxpool("pool1", x, 2, 2, 0)
    x = net.conv("conv2", x, 16, 3)
    x = net.maxpool("pool2", x, 2, 2, 0)
    x = net.flatten("flat", x)
    x = net.dense("fc", x, 10)
    net.write([x])


def resnet18():
    net = Net("resnet18", "ResNet-18 at ImageNet shapes (224x224x3 input, 1000 classes): "
              "conv 7x7/2, maxpool 3x3/2, four stages of two basic blocks (64, 128, 256, 512 "
              "channels, 1x1/2 downsampling shortcuts), global average pooling, dense. "
              "Seeded random weights.", [1, 224, 224, 3])
    x = net.conv("conv1", "x", 64, 7, stride=2, pad=3)
    x = net.maxpool("maxpool", x, 3, 2, 1)
    cin = 64
    for stage, c in enumerate([64, 128, 256, 512], start=1):
        for blk in range(2):
            stride = 2 if (stage > 1 and blk == 0) else 1
            p = f"layer{stage}.{blk}"
            y = net.conv(p + ".conv1", x, c, 3, stride=stride)
            y = net.conv(p + ".conv2", y, c, 3, act="none")
            short = x
            if stride != 1 or cin != c:
                short = net.conv(p + ".downsample", x, c, 1, stride=stride, pad=0, act="none")
            x = net.add(p + ".add", y, short)
            cin = c
    x = net.gap("avgpool", x)
    x = net.flatten("flatten", x)
    x = net.dense("fc", x, 1000)
    net.write([x])


def mobilenetv2():
    net = Net("mobilenetv2", "MobileNetV2 at ImageNet shapes (224x224x3 input, width 1.0, "
              "1000 classes): conv 3x3/2, 17 inverted-residual blocks (1x1 expand, 3x3 depthwise, "
              "1x1 project, residual add), conv 1x1 1280, global average pooling, dense. ReLU6 "
              "layers use output scales where 6.0 saturates. Seeded random weights.",
              [1, 224, 224, 3])
    x = net.conv("conv0", "x", 32, 3, stride=2, act="relu6")
    cin = 32
    i = 0
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        for j in range(n):
            stride = s if j == 0 else 1
            p = f"block{i}"
            y = x
            hidden = cin * t
            if t != 1:
                y = net.conv(p + ".expand", y, hidden, 1, pad=0, act="relu6")
            y = net.conv(p + ".dw", y, hidden, 3, stride=stride, groups=hidden, act="relu6")
            y = net.conv(p + ".project", y, c, 1, pad=0, act="none")
            if stride == 1 and cin == c:
                y = net.add(p + ".add", x, y, act="none")
            x = y
            cin = c
            i += 1
    x = net.conv("conv_last", x, 1280, 1, pad=0, act="relu6")
    x = net.gap("avgpool", x)
    x = net.flatten("flatten", x)
    x = net.dense("fc", x, 1000)
    net.write([x])


def transformer_block(name="transformer-block", seq=128, hidden=768, heads=12, ffn=3072):
    d = hidden // heads
    net = Net(name, f"The matmuls of a transformer encoder block (sequence {seq}, hidden {hidden}, "
              f"{heads} heads of {d}, FFN {hidden} -> {ffn} -> {hidden}): Q, K, V projections, per "
              "head scores Q K^T and context P V, output projection, residual add, FFN with ReLU "
              "(for GELU), residual add. Softmax and LayerNorm are not NPU operations: P is "
              "ReLU(requantised Q K^T / sqrt(d)), and there is no LayerNorm. Activations between "
              "matmuls have zero point 0 (a matmul of two tensors needs it). Seeded random "
              "weights.", [seq, hidden])
    net.shape["x"] = [seq, 1, 1, hidden]
    q = net.dense("q", "x", hidden)
    k = net.dense("k", "x", hidden)
    v = net.dense("v", "x", hidden)
    # 1 / sqrt(d) is folded into the scores' output scale.
    s = net.matmul("scores", q, k, heads, transpose_b=True, relu=True)
    c = net.matmul("context", s, v, heads)
    o = net.dense("attn_out", c, hidden)
    r1 = net.add("residual1", "x", o, act="none")
    f = net.dense("ffn1", r1, ffn, relu=True)
    f = net.dense("ffn2", f, hidden)
    r2 = net.add("residual2", r1, f, act="none")
    net.write([r2])


if __name__ == "__main__":
    cnn28()
    resnet18()
    mobilenetv2()
    transformer_block()
