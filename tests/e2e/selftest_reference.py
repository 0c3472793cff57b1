#!/usr/bin/python3
"""Self-test of the PyTorch reference scripts used by pprun's e2e tests.

Usage:  /usr/bin/python3 tests/e2e/selftest_reference.py [OUT_TMP]

Runs make_batches.py, reference_train.py, reference_infer.py and compare_pt.py
(mostly in-process, a few as subprocesses to check the real exit codes) and
requires them to agree where they should and to fail where they should.
OUT_TMP receives the scratch files (default: a temporary directory, removed
on success).
Exits 1 with one line per failed check.

What we found about BatchNorm in the convnet archives (both exported after
model.eval()):
  * convnet_traced.pt: tracing baked training=False into every
    aten::batch_norm call, so model.train() changes nothing: train mode uses
    the running statistics and never updates them, and micro-batch
    accumulation gives the same parameters as the full batch.
  * convnet_scripted.pt: BatchNorm's forward reads self.training at run time,
    so after model.train() it normalizes with the batch's statistics and
    updates running_mean/var and num_batches_tracked (once per micro-batch);
    micro-batch accumulation then differs from the full batch.
"""

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import compare_pt  # noqa: E402
import make_batches  # noqa: E402
import reference_infer  # noqa: E402
import reference_train  # noqa: E402
from ref_common import UsageError  # noqa: E402

failures = []


def check(cond, what):
    print("  %s  %s" % ("ok  " if cond else "FAIL", what))
    if not cond:
        failures.append(what)


