#!/usr/bin/python3
"""Per-op cases for pprun's ONNX executor, with expected values from PyTorch.

Usage:  /usr/bin/python3 tests/unit/runtime/onnx_op_cases.py OUTDIR

Writes OUTDIR/<case>/model.onnx (one node, built with onnx.helper, checked by
onnx.checker where onnx 1.12 knows the op) and OUTDIR/<case>/io.pt, a dict:
  in0, in1, ...      the graph inputs, in order
  out0, out1, ...    expected outputs
  cot0, ...          cotangents for a backward from the float outputs
  grad0, ...         expected d(sum_j out_j * cot_j)/d(in_i) for float inputs
                     that have one (absent: not checked)
  training           (0-d bool) run the graph in training mode
  steps              (optional) the number of kernels the executor must plan
  dropout            (optional) ratio of a training-mode Dropout: out0/out1
                     are not compared; out0 = in0 * mask / (1 - ratio) is
  error              (uint8 bytes of a message fragment) loading must fail
                     with an error containing it
Expected values never come from the code under test: they are computed here
from the ONNX spec's definition of each op, in PyTorch (autograd for the
gradients) or numpy, written independently of the C++ kernels (e.g. Slice with
negative steps by index lists, Reshape's 0/-1 by hand, Expand by numpy
broadcasting, pads by explicit loops where the definition is positional).
"""

import math
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

TORCH_TO_ONNX = {torch.float32: TensorProto.FLOAT, torch.int64: TensorProto.INT64, torch.bool: TensorProto.BOOL,
                 torch.int32: TensorProto.INT32, torch.float64: TensorProto.DOUBLE}
CASES = []
G = torch.Generator().manual_seed(1234)


def rnd(*shape):
    return torch.randn(*shape, generator=G)


def case(name, op, inputs, ref, attrs=None, opset=17, nout=1, grad=True, training=False, check=True, error=None,
         out_names=None, input_names=None, grad_inputs=None):
    """grad_inputs: indices (among the fed inputs) to differentiate; default every float one."""
    CASES.append(dict(name=name, op=op, inputs=inputs, ref=ref, attrs=attrs or {}, opset=opset, nout=nout,
                      grad=grad, training=training, check=check, error=error, out_names=out_names,
                      input_names=input_names, grad_inputs=grad_inputs, nodes=None))


def graph_case(name, nodes, inputs, ref, opset=13, steps=None, constants=None, frozen=True):
    """A multi-node graph (inputs in0.., output out0): the patterns the executor fuses.
    steps: the number of kernels the executor must run (after folding Constants and fusing).
    constants: {name: value} scalar float initializers, which the check loads as frozen (not trained,
    as a manifest marks torch 2.x's exporter's scalars) unless frozen is False."""
    case(name, None, inputs, ref, opset=opset)
    CASES[-1]["nodes"] = nodes
    CASES[-1]["steps"] = steps
    CASES[-1]["constants"] = constants or {}
    CASES[-1]["frozen"] = frozen


