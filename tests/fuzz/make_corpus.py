"""Writes the binary seeds of the libFuzzer targets under tests/fuzz/corpus/
(the text seeds - specs, manifests, profiles, CSVs, IR text - are copies of
the project's own files; ir_text's are the graphs of tests/unit/compiler/
ir_test.cpp and test_graphs.h). The TorchScript and .pt seeds with the Python of
build/ (torch 1.13 writes what the fuzz build's LibTorch 1.13 reads), the
ONNX ones with an onnx that knows IR 10's node metadata (build-torch2's .venv):
    /usr/bin/python3 tests/fuzz/make_corpus.py torch text
    .venv/bin/python tests/fuzz/make_corpus.py onnx pt2
Small on purpose: libFuzzer mutates fastest around small inputs."""
import io
import os
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")
SEPARATOR = b"\n--ppc-external-data--\n"  # tests/fuzz/fuzz_targets.h


def out(target, name):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    return os.path.join(d, name)


def tiny_mlp(ir_version, opset, with_metadata=False):
    from onnx import TensorProto, helper, numpy_helper
    w0 = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3) / 10, "fc0.weight")
    b0 = numpy_helper.from_array(np.ones(3, dtype=np.float32), "fc0.bias")
    w1 = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(3, 2) / 10, "fc1.weight")
    nodes = [
        helper.make_node("MatMul", ["x", "fc0.weight"], ["h0"], name="/fc0/MatMul"),
        helper.make_node("Add", ["h0", "fc0.bias"], ["h1"], name="/fc0/Add"),
        helper.make_node("Relu", ["h1"], ["h2"], name="/act/Relu"),
        helper.make_node("MatMul", ["h2", "fc1.weight"], ["y"], name="/fc1/MatMul"),
    ]
    if with_metadata and hasattr(nodes[0], "metadata_props"):  # what torch 2.x's dynamo exporter writes (IR 10)
        for n in nodes:
            entry = n.metadata_props.add()
            entry.key, entry.value = "pkg.torch.onnx.name_scopes", "['', '" + n.name.split("/")[1] + "']"
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])], [w0, b0, w1])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    return model


def externalize(model):
    """The model's initializers moved to 'weights.bin' (ONNX's external data),
    and the fuzz input: model bytes, separator, data file bytes."""
    from onnx import TensorProto, numpy_helper
    data = b""
    for init in model.graph.initializer:
        raw = numpy_helper.to_array(init).tobytes()
        init.ClearField("float_data")
        init.raw_data = b""
        init.data_location = TensorProto.EXTERNAL
        for k, v in (("location", "weights.bin"), ("offset", str(len(data))), ("length", str(len(raw)))):
            e = init.external_data.add()
            e.key, e.value = k, v
        data += raw
    return model.SerializeToString() + SEPARATOR + data


def onnx_seeds():
    for name, model in (("tiny_ir8_op17.onnx", tiny_mlp(8, 17)), ("tiny_ir10_op18.onnx", tiny_mlp(10, 18, True))):
        with open(out("onnx_model", name), "wb") as f:
            f.write(model.SerializeToString())
    shutil.copy(os.path.join(ROOT, "samples/convnet/convnet.onnx"), out("onnx_model", "convnet.onnx"))
    with open(out("onnx_external", "tiny_ir8_external"), "wb") as f:
        f.write(externalize(tiny_mlp(8, 17)))
    with open(out("onnx_external", "tiny_ir10_external"), "wb") as f:
        f.write(externalize(tiny_mlp(10, 18, True)))


