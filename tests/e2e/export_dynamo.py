"""Export a sample model with PyTorch 2.x: the dynamo ONNX exporter, and the reference.

Usage:  .venv/bin/python tests/e2e/export_dynamo.py SAMPLE OUTDIR

SAMPLE is one of samples/export.py's models (mlp, skip, tinygpt, convnet),
built the same way (torch.manual_seed(0), the same module classes). Writes
into OUTDIR:

  SAMPLE.onnx, SAMPLE.onnx.data   torch.onnx.export(..., dynamo=True) with its
                                  defaults (external data, optimize=True); the
                                  batch dim (and tinygpt's seq) dynamic
  SAMPLE_traced.pt                torch.jit.trace of the same module in this
                                  PyTorch: the reference the e2e scripts run
  SAMPLE_params.pt                the module's state_dict (every name, tied
                                  aliases included)

Checks the export itself before returning: onnx.checker.check_model(full_check)
and ONNX Runtime's output against eager PyTorch (max abs diff <= 1e-5).
"""

import importlib.util
import os
import sys

import torch


def load_samples():
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "..", "samples", "export.py")
    spec = importlib.util.spec_from_file_location("ppc_samples", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    name, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    samples = load_samples()
    model, example, in_name, out_name, dyn = samples.build(name)
    model.eval()
    dims = {0: torch.export.Dim("batch", min=1)}
    if name == "tinygpt":
        dims[1] = torch.export.Dim("seq", min=2, max=16)
    path = os.path.join(out, f"{name}.onnx")
    with torch.no_grad():
        ref = model(example)
        torch.onnx.export(model, (example,), path, dynamo=True, input_names=[in_name], output_names=[out_name],
                          dynamic_shapes=({k: v for k, v in dims.items()},), verbose=False)
        traced = torch.jit.trace(model, example)
        traced.save(os.path.join(out, f"{name}_traced.pt"))
    torch.save(model.state_dict(), os.path.join(out, f"{name}_params.pt"))

    import numpy as np
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(path, full_check=True)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = sess.run(None, {in_name: example.numpy()})[0]
    diff = float(np.abs(got - ref.numpy()).max())
    if diff > 1e-5:
        sys.exit(f"export_dynamo: {name}: ONNX Runtime differs from eager PyTorch by {diff}")
    m = onnx.load(path, load_external_data=False)
    print(f"{name}: IR {m.ir_version}, opset {m.opset_import[0].version}, {len(m.graph.node)} nodes, "
          f"{len(m.graph.initializer)} initializers, ORT vs eager {diff:.1e}")


if __name__ == "__main__":
    main()