def build(c, outdir):
    d = os.path.join(outdir, c["name"])
    os.makedirs(d, exist_ok=True)
    in_names = c["input_names"] or ["in%d" % i for i in range(len(c["inputs"]))]
    node_inputs = [n if t is not None else "" for n, t in zip(in_names, c["inputs"])]
    out_names = c["out_names"] or ["out%d" % j for j in range(c["nout"])]
    nodes = c["nodes"] or [helper.make_node(c["op"], node_inputs, out_names, name="/test/" + c["op"], **c["attrs"])]
    ginputs = [helper.make_tensor_value_info(n, TORCH_TO_ONNX[t.dtype], list(t.shape))
               for n, t in zip(in_names, c["inputs"]) if t is not None]
    io = {}
    feeds = [t for t in c["inputs"] if t is not None]
    for i, t in enumerate(feeds):
        io["in%d" % i] = t
    if c["error"] is None:
        gi_ok = c["grad_inputs"]
        leaves = [t.clone().requires_grad_(t.is_floating_point() and c["grad"] and (gi_ok is None or i in gi_ok))
                  for i, t in enumerate(feeds)]
        it = iter(leaves)
        args = [next(it) if t is not None else None for t in c["inputs"]]
        outs = c["ref"](*args)
        if not isinstance(outs, (tuple, list)):
            outs = [outs]
        outs = [o if isinstance(o, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(o)) for o in outs]
        goutputs = [helper.make_tensor_value_info(n, TORCH_TO_ONNX[o.dtype], list(o.shape)) for n, o in zip(out_names, outs)]
        loss = None
        for j, o in enumerate(outs):
            io["out%d" % j] = o.detach().clone()
            if o.is_floating_point() and o.requires_grad:
                cot = torch.randn(o.shape, generator=G)
                io["cot%d" % j] = cot
                loss = (o * cot).sum() if loss is None else loss + (o * cot).sum()
        if loss is not None:
            grads = torch.autograd.grad(loss, [l for l in leaves if l.requires_grad], allow_unused=True)
            gi = iter(grads)
            for i, l in enumerate(leaves):
                if l.requires_grad:
                    g = next(gi)
                    io["grad%d" % i] = g if g is not None else torch.zeros_like(l)
    else:
        goutputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, []) for n in out_names]
        io["error"] = torch.tensor(list(c["error"].encode()), dtype=torch.uint8)
    io["training"] = torch.tensor(c["training"])
    if c.get("dropout") is not None:
        io["dropout"] = torch.tensor(c["dropout"])
    if c.get("steps") is not None:
        io["steps"] = torch.tensor(c["steps"])
    inits = [numpy_helper.from_array(np.array(v, dtype=np.float32), k) for k, v in c.get("constants", {}).items()]
    if inits and c["frozen"]:
        io["frozen"] = torch.tensor(list("\n".join(i.name for i in inits).encode()), dtype=torch.uint8)
    graph = helper.make_graph(nodes, c["name"], ginputs, goutputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", c["opset"])], producer_name="onnx_op_cases")
    model.ir_version = 8
    if c["check"] and c["error"] is None:
        onnx.checker.check_model(model)
    onnx.save(model, os.path.join(d, "model.onnx"))
    torch.save(io, os.path.join(d, "io.pt"))


def i64(*v):
    return torch.tensor(v, dtype=torch.int64)


def s64(v):
    return torch.tensor(v, dtype=torch.int64)


# --- elementwise, broadcasting --------------------------------------------------------------------
a, b = rnd(2, 3, 4), rnd(3, 1)
case("Add_broadcast", "Add", [a, b], lambda x, y: x + y)
case("Sub_broadcast", "Sub", [rnd(4), rnd(2, 3, 4)], lambda x, y: x - y)
case("Mul_broadcast", "Mul", [rnd(2, 1, 4), rnd(3, 1)], lambda x, y: x * y)
case("Div_broadcast", "Div", [rnd(2, 3), rnd(3).abs() + 0.5], lambda x, y: x / y)
case("Div_int_truncates", "Div", [i64(7, -7, 9), i64(2, 2, -4)], lambda x, y: torch.from_numpy(
    np.array([int(p / q) for p, q in zip(x.tolist(), y.tolist())], dtype=np.int64)))
# Mod: fmod=0 takes the divisor's sign (Python's %), fmod=1 the dividend's
# (C's fmod; the only form ONNX allows for floats: SwinTransformer's shifted
# window mask). Expected values from Python's own % and math.fmod.
case("Mod_int", "Mod", [i64(7, -7, 7, -7, 0), i64(3, 3, -3, -3, 5)], lambda x, y: torch.tensor(
    [p % q for p, q in zip(x.tolist(), y.tolist())], dtype=torch.int64))
case("Mod_int_fmod", "Mod", [i64(7, -7, 7, -7, 0), i64(3, 3, -3, -3, 5)], lambda x, y: torch.tensor(
    [int(math.fmod(p, q)) for p, q in zip(x.tolist(), y.tolist())], dtype=torch.int64), attrs={"fmod": 1})
# Float fmod: x - y * trunc(x / y), whose gradients are 1 and -trunc(x / y);
# checked here against math.fmod element by element.
mod_x, mod_y = rnd(3, 4) * 5, rnd(4).abs() + 0.5
mod_want = torch.tensor([[math.fmod(mod_x[i, j].item(), mod_y[j].item()) for j in range(4)] for i in range(3)])
assert torch.allclose(mod_x - mod_y * torch.trunc(mod_x / mod_y), mod_want, atol=1e-5)
case("Mod_float_fmod", "Mod", [mod_x, mod_y], lambda x, y: x - y * torch.trunc(x / y), attrs={"fmod": 1})
case("Pow", "Pow", [rnd(3, 4).abs() + 0.1, rnd(4)], lambda x, y: torch.exp(y * torch.log(x)))
case("Pow_int_exponent", "Pow", [rnd(3, 4), s64(2)], lambda x, y: x * x)
for op, fn, pos in [("Sqrt", torch.sqrt, True), ("Neg", torch.neg, False), ("Exp", torch.exp, False),
                    ("Log", torch.log, True), ("Erf", torch.erf, False), ("Tanh", torch.tanh, False),
                    ("Sigmoid", lambda x: 1 / (1 + torch.exp(-x)), False), ("Relu", lambda x: x.clamp(min=0), False),
                    ("Abs", torch.abs, False), ("Reciprocal", lambda x: 1 / x, True),
                    ("Sin", torch.sin, False), ("Cos", torch.cos, False)]:
    x = rnd(3, 5)
    if pos:
        x = x.abs() + 0.1
    case(op, op, [x], fn)
case("LeakyRelu", "LeakyRelu", [rnd(4, 5)], lambda x: torch.where(x >= 0, x, 0.1 * x), attrs={"alpha": 0.1})
case("LeakyRelu_default", "LeakyRelu", [rnd(4, 5)], lambda x: torch.where(x >= 0, x, 0.01 * x))
case("Gelu", "Gelu", [rnd(4, 5)], lambda x: 0.5 * x * (1 + torch.erf(x / math.sqrt(2))), opset=17, check=False)
case("Gelu_tanh", "Gelu", [rnd(4, 5)],
     lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))),
     attrs={"approximate": "tanh"}, check=False)
case("HardSigmoid", "HardSigmoid", [rnd(4, 5) * 3], lambda x: (0.3 * x + 0.4).clamp(0, 1), attrs={"alpha": 0.3, "beta": 0.4})
case("Clip", "Clip", [rnd(4, 5), torch.tensor(-0.5), torch.tensor(0.7)], lambda x, lo, hi: torch.minimum(torch.maximum(x, lo), hi), grad_inputs=[0])
case("Clip_max_only", "Clip", [rnd(4, 5), None, torch.tensor(0.2)], lambda x, lo, hi: torch.minimum(x, hi), grad_inputs=[0])
case("Clip_opset6", "Clip", [rnd(4, 5)], lambda x: x.clamp(-0.1, 0.3), attrs={"min": -0.1, "max": 0.3}, opset=6)
case("Min_variadic", "Min", [rnd(3, 1), rnd(4), rnd(1, 4)], lambda x, y, z: torch.minimum(torch.minimum(x, y), z))
case("Max_variadic", "Max", [rnd(3, 4), rnd(4)], lambda x, y: torch.maximum(x, y))
case("Sum_variadic", "Sum", [rnd(3, 4), rnd(4), rnd(3, 1)], lambda x, y, z: x + y + z)
# GatherND, by the spec's loops over index tuples (opset 13+; the dynamo
# exporter's advanced indexing), with and without batch_dims, negative indices.
def gather_nd_ref(data, idx, b=0):
    if b > 0:
        return torch.stack([gather_nd_ref(data[i], idx[i], b - 1) for i in range(data.shape[0])])
    k = idx.shape[-1]
    pieces = []
    for t in idx.reshape(-1, k).tolist():
        d = data
        for j in t:
            d = d[j]  # a negative index counts from the end, as in ONNX
        pieces.append(d)
    return torch.stack(pieces).reshape(list(idx.shape[:-1]) + list(data.shape[k:]))