def call(mod, *argv):
    """mod.main(argv) in-process, output captured; returns (exit code, output)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            code = mod.main([str(a) for a in argv])
        except UsageError as e:
            print("error: %s" % e)
            code = 2
        except SystemExit as e:  # argparse
            code = e.code
    return code, buf.getvalue()


def expect(code, mod, *argv, what):
    got, out = call(mod, *argv)
    check(got == code, "%s (exit %s, want %s)" % (what, got, code))
    if got != code:
        print("    " + out.strip().replace("\n", "\n    "))
    return out


def sample(name, kind="traced"):
    return os.path.join(ROOT, "samples", name, "%s_%s.pt" % (name, kind))


def params_of(name):
    return os.path.join(ROOT, "samples", name, "%s_params.pt" % name)


def main():
    t0 = time.time()
    if len(sys.argv) > 2:
        print(__doc__)
        return 2
    own_tmp = len(sys.argv) == 1
    tmp = sys.argv[1] if not own_tmp else tempfile.mkdtemp(prefix="selftest_reference_")
    os.makedirs(tmp, exist_ok=True)
    torch.set_num_threads(1)
    p = lambda *parts: os.path.join(tmp, *parts)  # noqa: E731

    print("(a) batches")
    out_shapes = {"mlp": [6, 10], "skip": [6, 8], "tinygpt": [6, 8, 64], "convnet": [6, 10]}
    for name, oshape in out_shapes.items():
        expect(0, make_batches, name, p("b", name), "--batches", 2, "--batch-size", 6, "--seed", 0,
               what="make_batches %s" % name)
        batch = torch.load(p("b", name, "batch_000.pt"))
        for kind in ("traced", "scripted"):
            m = torch.jit.load(sample(name, kind))
            names = [a.name for a in m.forward.schema.arguments[1:]]
            check(sorted(batch) == sorted(names + ["target"]),
                  "%s %s: batch keys %s = forward args %s + target" % (name, kind, sorted(batch), names))
        with torch.no_grad():
            out = torch.jit.load(sample(name))(*[batch[n] for n in names])
        check(list(out.shape) == oshape, "%s: output shape %s" % (name, list(out.shape)))
        tgt = batch["target"]
        want = (torch.float32, oshape) if name in ("mlp", "skip") else (torch.int64, oshape[:-1])
        check((tgt.dtype, list(tgt.shape)) == want, "%s: target %s %s" % (name, tgt.dtype, list(tgt.shape)))
    expect(0, make_batches, "mlp", p("b_mlp_ce"), "--batches", 1, "--batch-size", 6, "--seed", 0,
           "--loss", "cross_entropy", what="make_batches mlp --loss cross_entropy")
    tgt = torch.load(p("b_mlp_ce", "batch_000.pt"))["target"]
    check(tgt.dtype == torch.int64 and list(tgt.shape) == [6] and int(tgt.max()) < 10,
          "mlp cross_entropy target: int64 [6] in [0,10)")
    expect(0, make_batches, "mlp", p("b_again"), "--batches", 2, "--batch-size", 6, "--seed", 0,
           what="make_batches mlp again")
    expect(0, make_batches, "mlp", p("b_seed1"), "--batches", 2, "--batch-size", 6, "--seed", 1,
           what="make_batches mlp seed 1")
    for k in ("000", "001"):
        expect(0, compare_pt, p("b", "mlp", "batch_%s.pt" % k), p("b_again", "batch_%s.pt" % k),
               "--atol", 0, what="same seed -> identical batch_%s" % k)
        expect(1, compare_pt, p("b", "mlp", "batch_%s.pt" % k), p("b_seed1", "batch_%s.pt" % k),
               what="other seed -> different batch_%s" % k)

    print("(b) micro-batch accumulation vs full batch (B=6, 4 chunks of 2,2,1,1)")
    common = ["--steps", 2, "--chunks", 4, "--optimizer", "sgd", "--lr", 0.05, "--momentum", 0.9]

    def train_pair(tag, model, bdir, loss, extra=()):
        for acc in ("", "--accumulate"):
            argv = [model, bdir, p("%s%s.pt" % (tag, acc)), "--loss", loss] + common + list(extra)
            argv += ["--losses-out", p("%s%s.json" % (tag, acc))] + ([acc] if acc else [])
            expect(0, reference_train, *argv, what="train %s %s" % (tag, acc or "full batch"))
        return p(tag + ".pt"), p(tag + "--accumulate.pt")

    full, acc = train_pair("mlp", sample("mlp"), p("b", "mlp"), "mse")
    expect(0, compare_pt, full, acc, "--atol", 1e-5, what="mlp: accumulate == full batch")
    l1, l2 = (json.load(open(p("mlp%s.json" % s))) for s in ("", "--accumulate"))
    check(len(l1) == 2 and all(abs(a - b) <= 1e-5 for a, b in zip(l1, l2)),
          "mlp: per-step losses agree %s vs %s" % (l1, l2))
    for kind, same in (("traced", True), ("scripted", False)):
        full, acc = train_pair("convnet_" + kind, sample("convnet", kind), p("b", "convnet"), "cross_entropy")
        expect(0 if same else 1, compare_pt, full, acc, "--atol", 1e-5,
               what="convnet %s: accumulate %s full batch" % (kind, "==" if same else "!="))
        rm0 = torch.load(params_of("convnet"))["stem.1.running_mean"]
        rm = torch.load(full)["stem.1.running_mean"]
        check(torch.equal(rm, rm0) == same, "convnet %s: running_mean %s in train mode"
              % (kind, "unchanged (training=False baked in)" if same else "updated"))
    # --loss model: a scripted model whose output is the (batch-mean) loss
    torch.manual_seed(0)
    torch.jit.script(_LossModel()).save(p("lossmodel_archive.pt"))
    full, acc = train_pair("lossmodel", p("lossmodel_archive.pt"), p("b", "skip"), "model")
    expect(0, compare_pt, full, acc, "--atol", 1e-5, what="--loss model: accumulate == full batch")

    print("(c) compare_pt detects differences")
    ref = torch.load(params_of("mlp"))
    variants = {
        "perturbed": lambda d: d["layer1.lin.bias"].__setitem__(3, d["layer1.lin.bias"][3] + 1e-3),
        "missing": lambda d: d.pop("layer2.lin.weight"),
        "shape": lambda d: d.__setitem__("output_proj.bias", torch.zeros(11)),
        "dtype": lambda d: d.__setitem__("output_proj.bias", d["output_proj.bias"].double()),
        "extra": lambda d: d.__setitem__("extra", torch.zeros(1)),
    }
    for tag, fn in variants.items():
        d = {k: v.clone() for k, v in ref.items()}
        fn(d)
        torch.save(d, p("cmp_%s.pt" % tag))
    A = params_of("mlp")
    expect(0, compare_pt, A, A, what="identical dicts")
    out = expect(1, compare_pt, A, p("cmp_perturbed.pt"), what="perturbed tensor")
    check("layer1.lin.bias: max abs diff 0.001  MISMATCH" in out and "max abs diff 0.001 over 8" in out,
          "perturbed tensor named with its diff")
    expect(0, compare_pt, A, p("cmp_perturbed.pt"), "--atol", 1e-2, what="perturbed within --atol 1e-2")
    expect(1, compare_pt, A, p("cmp_missing.pt"), what="missing key")
    expect(1, compare_pt, A, p("cmp_missing.pt"), "--keys-from", "A", what="missing key, --keys-from A")
    expect(0, compare_pt, A, p("cmp_missing.pt"), "--keys-from", "B", what="missing key, --keys-from B")
    expect(1, compare_pt, A, p("cmp_extra.pt"), what="extra key")
    expect(0, compare_pt, A, p("cmp_extra.pt"), "--keys-from", "A", what="extra key, --keys-from A")
    expect(1, compare_pt, A, p("cmp_shape.pt"), what="shape mismatch")
    expect(1, compare_pt, A, p("cmp_dtype.pt"), what="dtype mismatch")
    torch.save(torch.tensor([1.0, float("nan"), float("inf")]), p("t1.pt"))
    torch.save(torch.tensor([1.0, float("nan"), float("inf")]), p("t2.pt"))
    torch.save(torch.tensor([1.0, 2.0, float("inf")]), p("t3.pt"))
    expect(0, compare_pt, p("t1.pt"), p("t2.pt"), what="single tensors, NaN/inf in the same places")
    expect(1, compare_pt, p("t1.pt"), p("t3.pt"), what="single tensors, NaN vs number")

    print("(d) the optimizer really steps")
    for name, opt, loss in (("mlp", "adam", "mse"), ("tinygpt", "adamw", "cross_entropy")):
        o = p("%s_3steps.pt" % name)
        expect(0, reference_train, sample(name), p("b", name), o, "--steps", 3, "--loss", loss,
               "--optimizer", opt, "--lr", 1e-3, "--weight-decay", 0.01, what="train %s %s 3 steps" % (name, opt))
        trained, init = torch.load(o), torch.load(params_of(name))
        m = torch.jit.load(sample(name))
        want = list(m.state_dict())
        check(sorted(trained) == sorted(want), "%s: OUT.pt holds the state_dict(), a tied param under each name (%d)"
              % (name, len(want)))
        pnames = {n for n, _ in m.named_parameters()}
        unchanged = [k for k in pnames if torch.equal(trained[k], init[k])]
        check(not unchanged, "%s: every parameter moved (unchanged: %s)" % (name, unchanged))
        expect(1, compare_pt, o, params_of(name), "--keys-from", "A", what="%s: trained != initial" % name)
    tied = torch.load(p("tinygpt_3steps.pt"))
    check(torch.equal(tied["lm_head.weight"], tied["wte.weight"]), "tinygpt: lm_head.weight (tie) equals wte.weight")

    print("(e) reference_infer")
    expect(0, reference_infer, sample("mlp"), p("b", "mlp"), p("inf_init.pt"), "--steps", 3,
           "--params", params_of("mlp"), what="infer mlp, initial params")
    m = torch.jit.load(sample("mlp"))
    with torch.no_grad():
        xs = [torch.load(p("b", "mlp", "batch_%03d.pt" % k))["x"] for k in (0, 1, 0)]
        torch.save({"output": torch.cat([m(x) for x in xs])}, p("inf_direct.pt"))
    expect(0, compare_pt, p("inf_init.pt"), p("inf_direct.pt"), "--atol", 0,
           what="infer: 3 steps cycle over 2 batches, concatenated [18, 10]")
    expect(0, reference_infer, sample("mlp"), p("b", "mlp"), p("inf_trained.pt"), "--steps", 3,
           "--params", p("mlp_3steps.pt"), what="infer mlp, trained params")
    expect(1, compare_pt, p("inf_init.pt"), p("inf_trained.pt"), what="trained params change the output")
    expect(2, reference_infer, sample("mlp"), p("b", "mlp"), p("x.pt"), "--steps", 1,
           "--params", p("cmp_extra.pt"), what="infer: unexpected key rejected")
    expect(2, reference_infer, sample("mlp"), p("b", "mlp"), p("x.pt"), "--steps", 1,
           "--params", p("cmp_missing.pt"), what="infer: missing key rejected")
    expect(2, reference_infer, sample("mlp"), p("b", "mlp"), p("x.pt"), "--steps", 1,
           "--params", p("cmp_shape.pt"), what="infer: shape mismatch rejected")
    expect(0, reference_infer, sample("mlp"), p("b", "mlp"), p("x.pt"), "--steps", 1,
           "--params", p("cmp_missing.pt"), "--allow-missing", what="infer: --allow-missing")
    expect(0, reference_infer, sample("tinygpt"), p("b", "tinygpt"), p("inf_gpt.pt"), "--steps", 2,
           "--params", p("tinygpt_3steps.pt"), "--output-name", "logits", what="infer tinygpt, tied params")
    check(list(torch.load(p("inf_gpt.pt"))["logits"].shape) == [12, 8, 64], "tinygpt logits [12, 8, 64]")
    out_e = p("inf_conv_eval.pt"), p("inf_conv_train.pt")
    expect(0, reference_infer, sample("convnet", "scripted"), p("b", "convnet"), out_e[0], "--steps", 1,
           "--eval", what="infer convnet scripted --eval")
    expect(0, reference_infer, sample("convnet", "scripted"), p("b", "convnet"), out_e[1], "--steps", 1,
           "--train", what="infer convnet scripted --train")
    expect(1, compare_pt, *out_e, what="scripted convnet: train-mode output != eval-mode output")

    print("(f) command lines and exit codes")
    py = sys.executable
    runs = [
        (0, [os.path.join(HERE, "compare_pt.py"), A, A]),
        (1, [os.path.join(HERE, "compare_pt.py"), A, p("cmp_perturbed.pt")]),
        (2, [os.path.join(HERE, "make_batches.py"), "nosuch", p("x"), "--batches", "1",
             "--batch-size", "1", "--seed", "0"]),
        (2, [os.path.join(HERE, "reference_train.py"), sample("mlp"), p("b", "mlp"), p("x.pt"), "--steps", "1",
             "--chunks", "7", "--accumulate", "--loss", "mse", "--optimizer", "sgd", "--lr", "0.1"]),
    ]
    for want, argv in runs:
        r = subprocess.run([py] + argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        check(r.returncode == want, "%s ... exits %d (want %d)" % (os.path.basename(argv[0]), r.returncode, want))
        if r.returncode != want:
            print("    " + r.stdout.strip().replace("\n", "\n    "))

    if own_tmp and not failures:
        shutil.rmtree(tmp)
    print("%s: %d failed check(s) in %.1f s (scratch: %s)" % ("FAIL" if failures else "PASS", len(failures),
          time.time() - t0, tmp + (" (removed)" if own_tmp and not failures else "")))
    return 1 if failures else 0


class _LossModel(torch.nn.Module):
    """Returns its own loss: the batch mean of a squared linear map of x [B, 32]."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(32, 4)

    def forward(self, x):
        y = self.lin(x)
        return (y * y).mean()


if __name__ == "__main__":
    sys.exit(main())