def seed_modules():
    """Two small modules for the torch-based seeds: Tiny (two Linear layers, a ReLU) and
    Tied(branch, scale) (an embedding tied to the LM head; with `branch` a data-dependent if, which
    scripting keeps; with `scale` a buffer)."""
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc0 = torch.nn.Linear(4, 3)
            self.fc1 = torch.nn.Linear(3, 2)

        def forward(self, x):
            return self.fc1(torch.relu(self.fc0(x)))

    class Tied(torch.nn.Module):
        def __init__(self, branch: bool, scale: bool):
            super().__init__()
            self.emb = torch.nn.Embedding(5, 3)
            self.head = torch.nn.Linear(3, 5, bias=False)
            self.head.weight = self.emb.weight
            self.branch = branch
            if scale:
                self.register_buffer("scale", torch.ones(3))
            else:
                self.scale = None

        def forward(self, ids):
            h = self.emb(ids)
            if self.branch and bool(h.sum() > 0):
                h = h * 2
            if self.scale is not None:
                h = h * self.scale
            return self.head(h)

    return Tiny, Tied


def torchscript_seeds():
    import torch

    Tiny, Tied = seed_modules()
    torch.manual_seed(0)
    torch.jit.save(torch.jit.trace(Tiny(), torch.zeros(2, 4)), out("torchscript", "tiny_traced.pt"))
    torch.jit.save(torch.jit.script(Tied(branch=True, scale=False)), out("torchscript", "tied_scripted.pt"))


def pt_input_seeds():
    import torch

    torch.manual_seed(0)
    torch.save({"x": torch.randn(2, 4)}, out("pt_inputs", "one_entry.pt"))  # pickle SETITEM
    torch.save({"x": torch.randn(2, 3), "ids": torch.arange(4), "mask": torch.tensor([True, False])},
               out("pt_inputs", "three_entries.pt"))
    torch.save({"x": torch.randn(3)[1:], "h": torch.zeros(2, 2, dtype=torch.float16)},
               out("pt_inputs", "view_half.pt"))
    torch.save({"x": torch.randn(2)}, out("pt_inputs", "legacy_format.pt"), _use_new_zipfile_serialization=False)


def pt2_seeds():
    """torch.export archives (torch 2.x): a tiny MLP, and a tied embedding/head."""
    import torch

    Tiny, Tied = seed_modules()
    torch.manual_seed(0)
    batch = torch.export.Dim("batch", min=2)
    torch.export.save(torch.export.export(Tiny(), (torch.zeros(2, 4),), dynamic_shapes=({0: batch},)),
                      out("pt2_archive", "tiny.pt2"))
    torch.export.save(torch.export.export(Tied(branch=False, scale=True), (torch.zeros(2, 3, dtype=torch.long),)),
                      out("pt2_archive", "tied.pt2"))
    # The same archives as records (tests/fuzz/fuzz_targets.h): the target
    # zips them with correct CRCs, so mutations reach the JSON reader.
    import zipfile
    for name in ("tiny", "tied"):
        with zipfile.ZipFile(out("pt2_archive", name + ".pt2")) as z:
            records = [i.filename.encode() + b"\n" + z.read(i) for i in z.infolist()]
        with open(out("pt2_archive", name + ".records"), "wb") as f:
            f.write(b"ppc-pt2-records\n" + b"\n--ppc-record--\n".join(records))


def text_seeds():
    for spec in ("mlp/spec.json", "mlp/spec_mixed.json", "mlp/spec_typed.json", "skip/spec_auto.json",
                 "tinygpt/spec_transmit.json"):
        shutil.copy(os.path.join(ROOT, "samples", spec), out("split_spec", spec.replace("/", "_")))
    for case in ("mlp", "skip_auto", "tinygpt_transmit", "convnet_traced"):
        shutil.copy(os.path.join(ROOT, "tests/golden", case, "manifest.json"), out("manifest", case + ".json"))


if __name__ == "__main__":
    parts = {"onnx": [onnx_seeds], "pt2": [pt2_seeds], "torch": [torchscript_seeds, pt_input_seeds],
             "text": [text_seeds]}
    if len(sys.argv) < 2 or any(a not in parts for a in sys.argv[1:]):
        sys.exit("usage: make_corpus.py onnx|pt2|torch|text...")
    for a in sys.argv[1:]:
        for fn in parts[a]:
            fn()