case("GatherND", "GatherND", [rnd(3, 4, 5), torch.tensor([[0, 1], [2, -1], [1, 3]])],
     lambda x, i: gather_nd_ref(x, i), opset=13, grad_inputs=[0])
case("GatherND_full_index", "GatherND", [rnd(3, 4), torch.tensor([[[0, 1]], [[2, 3]]])],
     lambda x, i: gather_nd_ref(x, i), opset=13, grad_inputs=[0])
case("GatherND_batch_dims", "GatherND", [rnd(2, 3, 4), torch.tensor([[[1], [0]], [[2], [2]]])],
     lambda x, i: gather_nd_ref(x, i, 1), attrs={"batch_dims": 1}, opset=13, grad_inputs=[0])
case("CastLike", "CastLike", [rnd(3, 4) * 5, torch.zeros(1, dtype=torch.int64)], lambda x, y: x.to(torch.int64),
     opset=15, grad=False)
case("CastLike_to_float", "CastLike", [torch.tensor([1, -2, 3]), rnd(2)], lambda x, y: x.to(torch.float32),
     opset=15, grad_inputs=[])
# GatherElements by its definition: out[i][j] = data[index[i][j]][j] (axis 0), data[i][index[i][j]] (axis 1).
gi = torch.tensor([[0, 2, -1], [1, 0, 2]])
case("GatherElements_axis0", "GatherElements", [rnd(3, 3), gi],
     lambda x, i: torch.stack([torch.stack([x[int(i[r][c]), c] for c in range(3)]) for r in range(2)]),
     opset=13, grad_inputs=[0])
case("GatherElements_axis1", "GatherElements", [rnd(2, 4), gi], attrs={"axis": 1},
     ref=lambda x, i: torch.stack([torch.stack([x[r, int(i[r][c])] for c in range(3)]) for r in range(2)]),
     opset=13, grad_inputs=[0])
# ScatterND / ScatterElements by the spec's loops: a copy of data, then each
# update combined into its slot in index order (none: replaced; add / mul /
# max: combined). The legacy exporter writes ScatterND for slice assignment
# (SwinTransformer's shifted-window mask), ScatterElements for scatter_.
SCATTER_COMBINE = {"none": lambda old, new: new, "add": lambda old, new: old + new,
                   "mul": lambda old, new: old * new, "max": torch.maximum}


def scatter_nd_ref(data, idx, upd, reduction="none"):
    out = data.clone()
    k = idx.shape[-1]
    ups = upd.reshape([-1] + list(data.shape[k:]))
    for p, t in enumerate(idx.reshape(-1, k).tolist()):
        out[tuple(t)] = SCATTER_COMBINE[reduction](out[tuple(t)].clone(), ups[p])
    return out


def scatter_elements_ref(data, idx, upd, axis, reduction="none"):
    out = data.clone()
    for pos in np.ndindex(*idx.shape):
        target = list(pos)
        target[axis] = int(idx[pos])
        out[tuple(target)] = SCATTER_COMBINE[reduction](out[tuple(target)].clone(), upd[pos])
    return out


case("ScatterND_rows", "ScatterND", [rnd(4, 3), torch.tensor([[1], [-1]]), rnd(2, 3)],
     lambda x, i, u: scatter_nd_ref(x, i, u), opset=13, grad_inputs=[0, 2])
case("ScatterND_elements", "ScatterND", [rnd(2, 3, 2), torch.tensor([[[0, 1, 1]], [[1, 2, 0]]]), rnd(2, 1)],
     lambda x, i, u: scatter_nd_ref(x, i, u), opset=13, grad_inputs=[0, 2])
case("ScatterND_add_repeats", "ScatterND", [rnd(3, 2), torch.tensor([[1], [1], [0]]), rnd(3, 2)],
     lambda x, i, u: scatter_nd_ref(x, i, u, "add"), attrs={"reduction": "add"}, opset=16, grad_inputs=[0, 2])
case("ScatterND_mul", "ScatterND", [rnd(3, 2), torch.tensor([[2], [0]]), rnd(2, 2)],
     lambda x, i, u: scatter_nd_ref(x, i, u, "mul"), attrs={"reduction": "mul"}, opset=16, grad_inputs=[0, 2])
case("ScatterND_max", "ScatterND", [rnd(3, 2), torch.tensor([[2], [0]]), rnd(2, 2)],
     lambda x, i, u: scatter_nd_ref(x, i, u, "max"), attrs={"reduction": "max"}, opset=18, check=False, grad=False)
se_idx = torch.tensor([[1, -1], [0, 2]])
case("ScatterElements_axis1", "ScatterElements", [rnd(2, 4), se_idx, rnd(2, 2)],
     lambda x, i, u: scatter_elements_ref(x, i, u, 1), attrs={"axis": 1}, opset=13, grad_inputs=[0, 2])
case("ScatterElements_add_axis0", "ScatterElements", [rnd(3, 2), torch.tensor([[1, 1], [1, 0]]), rnd(2, 2)],
     lambda x, i, u: scatter_elements_ref(x, i, u, 0, "add"), attrs={"reduction": "add"}, opset=16,
     grad_inputs=[0, 2])
case("IsNaN", "IsNaN", [torch.tensor([1.0, float("nan"), float("inf"), -0.0])], lambda x: torch.isnan(x), opset=13)
case("Where", "Where", [torch.rand(3, 4, generator=G) > 0.5, rnd(4), rnd(3, 1)], lambda c, x, y: torch.where(c, x, y))
case("Equal", "Equal", [i64(1, 2, 3), i64(1, 5, 3)], lambda x, y: x == y)
case("Less", "Less", [rnd(3, 4), rnd(4)], lambda x, y: x < y)
case("Greater", "Greater", [rnd(3, 4), rnd(3, 1)], lambda x, y: x > y)
case("Not", "Not", [torch.tensor([True, False, True])], lambda x: ~x)
case("And", "And", [torch.rand(3, 4, generator=G) > 0.5, torch.rand(4, generator=G) > 0.5], lambda x, y: x & y)

# --- matmul family ---------------------------------------------------------------------------------
case("MatMul_2d", "MatMul", [rnd(3, 4), rnd(4, 5)], lambda x, y: x @ y)
case("MatMul_batched_broadcast", "MatMul", [rnd(2, 1, 3, 4), rnd(5, 4, 6)], lambda x, y: x @ y)
case("MatMul_vec", "MatMul", [rnd(4), rnd(2, 4, 3)], lambda x, y: torch.matmul(x, y))
case("Gemm_transB_bias", "Gemm", [rnd(3, 4), rnd(5, 4), rnd(5)], lambda A, B, C: A @ B.t() + C, attrs={"transB": 1})
case("Gemm_alpha_beta_transA", "Gemm", [rnd(4, 3), rnd(4, 5), rnd(3, 5)], lambda A, B, C: 0.5 * (A.t() @ B) + 2.0 * C,
     attrs={"transA": 1, "alpha": 0.5, "beta": 2.0})
case("Gemm_no_C", "Gemm", [rnd(3, 4), rnd(4, 5)], lambda A, B: A @ B)
case("Einsum", "Einsum", [rnd(2, 3, 4), rnd(2, 4, 5)], lambda x, y: (x.unsqueeze(-1) * y.unsqueeze(1)).sum(2),
     attrs={"equation": "bij, bjk -> bik"})

# --- normalisation, softmax --------------------------------------------------------------------------
case("Softmax_axis1", "Softmax", [rnd(2, 3, 4)], lambda x: torch.exp(x) / torch.exp(x).sum(1, keepdim=True), attrs={"axis": 1})
case("Softmax_default", "Softmax", [rnd(2, 3, 4)], lambda x: torch.exp(x) / torch.exp(x).sum(-1, keepdim=True))
case("Softmax_opset11_coerced", "Softmax", [rnd(2, 3, 4)],
     lambda x: (torch.exp(x.reshape(2, 12)) / torch.exp(x.reshape(2, 12)).sum(1, keepdim=True)).reshape(2, 3, 4), opset=11)
case("LogSoftmax_neg_axis", "LogSoftmax", [rnd(2, 3, 4)], lambda x: x - torch.log(torch.exp(x).sum(-2, keepdim=True)),
     attrs={"axis": -2})


def ln_ref(x, w, b, axis, eps):
    dims = tuple(range(axis, x.dim()))
    m = x.mean(dims, keepdim=True)
    v = ((x - m) ** 2).mean(dims, keepdim=True)
    return (x - m) / torch.sqrt(v + eps) * w + b


case("LayerNormalization", "LayerNormalization", [rnd(2, 3, 4), rnd(4), rnd(4)], lambda x, w, b: ln_ref(x, w, b, 2, 1e-5),
     attrs={"axis": -1})
case("LayerNormalization_axis1", "LayerNormalization", [rnd(2, 3, 4), rnd(3, 4), rnd(3, 4)],
     lambda x, w, b: ln_ref(x, w, b, 1, 1e-3), attrs={"axis": 1, "epsilon": 1e-3})


def bn_eval(x, s, b, m, v, eps=1e-5):
    sh = [1, -1] + [1] * (x.dim() - 2)
    return (x - m.reshape(sh)) / torch.sqrt(v.reshape(sh) + eps) * s.reshape(sh) + b.reshape(sh)


case("BatchNormalization_inference", "BatchNormalization",
     [rnd(2, 3, 4, 4), rnd(3), rnd(3), rnd(3), rnd(3).abs() + 0.5], lambda *a: bn_eval(*a, eps=1e-4),
     attrs={"epsilon": 1e-4}, grad_inputs=[0, 1, 2])
case("BatchNormalization_opset9", "BatchNormalization",
     [rnd(2, 3, 5), rnd(3), rnd(3), rnd(3), rnd(3).abs() + 0.5], bn_eval, opset=9, grad_inputs=[0, 1, 2])


def bn_train(x, s, b, m, v):
    dims = [0] + list(range(2, x.dim()))
    mean = x.mean(dims)
    var = x.var(dims, unbiased=False)
    n = x.numel() / x.shape[1]
    y = bn_eval(x, s, b, mean, var)
    # Running statistics as PyTorch's BatchNorm updates them (momentum 0.1 =
    # ONNX momentum 0.9; unbiased batch variance).
    rm = 0.9 * m.detach() + 0.1 * mean.detach()
    rv = 0.9 * v.detach() + 0.1 * var.detach() * n / (n - 1)
    return y, rm, rv


case("BatchNormalization_training", "BatchNormalization",
     [rnd(4, 3, 2, 2), rnd(3), rnd(3), rnd(3), rnd(3).abs() + 0.5], bn_train,
     attrs={"training_mode": 1, "momentum": 0.9}, nout=3, training=True, opset=15, grad_inputs=[0, 1, 2])

# --- conv / pool ------------------------------------------------------------------------------------
case("Conv_basic", "Conv", [rnd(1, 2, 6, 6), rnd(4, 2, 3, 3), rnd(4)], lambda x, w, b: F.conv2d(x, w, b))
case("Conv_stride_pad_dil_groups", "Conv", [rnd(2, 4, 9, 8), rnd(6, 2, 3, 2), rnd(6)],
     lambda x, w, b: F.conv2d(F.pad(x, (1, 0, 2, 1)), w, b, stride=(2, 1), dilation=(1, 2), groups=2),
     attrs={"strides": [2, 1], "pads": [2, 1, 1, 0], "dilations": [1, 2], "group": 2})
case("Conv_same_upper", "Conv", [rnd(1, 1, 5, 5), rnd(2, 1, 4, 4)], lambda x, w: F.conv2d(F.pad(x, (1, 2, 1, 2)), w),
     attrs={"auto_pad": "SAME_UPPER"})
case("Conv_1d", "Conv", [rnd(2, 3, 10), rnd(4, 3, 3), rnd(4)], lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1),
     attrs={"strides": [2], "pads": [1, 1]})


def conv_transpose_ref(x, w, b, stride, pads, out_pad, dil=1):
    # The definition: scatter each input pixel times the kernel, then crop.
    N, C, H, Wd = x.shape
    _, M, kh, kw = w.shape
    full_h = (H - 1) * stride + (kh - 1) * dil + 1 + out_pad
    full_w = (Wd - 1) * stride + (kw - 1) * dil + 1 + out_pad
    y = torch.zeros(N, M, full_h, full_w)
    for i in range(H):
        for j in range(Wd):
            for p in range(kh):
                for q in range(kw):
                    y[:, :, i * stride + p * dil, j * stride + q * dil] += x[:, :, i, j] @ w[:, :, p, q]
    y = y[:, :, pads[0]:full_h - pads[2], pads[1]:full_w - pads[3]]
    return y + b.reshape(1, -1, 1, 1)


case("ConvTranspose_stride_pad", "ConvTranspose", [rnd(1, 2, 3, 3), rnd(2, 3, 3, 3), rnd(3)],
     lambda x, w, b: conv_transpose_ref(x, w, b, 2, [1, 1, 1, 1], 0), attrs={"strides": [2, 2], "pads": [1, 1, 1, 1]})
case("ConvTranspose_asym_outpad", "ConvTranspose", [rnd(1, 2, 3, 3), rnd(2, 3, 3, 3), rnd(3)],
     lambda x, w, b: conv_transpose_ref(x, w, b, 2, [0, 1, 1, 0], 1),
     attrs={"strides": [2, 2], "pads": [0, 1, 1, 0], "output_padding": [1, 1]})
case("MaxPool", "MaxPool", [rnd(1, 2, 7, 7)], lambda x: F.max_pool2d(x, 3, 2, 1),
     attrs={"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]})
case("MaxPool_asym_ceil", "MaxPool", [rnd(1, 2, 6, 6)],
     lambda x: F.max_pool2d(F.pad(x, (0, 1, 0, 1), value=-math.inf), 2, 2),
     attrs={"kernel_shape": [2, 2], "strides": [2, 2], "pads": [0, 0, 1, 1]})
case("AveragePool_exclude_pad", "AveragePool", [rnd(1, 2, 5, 5)],
     lambda x: F.avg_pool2d(F.pad(x, (1, 1, 1, 1)), 3, 2) / F.avg_pool2d(F.pad(torch.ones(1, 1, 5, 5), (1, 1, 1, 1)), 3, 2),
     attrs={"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]})
case("AveragePool_include_pad", "AveragePool", [rnd(1, 2, 5, 5)],
     lambda x: F.avg_pool2d(F.pad(x, (1, 1, 1, 1)), 3, 2),
     attrs={"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "count_include_pad": 1})
case("GlobalAveragePool", "GlobalAveragePool", [rnd(2, 3, 4, 5)], lambda x: x.mean((2, 3), keepdim=True))

# --- shapes ------------------------------------------------------------------------------------------
case("Flatten_axis2", "Flatten", [rnd(2, 3, 4, 5)], lambda x: x.reshape(6, 20), attrs={"axis": 2})
case("Flatten_neg_axis", "Flatten", [rnd(2, 3, 4)], lambda x: x.reshape(6, 4), attrs={"axis": -1})
case("Reshape_zero_minus1", "Reshape", [rnd(2, 3, 4), i64(0, -1, 2)], lambda x, s: x.reshape(2, 6, 2))
case("Transpose_perm", "Transpose", [rnd(2, 3, 4)], lambda x: x.permute(2, 0, 1), attrs={"perm": [2, 0, 1]})
case("Transpose_default", "Transpose", [rnd(2, 3, 4)], lambda x: x.permute(2, 1, 0))
case("Squeeze_axes", "Squeeze", [rnd(1, 3, 1, 4), i64(-2, 0)], lambda x, a: x.reshape(3, 4))
case("Squeeze_all", "Squeeze", [rnd(1, 3, 1, 4)], lambda x: x.reshape(3, 4))
case("Squeeze_opset11", "Squeeze", [rnd(1, 3, 1, 4)], lambda x: x.reshape(1, 3, 4), attrs={"axes": [2]}, opset=11)
case("Unsqueeze_neg", "Unsqueeze", [rnd(3, 4), i64(0, -1)], lambda x, a: x.reshape(1, 3, 4, 1))
case("Unsqueeze_opset11", "Unsqueeze", [rnd(3, 4)], lambda x: x.reshape(3, 1, 4), attrs={"axes": [1]}, opset=11)
case("Concat_neg_axis", "Concat", [rnd(2, 3), rnd(2, 1), rnd(2, 2)], lambda *xs: torch.cat(xs, 1), attrs={"axis": -1})
case("Concat_int_shapes", "Concat", [i64(2), i64(3, -1), i64(4)], lambda *xs: i64(2, 3, -1, 4), attrs={"axis": 0})
case("Split_sizes", "Split", [rnd(2, 7), i64(3, 4)], lambda x, s: (x[:, :3], x[:, 3:]), attrs={"axis": 1}, nout=2)
case("Split_equal", "Split", [rnd(6, 2)], lambda x: (x[0:2], x[2:4], x[4:6]), nout=3)
case("Split_opset11_attr", "Split", [rnd(5, 2)], lambda x: (x[0:1], x[1:5]), attrs={"split": [1, 4]}, nout=2, opset=11)


def slice_ref(x, starts, ends, axes, steps):
    idx = [slice(None)] * x.dim()
    out = x
    for s, e, a, st in zip(starts, ends, axes, steps):
        n = x.shape[a]
        # ONNX clamping, then an explicit index list (no Python negative steps in torch).
        s = s + n if s < 0 else s
        e = e + n if e < 0 else e
        if st > 0:
            s, e = min(max(s, 0), n), min(max(e, 0), n)
        else:
            s, e = min(max(s, 0), n - 1), min(max(e, -1), n - 1)
        ids = list(range(s, e, st))
        out = out.index_select(a, torch.tensor(ids, dtype=torch.int64))
    return out


case("Slice_neg_steps", "Slice", [rnd(5, 6), i64(-1, 1), i64(-100, 1000), i64(0, 1), i64(-2, 2)],
     lambda x, s, e, a, st: slice_ref(x, [-1, 1], [-100, 1000], [0, 1], [-2, 2]))
case("Slice_axes_default", "Slice", [rnd(4, 5), i64(1, 0), i64(3, -1)], lambda x, s, e: x[1:3, 0:4])
case("Slice_opset9_attrs", "Slice", [rnd(4, 5)], lambda x: x[:, 1:-1], attrs={"starts": [1], "ends": [-1], "axes": [1]}, opset=9)
case("Gather_neg_indices", "Gather", [rnd(5, 3), i64(-1, 0, 2, -1)], lambda x, i: x[[4, 0, 2, 4]])
case("Gather_axis1_2d_idx", "Gather", [rnd(2, 5, 3), torch.tensor([[0, 4], [-2, 1]])],
     lambda x, i: x[:, [[0, 4], [3, 1]], :], attrs={"axis": 1})
case("Gather_scalar", "Gather", [rnd(4, 3), s64(2)], lambda x, i: x[2])
case("Gather_shape_entry", "Gather", [i64(5, 6, 7), s64(-2)], lambda x, i: s64(6))
case("Shape", "Shape", [rnd(2, 3, 4)], lambda x: i64(2, 3, 4))
case("Shape_start_end", "Shape", [rnd(2, 3, 4, 5)], lambda x: i64(3, 4), attrs={"start": 1, "end": -1})
case("Size", "Size", [rnd(2, 3, 4)], lambda x: s64(24))
case("Cast_float_to_int", "Cast", [torch.tensor([1.7, -2.2, 3.0])], lambda x: torch.tensor([1, -2, 3]), attrs={"to": TensorProto.INT64})
case("Cast_bool_to_float", "Cast", [torch.tensor([True, False])], lambda x: torch.tensor([1.0, 0.0]), attrs={"to": TensorProto.FLOAT})
case("Constant_tensor", "Constant", [], lambda: torch.tensor([[1.5, 2.0]]),
     attrs={"value": numpy_helper.from_array(np.array([[1.5, 2.0]], dtype=np.float32))})
case("Constant_value_ints", "Constant", [], lambda: i64(3, 4), attrs={"value_ints": [3, 4]})
case("ConstantOfShape", "ConstantOfShape", [i64(2, 3)], lambda s: torch.full((2, 3), 7, dtype=torch.int64),
     attrs={"value": numpy_helper.from_array(np.array([7], dtype=np.int64))})
case("ConstantOfShape_default", "ConstantOfShape", [i64(4)], lambda s: torch.zeros(4))
case("Range_int", "Range", [s64(2), s64(11), s64(3)], lambda *a: i64(2, 5, 8))
case("Range_float_neg", "Range", [torch.tensor(1.0), torch.tensor(-1.0), torch.tensor(-0.5)],
     lambda *a: torch.tensor([1.0, 0.5, 0.0, -0.5]))
case("Expand_bidirectional", "Expand", [rnd(3, 1), i64(2, 1, 4)],
     lambda x, s: x.expand(2, 3, 4))
case("Expand_ones_keep", "Expand", [rnd(2, 3), i64(1, 1)], lambda x, s: x)
case("Trilu_lower_k", "Trilu", [rnd(4, 5), s64(1)], lambda x, k: x * torch.tensor(
    [[1.0 if j <= i + 1 else 0.0 for j in range(5)] for i in range(4)]), attrs={"upper": 0})
case("Trilu_upper", "Trilu", [rnd(2, 3, 3)], lambda x: x * torch.tensor(
    [[1.0 if j >= i else 0.0 for j in range(3)] for i in range(3)]))
case("ReduceMean", "ReduceMean", [rnd(2, 3, 4)], lambda x: x.mean((0, 2), keepdim=True), attrs={"axes": [0, -1]})
case("ReduceMean_all_nokeep", "ReduceMean", [rnd(2, 3)], lambda x: x.mean(), attrs={"keepdims": 0})
case("ReduceSum_input_axes", "ReduceSum", [rnd(2, 3, 4), i64(1)], lambda x, a: x.sum(1, keepdim=False), attrs={"keepdims": 0})
case("ReduceSum_noop", "ReduceSum", [rnd(2, 3)], lambda x: x * 1, attrs={"noop_with_empty_axes": 1})
case("ReduceMax", "ReduceMax", [rnd(3, 4)], lambda x: x.max(1, keepdim=True).values, attrs={"axes": [1]})
case("Identity", "Identity", [rnd(3)], lambda x: x * 1)
case("Dropout_eval", "Dropout", [rnd(3, 4), torch.tensor(0.5)], lambda x, r: x * 1, grad_inputs=[0])
case("Dropout_training_mode_false", "Dropout", [rnd(3, 4), torch.tensor(0.5), torch.tensor(False)], lambda x, r, t: x * 1,
     training=True, grad_inputs=[0])
# Training mode with ratio 0.25: random, so the expected value is a property,
# checked by onnx_op_check: every output is 0 (mask false) or x / 0.75 (mask
# true), and about a quarter are dropped.
case("Dropout_training_random", "Dropout", [rnd(64, 64), torch.tensor(0.25)], lambda x, r: (x * 1, x > -1e9),
     training=True, nout=2, grad=False)
CASES[-1]["dropout"] = 0.25
case("Dropout_ratio0_training", "Dropout", [rnd(3, 4), torch.tensor(0.0)], lambda x, r: x * 1, training=True,
     grad_inputs=[0])


def pad_ref(x, pads, mode, value=0.0):
    # Positional definition: output[i] = input[src(i)] per axis.
    r = x.dim()
    out = x
    for ax in range(r):
        b, e = pads[ax], pads[ax + r]
        n = out.shape[ax]
        idx, fill = [], []
        for o in range(n + b + e):
            i = o - b
            if 0 <= i < n:
                idx.append(i)
                fill.append(False)
            elif mode == "edge":
                idx.append(min(max(i, 0), n - 1))
                fill.append(False)
            elif mode == "reflect":
                idx.append(-i if i < 0 else 2 * (n - 1) - i)
                fill.append(False)
            else:
                idx.append(0)
                fill.append(True)
        sel = out.index_select(ax, torch.tensor(idx, dtype=torch.int64))
        shape = [1] * r
        shape[ax] = len(idx)
        mask = torch.tensor(fill).reshape(shape)
        out = torch.where(mask, torch.full_like(sel, value), sel)
    return out


case("Pad_constant", "Pad", [rnd(2, 3), i64(0, 1, 1, 2), torch.tensor(1.5)], lambda x, p, v: pad_ref(x, [0, 1, 1, 2], "constant", 1.5))
case("Pad_constant_negative", "Pad", [rnd(3, 4), i64(-1, 1, 0, -2)], lambda x, p: torch.cat([torch.zeros(2, 1), x[1:, :2]], 1))
case("Pad_reflect", "Pad", [rnd(1, 2, 4, 5), i64(0, 0, 1, 2, 0, 0, 2, 1)], lambda x, p: pad_ref(x, [0, 0, 1, 2, 0, 0, 2, 1], "reflect"),
     attrs={"mode": "reflect"})
case("Pad_edge", "Pad", [rnd(2, 3), i64(0, 2, 0, 1)], lambda x, p: pad_ref(x, [0, 2, 0, 1], "edge"), attrs={"mode": "edge"})
case("Tile", "Tile", [rnd(2, 3), i64(2, 1)], lambda x, r: torch.cat([x, x], 0))
case("CumSum", "CumSum", [rnd(3, 4), s64(1)], lambda x, a: torch.stack([x[:, :k + 1].sum(1) for k in range(4)], 1))
case("CumSum_exclusive_reverse", "CumSum", [rnd(3, 4), s64(-2)],
     lambda x, a: torch.stack([x[k + 1:].sum(0) for k in range(3)], 0), attrs={"exclusive": 1, "reverse": 1})

# --- decompositions the executor fuses (torch 1.13's exports of GELU and, before opset 17, LayerNorm) ---------------


def const(name, v):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.array(v, dtype=np.float32)))


graph_case("fused_gelu_decomposition", [
    const("c_sqrt2", 1.4142135381698608), const("c_one", 1.0), const("c_half", 0.5),
    helper.make_node("Div", ["in0", "c_sqrt2"], ["d"]), helper.make_node("Erf", ["d"], ["e"]),
    helper.make_node("Add", ["e", "c_one"], ["a"]), helper.make_node("Mul", ["in0", "a"], ["m"]),
    helper.make_node("Mul", ["m", "c_half"], ["out0"])], [rnd(4, 6) * 2], lambda x: F.gelu(x), steps=1)
# GPT-2's gelu_new (the tanh approximation), as torch 2.x's exporter writes it: scalars as frozen
# initializers, operands in its order; then in the other order of every Mul and Add, as Constants.
graph_case("fused_gelu_tanh_decomposition", [
    helper.make_node("Mul", ["in0", "k_half"], ["h"]), helper.make_node("Pow", ["in0", "k_three"], ["p"]),
    helper.make_node("Mul", ["p", "k_c"], ["q"]), helper.make_node("Add", ["in0", "q"], ["r"]),
    helper.make_node("Mul", ["r", "k_s"], ["s"]), helper.make_node("Tanh", ["s"], ["t"]),
    helper.make_node("Add", ["t", "k_one"], ["u"]), helper.make_node("Mul", ["h", "u"], ["out0"])],
    [rnd(4, 6) * 2], lambda x: F.gelu(x, approximate="tanh"), steps=1,
    constants={"k_half": 0.5, "k_three": 3.0, "k_c": 0.044715, "k_s": 0.7978845834732056, "k_one": 1.0})
graph_case("fused_gelu_tanh_decomposition_swapped", [
    const("c_half", 0.5), const("c_three", 3.0), const("c_c", 0.044715), const("c_s", 0.7978845834732056),
    const("c_one", 1.0),
    helper.make_node("Mul", ["c_half", "in0"], ["h"]), helper.make_node("Pow", ["in0", "c_three"], ["p"]),
    helper.make_node("Mul", ["c_c", "p"], ["q"]), helper.make_node("Add", ["q", "in0"], ["r"]),
    helper.make_node("Mul", ["c_s", "r"], ["s"]), helper.make_node("Tanh", ["s"], ["t"]),
    helper.make_node("Add", ["c_one", "t"], ["u"]), helper.make_node("Mul", ["u", "h"], ["out0"])],
    [rnd(2, 3, 5)], lambda x: F.gelu(x, approximate="tanh"), steps=1)
# The same with its scalars trainable (not frozen): no constants to match, not fused, still right.
graph_case("gelu_tanh_decomposition_trainable_scalars", [
    helper.make_node("Mul", ["in0", "k_half"], ["h"]), helper.make_node("Pow", ["in0", "k_three"], ["p"]),
    helper.make_node("Mul", ["p", "k_c"], ["q"]), helper.make_node("Add", ["in0", "q"], ["r"]),
    helper.make_node("Mul", ["r", "k_s"], ["s"]), helper.make_node("Tanh", ["s"], ["t"]),
    helper.make_node("Add", ["t", "k_one"], ["u"]), helper.make_node("Mul", ["h", "u"], ["out0"])],
    [rnd(4, 6)], lambda x: 0.5 * x * (1 + torch.tanh(0.7978845834732056 * (x + 0.044715 * x ** 3))), steps=8,
    constants={"k_half": 0.5, "k_three": 3.0, "k_c": 0.044715, "k_s": 0.7978845834732056, "k_one": 1.0},
    frozen=False)
graph_case("fused_layer_norm_decomposition", [
    const("c_two", 2.0), const("c_eps", 1e-5),
    helper.make_node("ReduceMean", ["in0"], ["mean"], axes=[-1]), helper.make_node("Sub", ["in0", "mean"], ["sub"]),
    helper.make_node("Pow", ["sub", "c_two"], ["pw"]), helper.make_node("ReduceMean", ["pw"], ["var"], axes=[-1]),
    helper.make_node("Add", ["var", "c_eps"], ["ve"]), helper.make_node("Sqrt", ["ve"], ["sd"]),
    helper.make_node("Div", ["sub", "sd"], ["n"]), helper.make_node("Mul", ["n", "in1"], ["nw"]),
    helper.make_node("Add", ["nw", "in2"], ["out0"])], [rnd(2, 3, 8), rnd(8), rnd(8)],
    lambda x, w, b: ln_ref(x, w, b, 2, 1e-5), steps=1)
graph_case("fused_matmul_add_bias", [
    helper.make_node("MatMul", ["in0", "in1"], ["mm"]), helper.make_node("Add", ["in2", "mm"], ["out0"])],
    [rnd(2, 3, 4), rnd(4, 5), rnd(5)], lambda x, w, b: x @ w + b, steps=1)
graph_case("fused_matmul_add_broadcast_fallback", [
    helper.make_node("MatMul", ["in0", "in1"], ["mm"]), helper.make_node("Add", ["mm", "in2"], ["out0"])],
    [rnd(2, 3, 4), rnd(2, 4, 5), rnd(3, 1)], lambda x, w, b: x @ w + b, steps=1)
# The same graph with the centred value also used elsewhere: not fused, still right.
graph_case("layer_norm_decomposition_shared_sub", [
    const("c_two", 2.0), const("c_eps", 1e-5),
    helper.make_node("ReduceMean", ["in0"], ["mean"], axes=[-1]), helper.make_node("Sub", ["in0", "mean"], ["sub"]),
    helper.make_node("Pow", ["sub", "c_two"], ["pw"]), helper.make_node("ReduceMean", ["pw"], ["var"], axes=[-1]),
    helper.make_node("Add", ["var", "c_eps"], ["ve"]), helper.make_node("Sqrt", ["ve"], ["sd"]),
    helper.make_node("Div", ["sub", "sd"], ["n"]), helper.make_node("Mul", ["n", "in1"], ["nw"]),
    helper.make_node("Add", ["nw", "in2"], ["y"]), helper.make_node("Add", ["y", "sub"], ["out0"])],
    [rnd(2, 3, 8), rnd(8), rnd(8)], lambda x, w, b: ln_ref(x, w, b, 2, 1e-5) + (x - x.mean(-1, keepdim=True)), steps=10)

# --- load-time errors ----------------------------------------------------------------------------------
case("error_unsupported_op", "Hardmax", [rnd(2, 3)], None, error="node '/test/Hardmax' (Hardmax, opset 17): unsupported op")
case("error_unsupported_attribute", "Relu", [rnd(2, 3)], None, attrs={"bogus": 1},
     error="(Relu, opset 17): unsupported attribute 'bogus'")
case("error_bad_auto_pad", "Conv", [rnd(1, 1, 4, 4), rnd(1, 1, 3, 3)], None, attrs={"auto_pad": "WRONG"},
     error="auto_pad 'WRONG'", check=False)


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    for c in CASES:
        build(c, sys.argv[1])
    print("%d cases in %s" % (len(CASES), sys.argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
