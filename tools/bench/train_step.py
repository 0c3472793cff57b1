"""Training step, side by side: pprun against torch.distributed.pipelining and eager PyTorch.

Usage:  .venv/bin/python tools/bench/train_step.py [--model blocks|mlp|gpt2] [--build build-torch2]
            [--batch 256] [--chunks 8] [--steps 21] [--schedules gpipe,1f1b]
            [--formats torchscript,onnx,pt2]
        .venv/bin/python tools/bench/train_step.py --schedules all [--patch-torch-v-handshake]
        .venv/bin/python tools/bench/train_step.py --smoke [--model M] [--schedules S]
                                                    (every schedule unless --schedules, losses only)

The models (--model):

  blocks  (default) 16 x (Linear(512, 512) + ReLU), random seeded weights, MSE
          loss against a random target, SGD (lr 0.01), batch 256;
  mlp     the mlp sample (samples/export.py's MLP and seeded weights: Linear
          512-512, 512-1024, 1024-256 with ReLU, Linear 256-10),
          cross-entropy against random classes, SGD (lr 0.1), batch 256;
          2 stages: layer0, layer1 | layer2, output_proj; 4: a layer each;
  gpt2    transformers' GPT2LMHeadModel, vocab 2048, n_embd 256, 8 layers, 4
          heads, seq 64, dropout 0, sdpa attention, lm_head not tied to the
          token embedding (torch.distributed.pipelining and DeepSpeed keep no
          tie across stages, so no row has one); cross-entropy of the logits
          against the next token (batches of seq + 1 random token ids), SGD
          (lr 0.1), batch 16 sequences; 2 stages: embeddings + h.0-3 |
          h.4-7 + ln_f + lm_head (ppc cuts at transformer.h.4); 4: 2 blocks
          each. Its ONNX file is torch 2.x's exporter's (dynamo), with
          samples/export_families.py's --optimize safe (its default folds
          Transpose(lm_head.weight) into an untrainable constant).

(The larger learning rate of mlp and gpt2 makes their later steps' losses
tell a wrong update apart: at 0.01 one step moves GPT-2's loss by 5e-5
relative, under the check's 1e-4.) The same batches, the same weights and
the same optimizer everywhere:

  eager       the unsplit model in one process, full batch, 1 intra-op thread;
  pipelining  torch.distributed.pipelining: 2 processes over Gloo, each
              holding PipelineStage objects, the schedule's class with
              --chunks micro-batches, 1 intra-op thread each;
  deepspeed   DeepSpeed's pipeline engine (PipelineModule of the same 16
              blocks, partition_method "uniform": 8 + 8, the same cut),
              2 processes over Gloo with DeepSpeed's CPU accelerator, its
              training schedule (1F1B; DeepSpeed has no other) with
              --chunks micro-batches, torch.optim.SGD, no gradient clipping
              (DeepSpeed's default clips the gradients' norm to 1.0), 1
              intra-op thread each: the 1f1b row only (--no-deepspeed
              leaves it out); the mlp's 4 layers and GPT-2's embeddings, 8
              blocks and head are partitioned the same way, into ppc's cut;
  pprun       the model traced (TorchScript), exported to ONNX (the
              TorchScript-based exporter) and by torch.export (.pt2), split
              by ppc, run by pprun on 2 local ranks (Gloo), the same
              schedule and micro-batches, --threads 1.

The schedules (--schedules, comma-separated, or "all"), by pprun's name:

  one stage per rank: 2 stages of 8 blocks (ppc cuts after block 7), stage s
  on rank s:
    gpipe             ScheduleGPipe
    1f1b              Schedule1F1B
    zb-h1             ScheduleInterleavedZeroBubble, one stage per rank:
                      torch 2.11 has no single-stage zero-bubble class (its
                      PipelineScheduleSingle ones are GPipe, 1F1B and the
                      forward-only one); ZB1P on one stage per rank lists
                      the same actions in the same order as pprun's zb-h1
  two stages per rank: 4 stages of 4 blocks (cuts after blocks 3, 7, 11),
  2 PipelineStage objects per rank:
    interleaved-1f1b  ScheduleInterleaved1F1B        stage s on rank s mod 2
    interleaved-zb    ScheduleInterleavedZeroBubble  stage s on rank s mod 2
    zb-v              ScheduleZBVZeroBubble          rank r: stages r, 3-r
    dualpipev         ScheduleDualPipeV              rank r: stages r, 3-r

Each reports its step time (forward, backward and optimizer step of one
batch) for --steps steps; the first is excluded (one-time costs) and the
median of the rest is printed with samples/s, each as a ratio to
torch.distributed.pipelining's with the same schedule (> 1: faster than it),
and the first three losses, to show the runs do the same work. pprun's and
torch.distributed.pipelining's losses of the same schedule must agree (1e-4
relative, each printed step; the first step's is the forward on the same
weights, the later ones follow the updates): the script exits 1 where they
do not. It also compares each schedule's compute order (pprun
--print-schedule --format csv against the torch schedule's pipeline_order,
overlapped F/B pairs as their two actions) and prints where they differ.
Run it with the machine otherwise idle; the numbers of one run are
comparable with each other, not with another machine's.

torch 2.11's ScheduleZBVZeroBubble and ScheduleDualPipeV do not run over
Gloo: the neighbour handshake of their first step
(PipelineStage._get_init_p2p_neighbors_ops) has rank 1 send a dummy tensor
from its stage 1 to its own stage 2, and Gloo cannot send to its own rank
("Pair is not connected"). Their rows say so, and pprun's rows of those
schedules are checked against eager PyTorch's losses instead. Any other
torch failure fails the script. --patch-torch-v-handshake drops the
self-addressed handshake messages (dummies; the activations between the
two stages of a rank are handed over in memory by torch's runtime either
way) so that they run; their rows are then marked "(patched)".

--smoke: batch 32 (gpt2: 8), 4 micro-batches, 2 steps, every schedule (or
--schedules), every format; it checks the losses and prints no timings
(tests/CMakeLists.txt runs it as bench_train_step_smoke, and with
--model mlp / --model gpt2 --schedules 1f1b as bench_train_step_smoke_mlp /
_gpt2).
"""

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WIDTH, BLOCKS, LR, RANKS = 512, 16, 0.01, 2
RTOL = 1e-4  # pprun's losses against torch.distributed.pipelining's, relative

# pprun's schedule name: (stages, torch.distributed.pipelining's class, placement).
# Placement "loop": stage s on rank s mod 2; "v": rank r holds stages r and 3-r.
SCHEDULES = {
    "gpipe": (2, "ScheduleGPipe", "loop"),
    "1f1b": (2, "Schedule1F1B", "loop"),
    "zb-h1": (2, "ScheduleInterleavedZeroBubble", "loop"),
    "interleaved-1f1b": (4, "ScheduleInterleaved1F1B", "loop"),
    "interleaved-zb": (4, "ScheduleInterleavedZeroBubble", "loop"),
    "zb-v": (4, "ScheduleZBVZeroBubble", "v"),
    "dualpipev": (4, "ScheduleDualPipeV", "v"),
}
DEFAULT_BATCH = {"blocks": 256, "mlp": 256, "gpt2": 16}
SMOKE_BATCH = {"blocks": 32, "mlp": 32, "gpt2": 8}  # --smoke's batch (4 micro-batches) per --model
TORCH_TIMEOUT_S = 300  # a torch.distributed.pipelining run that hangs fails the script, not waited for
GLOO_SELF_SEND = ("torch's first-step neighbour handshake sends from rank 1's stage 1 to its own stage 2, and Gloo "
                  "cannot send to its own rank (Pair is not connected); --patch-torch-v-handshake drops those "
                  "self-addressed dummy messages")


class Net(nn.Module):
    def __init__(self, blocks):
        super().__init__()
        self.blocks = blocks

    def forward(self, x):
        return self.blocks(x)


def build_model():
    """Net (forward argument "x", blocks.0 .. blocks.15) and its blocks."""
    torch.manual_seed(0)
    blocks = nn.Sequential(*[nn.Sequential(nn.Linear(WIDTH, WIDTH), nn.ReLU()) for _ in range(BLOCKS)])
    return Net(blocks)


def cross_entropy(out, target):
    """pprun's --loss cross_entropy: the classes in the output's last dim, mean over every other position."""
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), target.reshape(-1))


def export_dense(model, work, formats, width):
    """model.pt (torch.jit.trace), model.onnx (the TorchScript-based exporter, opset 17) and model.pt2
    (torch.export) of a model of one float input "x" of [batch, width]."""
    x = torch.randn(2, width)
    with torch.no_grad():
        torch.jit.trace(model, x).save(os.path.join(work, "model.pt"))
        kw = {"dynamo": False} if torch.__version__ >= "2" else {}
        torch.onnx.export(model, (x,), os.path.join(work, "model.onnx"), input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=17, **kw)
    if "pt2" in formats:
        ep = torch.export.export(model, (x,), dynamic_shapes={"x": {0: torch.export.Dim("batch", max=1 << 16)}},
                                 strict=False)
        torch.export.save(ep, os.path.join(work, "model.pt2"))


class Blocks:
    """16 x (Linear(512, 512) + ReLU), MSE against a random target."""
    loss, lr = "mse", LR
    what = "%d x (Linear(%d, %d) + ReLU)" % (BLOCKS, WIDTH, WIDTH)
    split = "2 stages of 8 blocks, or 4 of 4 for two stages per rank"

    def build(self):
        return build_model()

    def batch(self, g, n):
        return {"x": torch.randn(n, WIDTH, generator=g), "target": torch.randn(n, WIDTH, generator=g)}

    def loss_fn(self, out, target):
        return F.mse_loss(out, target)

    def units(self, model):
        """The model as a chain of one-tensor-in, one-tensor-out modules: torch's and DeepSpeed's stages are
        contiguous runs of them (DeepSpeed's partition_method "uniform" cuts them into equal counts)."""
        return list(model.blocks)

    def bounds(self, nstages):
        """The first unit of each stage after the first: where ppc's cuts are."""
        return [k * BLOCKS // nstages for k in range(1, nstages)]

    def cuts(self, nstages):
        # Cut after blocks BLOCKS/n - 1, 2*BLOCKS/n - 1, ...: 2 stages after block 7; 4 after 3, 7 and 11.
        return [{"module": "blocks.%d" % (b - 1), "at": "end"} for b in self.bounds(nstages)]

    def export(self, model, work, formats):
        export_dense(model, work, formats, WIDTH)


def samples_module(name):
    """samples/<name>.py, imported once."""
    import importlib.util
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "samples", name + ".py"))
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


class MlpSample(Blocks):
    """samples/mlp: layer0 Linear(512, 512)+ReLU, layer1 Linear(512, 1024)+ReLU, layer2 Linear(1024, 256)+ReLU,
    output_proj Linear(256, 10), built by samples/export.py (the same seeded weights as its committed files);
    cross-entropy against random classes. 2 stages: layer0, layer1 | layer2, output_proj (ppc cuts after
    layer1, DeepSpeed's uniform partition of the 4 layers is the same); 4 stages: one layer each."""
    loss, lr = "cross_entropy", 0.1
    what = "the mlp sample (Linear(512, 512), Linear(512, 1024), Linear(1024, 256) + ReLU, Linear(256, 10))"
    split = "2 stages: layer0-1 | layer2 + output_proj, or 4 of 1 layer for two stages per rank"
    LAYERS = ("layer0", "layer1", "layer2", "output_proj")

    def build(self):
        return samples_module("export").build("mlp")[0]

    def batch(self, g, n):
        return {"x": torch.randn(n, 512, generator=g), "target": torch.randint(0, 10, (n,), generator=g)}

    def loss_fn(self, out, target):
        return cross_entropy(out, target)

    def units(self, model):
        return [getattr(model, n) for n in self.LAYERS]

    def bounds(self, nstages):
        return {2: [2], 4: [1, 2, 3]}[nstages]

    def cuts(self, nstages):
        return [{"module": self.LAYERS[b], "at": "begin"} for b in self.bounds(nstages)]

    def export(self, model, work, formats):
        export_dense(model, work, formats, 512)


GPT2 = {"vocab_size": 2048, "n_embd": 256, "n_layer": 8, "n_head": 4, "seq": 64}


class GPT2Embed(nn.Module):
    """GPT-2's token and position embeddings: input_ids -> the first block's input (what GPT2Model computes
    before its blocks: wte(ids) + wpe(0 .. seq-1); dropout 0)."""

    def __init__(self, transformer):
        super().__init__()
        self.wte, self.wpe = transformer.wte, transformer.wpe

    def forward(self, ids):
        return self.wte(ids) + self.wpe(torch.arange(ids.shape[1], device=ids.device))


class GPT2Head(nn.Module):
    """ln_f + lm_head: the last block's output -> logits."""

    def __init__(self, model):
        super().__init__()
        self.ln_f, self.lm_head = model.transformer.ln_f, model.lm_head

    def forward(self, h):
        return self.lm_head(self.ln_f(h))


class Gpt2Small(Blocks):
    """transformers' GPT2LMHeadModel (samples/export_families.py's logits-only subclass, input input_ids) of a
    small config (GPT2 above; dropout 0, sdpa attention, lm_head NOT tied to wte: torch.distributed.pipelining
    and DeepSpeed's PipelineModule do not keep a tie across stages, so no row has one). Weights: HF's init after
    torch.manual_seed(0), then += 0.02 * randn, as export_families.py does. Batches: seq + 1 random token ids
    per row, input the first seq, target the last seq (the next token); cross-entropy over every position.
    Stages: embeddings + the first half of the blocks | the second half + ln_f + lm_head (ppc cuts at the
    beginning of transformer.h.<n_layer/2>); 4 stages: quarters of the blocks."""
    loss, lr = "cross_entropy", 0.1
    split = ("2 stages: embeddings + h.0-%d | h.%d-%d + ln_f + lm_head, or 4 of %d blocks for two stages per rank"
             % (GPT2["n_layer"] // 2 - 1, GPT2["n_layer"] // 2, GPT2["n_layer"] - 1, GPT2["n_layer"] // 4))
    what = ("GPT-2 (GPT2LMHeadModel, vocab %d, n_embd %d, %d layers, %d heads, seq %d, untied lm_head)"
            % (GPT2["vocab_size"], GPT2["n_embd"], GPT2["n_layer"], GPT2["n_head"], GPT2["seq"]))

    def build(self):
        import transformers
        transformers.logging.set_verbosity_error()
        fam = samples_module("export_families")
        cfg = transformers.GPT2Config(
            vocab_size=GPT2["vocab_size"], n_positions=GPT2["seq"], n_embd=GPT2["n_embd"], n_layer=GPT2["n_layer"],
            n_head=GPT2["n_head"], activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
            summary_first_dropout=0.0, use_cache=False, tie_word_embeddings=False)
        cfg._attn_implementation = "sdpa"
        torch.manual_seed(0)
        model = fam.GPT2LMHeadModelLogits(cfg)
        gen = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for _, p in model.named_parameters():
                p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.02)
        return model.train()

    def batch(self, g, n):
        ids = torch.randint(0, GPT2["vocab_size"], (n, GPT2["seq"] + 1), generator=g)
        return {"input_ids": ids[:, :-1].contiguous(), "target": ids[:, 1:].contiguous()}

    def loss_fn(self, out, target):
        return cross_entropy(out, target)

    def units(self, model):
        return [GPT2Embed(model.transformer)] + list(model.transformer.h) + [GPT2Head(model)]

    def bounds(self, nstages):
        n = GPT2["n_layer"]
        return [1 + k * n // nstages for k in range(1, nstages)]

    def cuts(self, nstages):
        return [{"module": "transformer.h.%d" % (b - 1), "at": "begin"} for b in self.bounds(nstages)]

    def export(self, model, work, formats):
        model.eval()
        ids = self.batch(torch.Generator().manual_seed(3), 2)["input_ids"]
        if "torchscript" in formats:
            with torch.no_grad():
                torch.jit.trace(model, (ids,), strict=False).save(os.path.join(work, "model.pt"))
        batch = torch.export.Dim("batch", min=1, max=1 << 12)
        if "onnx" in formats:
            # torch 2.x's exporter (dynamo) as samples/export_families.py --optimize safe runs it (the family tests'
            # training export): the exporter's optimizer, told not to fold a node that reads a parameter. Its
            # default folds Transpose(lm_head.weight) (524,288 elements here) into an unnamed constant, which
            # no one can train.
            import argparse as ap
            import onnx
            spec = {"model": model, "inputs": {"input_ids": ids}, "outputs": ["logits"]}
            samples_module("export_families").export_dynamo(
                spec, os.path.join(work, "model.onnx"),
                ap.Namespace(opset=None, optimize="safe", keep_stack_trace=False, external_data=False))
            inits = {i.name for i in onnx.load(os.path.join(work, "model.onnx")).graph.initializer}
            missing = [n for n, _ in model.named_parameters() if n not in inits]
            if missing:
                sys.exit("the ONNX export lost parameters: %s" % ", ".join(missing))
        if "pt2" in formats:
            ep = torch.export.export(model, (ids,), dynamic_shapes={"input_ids": {0: batch}}, strict=False)
            torch.export.save(ep, os.path.join(work, "model.pt2"))
        model.train()


MODELS = {"blocks": Blocks(), "mlp": MlpSample(), "gpt2": Gpt2Small()}


def stage_modules(bench, model, nstages):
    """Stage s of nstages as one module (torch.distributed.pipelining's): a contiguous run of the model's units,
    cut where ppc cuts."""
    units = bench.units(model)
    edges = [0] + bench.bounds(nstages) + [len(units)]
    return [nn.Sequential(*units[lo:hi]) for lo, hi in zip(edges, edges[1:])]


def rank_stages(rank, nstages, placement):
    """The stages rank `rank` holds, in the order torch's schedules expect them."""
    if placement == "v":
        return [rank, nstages - 1 - rank]
    return [s for s in range(nstages) if s % RANKS == rank]


def batches(work):
    return sorted(os.path.join(work, "batches", f) for f in os.listdir(os.path.join(work, "batches")))


def run_eager(work, steps, model_name="blocks", threads=1):
    torch.set_num_threads(threads)
    bench = MODELS[model_name]
    model = bench.build()
    opt = torch.optim.SGD(model.parameters(), lr=bench.lr)
    files = batches(work)
    times, losses = [], []
    for i in range(steps):
        b = torch.load(files[i % len(files)])
        target = b.pop("target")
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = bench.loss_fn(model(*b.values()), target)
        loss.backward()
        opt.step()
        times.append((time.perf_counter() - t0) * 1e3)
        losses.append(loss.item())
    return times, losses


def compute_order(sched):
    """torch's compute actions of every rank, pprun's CSV form: "0F0", "1I2", "2W0", "3B1" (an overlapped F/B
    pair as its two actions, in torch's order)."""
    order = {}
    for rank, actions in sched.pipeline_order.items():
        out = []
        for a in actions:
            for x in (a.sub_actions or (a,)) if a is not None else ():
                if x.computation_type.value in ("F", "I", "W", "B"):
                    out.append("%d%s%d" % (x.stage_index, x.computation_type.value, x.microbatch_index))
        order[str(rank)] = out
    return order


def patch_v_handshake():
    """Drop the first step's handshake messages from a rank to itself (see --patch-torch-v-handshake)."""
    from torch.distributed.pipelining import stage as st
    orig = st._PipelineStageBase._get_init_p2p_neighbors_ops
    st._PipelineStageBase._get_init_p2p_neighbors_ops = \
        lambda self: [op for op in orig(self) if op.group_peer != self.group_rank]


def pipelining_rank(work, rank, port, schedule, chunks, steps, out, patch, model_name):
    """One rank of torch.distributed.pipelining (run in its own process)."""
    import torch.distributed as dist
    import torch.distributed.pipelining as pipelining
    torch.set_num_threads(1)
    nstages, cls_name, placement = SCHEDULES[schedule]
    if patch and placement == "v":
        patch_v_handshake()
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=RANKS)
    bench = MODELS[model_name]
    mine = rank_stages(rank, nstages, placement)
    every = stage_modules(bench, bench.build(), nstages)
    subs = [every[s] for s in mine]
    stages = [pipelining.PipelineStage(sub, s, nstages, torch.device("cpu")) for s, sub in zip(mine, subs)]
    cls = getattr(pipelining, cls_name)
    single = issubclass(cls, pipelining.schedules.PipelineScheduleSingle)
    sched = cls(stages[0] if single else stages, chunks, loss_fn=bench.loss_fn)
    if rank == 0:  # a PipelineScheduleSingle runs a loop of its own; its pipeline_order only describes it
        with open(out + ".order", "w") as f:
            json.dump("single" if single else compute_order(sched), f)
    opt = torch.optim.SGD([p for sub in subs for p in sub.parameters()], lr=bench.lr)
    files = batches(work)
    times, losses = [], []
    for i in range(steps):
        b = torch.load(files[i % len(files)])
        target = b.pop("target")
        args = tuple(b.values()) if 0 in mine else ()
        kw = {}
        if nstages - 1 in mine:
            mb = []
            kw = {"target": target, "losses": mb}
        dist.barrier()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        sched.step(*args, **kw)
        opt.step()
        times.append((time.perf_counter() - t0) * 1e3)
        if kw:
            losses.append(sum(x.item() for x in mb) / len(mb))
    dist.barrier()
    dist.destroy_process_group()
    with open(out, "w") as f:
        json.dump({"times": times, "losses": losses}, f)


def deepspeed_rank(work, rank, port, chunks, steps, out, model_name):
    """One rank of DeepSpeed's pipeline engine (run in its own process): PipelineModule over the model's units
    (the 16 blocks; the mlp's 4 layers; GPT-2's embeddings, blocks and head), partitioned uniformly into 2
    stages (the same cut as ppc's), its training schedule (1F1B-like) with --chunks micro-batches
    (gradient_accumulation_steps), torch.optim.SGD, Gloo on CPU."""
    import deepspeed
    from deepspeed.pipe import PipelineModule
    torch.set_num_threads(1)
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(RANKS),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    deepspeed.init_distributed(dist_backend="gloo", verbose=False)
    bench = MODELS[model_name]
    units = bench.units(bench.build())  # the same seeded weights
    net = PipelineModule(layers=units, num_stages=RANKS, loss_fn=bench.loss_fn, partition_method="uniform")
    if net.parts != [0] + bench.bounds(RANKS) + [len(units)]:
        sys.exit("DeepSpeed's partition %s is not ppc's cut" % net.parts)
    opt = torch.optim.SGD(net.parameters(), lr=bench.lr)
    files = batches(work)
    batch = torch.load(files[0])["target"].shape[0]
    # gradient_clipping: DeepSpeed's default is 1.0 (clip the gradients' norm to 1), which no other row does.
    cfg = {"train_micro_batch_size_per_gpu": batch // chunks, "gradient_accumulation_steps": chunks,
           "gradient_clipping": 0.0, "steps_per_print": 10**9}
    engine, _, _, _ = deepspeed.initialize(model=net, optimizer=opt, config=cfg)
    times, losses = [], []
    for i in range(steps):
        b = torch.load(files[i % len(files)])
        target = b.pop("target")
        (x,) = b.values()
        micro = iter(list(zip(x.chunk(chunks), target.chunk(chunks))))
        torch.distributed.barrier()
        t0 = time.perf_counter()
        loss = engine.train_batch(data_iter=micro)  # forward, backward and optimizer step of the batch
        times.append((time.perf_counter() - t0) * 1e3)
        losses.append(float(loss))  # the mean of the micro-batches' losses, on every rank
    torch.distributed.barrier()
    with open(out, "w") as f:
        json.dump({"times": times, "losses": losses}, f)


def run_deepspeed(work, chunks, steps, model_name):
    """(times, losses) of DeepSpeed's pipeline engine, or (why, []) where DeepSpeed is not installed."""
    try:
        import deepspeed  # noqa: F401
    except ImportError as e:
        return "DeepSpeed is not installed (%s; tools/setup.sh --torch2 installs it)" % e, []
    port = free_port()
    outs = [os.path.join(work, f"deepspeed_{r}.json") for r in range(RANKS)]
    logs = [os.path.join(work, f"deepspeed_{r}.log") for r in range(RANKS)]
    env = dict(os.environ, DS_ACCELERATOR="cpu")
    procs = []
    for r in range(RANKS):
        with open(logs[r], "w") as log:
            procs.append(subprocess.Popen([sys.executable, os.path.abspath(__file__), "--deepspeed-rank", str(r),
                                           "--port", str(port), "--work", work, "--chunks", str(chunks), "--steps",
                                           str(steps), "--out", outs[r], "--model", model_name], stdout=log,
                                          stderr=subprocess.STDOUT,
                                          env=env))
    failed = wait_for_ranks(procs)
    if failed is not None:  # DeepSpeed's own trouble on this machine (its JIT-built ops, its launcher): said, not fatal
        text = "".join(open(lg, errors="replace").read() for lg in logs)
        errs = re.findall(r"\b(\w*(?:Error|Exception): .*)", text)
        print(text[-3000:], file=sys.stderr)
        return "DeepSpeed failed here: %s (its log above)" % (errs[-1].strip() if errs else failed), []
    res = [json.load(open(o)) for o in outs]
    return [max(ts) for ts in zip(*(r["times"] for r in res))], res[-1]["losses"]


def wait_for_ranks(procs, timeout_s=TORCH_TIMEOUT_S):
    """Waits for the rank processes `procs`, one deadline for all, and kills any left (ours, by their own
    handle). Returns None when every one exited 0, else why not (the first failure)."""
    deadline = time.monotonic() + timeout_s
    failed = None
    for p in procs:
        try:
            if p.wait(timeout=max(1, deadline - time.monotonic())) != 0 and failed is None:
                failed = "exit status %d" % p.returncode
        except subprocess.TimeoutExpired:
            failed = "did not finish within %d s (hung)" % timeout_s
            break
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    return failed


def bench_arguments(description, batch=256, chunks=8, steps=21):
    """An argument parser with the options every pipeline benchmark here shares: --build, --batch, --chunks,
    --steps."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--build", default=os.path.join(ROOT, "build-torch2"))
    ap.add_argument("--batch", type=int, default=batch)
    ap.add_argument("--chunks", type=int, default=chunks)
    ap.add_argument("--steps", type=int, default=steps)
    return ap


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run_pipelining(work, schedule, chunks, steps, patch, model_name, preload=None):
    """(times, losses, order) of torch.distributed.pipelining; times is a string (why) where the schedule cannot
    run here for a known reason. Any other failure exits. preload: a BLAS library to LD_PRELOAD into torch's
    ranks (its sgemm_ then replaces the one inside torch)."""
    env = dict(os.environ, LD_PRELOAD=preload) if preload else None
    cls_name = SCHEDULES[schedule][1]
    port = free_port()
    outs = [os.path.join(work, f"pipelining_{schedule}_{r}.json") for r in range(RANKS)]
    logs = [os.path.join(work, f"pipelining_{schedule}_{r}.log") for r in range(RANKS)]
    procs = []
    for r in range(RANKS):
        with open(logs[r], "w") as log:
            procs.append(subprocess.Popen([sys.executable, os.path.abspath(__file__), "--pipelining-rank", str(r),
                                           "--port", str(port), "--work", work, "--schedule", schedule, "--chunks",
                                           str(chunks), "--steps", str(steps), "--out", outs[r], "--model",
                                           model_name]
                                          + (["--patch-torch-v-handshake"] if patch else []),
                                          stdout=log, stderr=subprocess.STDOUT, env=env))
    failed = wait_for_ranks(procs)
    order = json.load(open(outs[0] + ".order")) if os.path.exists(outs[0] + ".order") else None
    if failed is not None:
        text = "".join(open(lg, errors="replace").read() for lg in logs)
        errs = re.findall(r"\b(\w*(?:Error|Exception): .*)", text)
        why = errs[-1].strip() if errs else failed
        if SCHEDULES[schedule][2] == "v" and "_initialize_stages" in text and "Pair is not connected" in text:
            return ("%s fails over Gloo in its first step's handshake: Pair is not connected (see below)"
                    % cls_name), [], order
        sys.exit("torch.distributed.pipelining %s (%s) failed: %s\n%s" % (schedule, cls_name, why, text[-3000:]))
    res = [json.load(open(o)) for o in outs]
    # A step ends on every rank; the slowest one's time is the step's.
    times = [max(ts) for ts in zip(*(r["times"] for r in res))]
    return times, next(r["losses"] for r in res if r["losses"]), order


PPRUN_GEMMS = set()  # what pprun said its GEMMs ran on, per --blas


def run_pprun(build, work, fmt, schedule, chunks, steps, loss="mse", lr=LR, blas="auto"):
    split = os.path.join(work, "split_%s_%d" % (fmt, SCHEDULES[schedule][0]))
    log = subprocess.run([os.path.join(build, "pprun"), "--manifest", split, "--nproc", str(RANKS), "--schedule",
                          schedule, "--chunks", str(chunks), "--inputs", os.path.join(work, "batches"), "--steps",
                          str(steps), "--train", "--loss", loss, "--optimizer", "sgd", "--lr", str(lr), "--threads",
                          "1", "--blas", blas], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if log.returncode != 0:
        sys.exit("pprun --schedule %s (%s stages) failed:\n%s" % (schedule, fmt, log.stdout[-2000:]))
    PPRUN_GEMMS.update("--blas %s: %s" % (blas, g) for g in re.findall(r"float32 GEMMs on (.*)", log.stdout))
    rows = re.findall(r"\[rank 0\] step \d+/\d+  loss ([0-9.eE+-]+)  samples/s [0-9.]+  step ([0-9.]+) ms", log.stdout)
    if len(rows) != steps:
        sys.exit("pprun --schedule %s (%s stages): %d step lines, expected %d:\n%s"
                 % (schedule, fmt, len(rows), steps, log.stdout[-2000:]))
    return [float(t) for _, t in rows], [float(l) for l, _ in rows]


def pprun_order(build, work, fmt, schedule, chunks):
    """pprun's compute actions of every rank (--print-schedule --format csv)."""
    split = os.path.join(work, "split_%s_%d" % (fmt, SCHEDULES[schedule][0]))
    p = subprocess.run([os.path.join(build, "pprun"), "--manifest", split, "--nproc", str(RANKS), "--schedule",
                        schedule, "--chunks", str(chunks), "--train", "--print-schedule", "--format", "csv"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        sys.exit("pprun --print-schedule --schedule %s failed:\n%s" % (schedule, p.stdout[-2000:]))
    lines = [ln.strip() for ln in p.stdout.splitlines() if re.fullmatch(r"\d+[FIBW]\d+(,\d+[FIBW]\d+)*", ln.strip())]
    return {str(r): ln.split(",") for r, ln in enumerate(lines)}


def order_note(mine, theirs, cls_name):
    """One line: whether pprun's compute order is torch's."""
    if theirs is None:
        return "order: torch's %s was not built" % cls_name
    if theirs == "single":
        return ("order: not compared: torch's %s runs a loop of its own (PipelineScheduleSingle), not an action list"
                % cls_name)
    if mine == theirs:
        return "order: the same compute actions in the same order as torch's %s on every rank" % cls_name
    for r in sorted(set(mine) | set(theirs)):
        a, b = mine.get(r, []), theirs.get(r, [])
        if a != b:
            k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            same_set = sorted(a) == sorted(b)
            return ("order DIFFERS from torch's %s: rank %s, action %d: pprun %s, torch %s (%s)"
                    % (cls_name, r, k + 1, ",".join(a[k:k + 3]) or "(end)", ",".join(b[k:k + 3]) or "(end)",
                       "the same actions in another order" if same_set else "different actions"))
    return "order DIFFERS from torch's %s" % cls_name


def prepare(build, work, batch, nbatches, nstages_needed, formats, model_name="blocks"):
    """The batches (work/batches/batch_NNN.pt: the model's inputs and "target"), the model exported in each
    format and split by ppc into each of nstages_needed stages (work/split_<format>_<n>)."""
    bench = MODELS[model_name]
    os.makedirs(os.path.join(work, "batches"))
    g = torch.Generator().manual_seed(1)
    for i in range(nbatches):
        torch.save(bench.batch(g, batch), os.path.join(work, "batches", "batch_%03d.pt" % i))
    bench.export(bench.build().eval(), work, formats)
    for nstages in sorted(nstages_needed):
        spec = os.path.join(work, "spec_%d.json" % nstages)
        with open(spec, "w") as f:
            json.dump({"version": 1, "split_points": bench.cuts(nstages)}, f)
        for fmt in formats:
            path = {"torchscript": "model.pt", "onnx": "model.onnx", "pt2": "model.pt2"}[fmt]
            p = subprocess.run([os.path.join(build, "ppc"), "split", os.path.join(work, path), "--splits", spec, "-o",
                                os.path.join(work, "split_%s_%d" % (fmt, nstages))],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if p.returncode != 0:
                sys.exit("ppc split failed:\n" + p.stdout)


def rel(a, b):
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


def check_losses(results, eager_losses):
    """Each pprun row's losses against torch.distributed.pipelining's of its schedule (eager's where torch's
    could not run): every printed step within RTOL relative. Returns the lines of the disagreements and the
    largest relative difference."""
    bad, worst = [], 0.0
    ref = {r[1]: r[3] for r in results
           if r[0].startswith("torch.distributed") and "OpenBLAS" not in r[0] and not isinstance(r[2], str)}
    for name, sched, times, losses in results:
        if not name.startswith(("pprun", "DeepSpeed")) or isinstance(times, str):
            continue
        against, what = (ref[sched], "torch.distributed.pipelining") if sched in ref else (eager_losses, "eager")
        n = min(3, len(losses), len(against))
        if n == 0:
            bad.append("%s %s: no losses to compare" % (name, sched))
        for i in range(n):
            worst = max(worst, rel(losses[i], against[i]))
            if rel(losses[i], against[i]) > RTOL:
                bad.append("%s %s step %d: loss %.7g, %s %.7g (relative %.2g > %g)"
                           % (name, sched, i + 1, losses[i], what, against[i], rel(losses[i], against[i]), RTOL))
    return bad, worst


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build-torch2"))
    ap.add_argument("--model", choices=list(MODELS), default="blocks",
                    help="blocks: 16 x (Linear(512, 512) + ReLU) (default); mlp: the mlp sample; gpt2: GPT-2 "
                         "small-config")
    ap.add_argument("--batch", type=int, help="default: 256 (blocks, mlp), 16 (gpt2: 16 sequences)")
    ap.add_argument("--chunks", type=int, default=8)
    ap.add_argument("--steps", type=int, default=21)
    ap.add_argument("--schedules", help="comma-separated, or all: %s (default gpipe,1f1b; --smoke: all)"
                    % ",".join(SCHEDULES))
    ap.add_argument("--formats", default="torchscript,onnx,pt2")
    ap.add_argument("--patch-torch-v-handshake", action="store_true",
                    help="let torch's ZB-V and DualPipeV run over Gloo: drop their first step's handshake messages "
                         "from a rank to itself (rows marked patched)")
    ap.add_argument("--smoke", action="store_true",
                    help="batch 32, 4 micro-batches, 2 steps, every schedule and format: check losses, no timings")
    ap.add_argument("--no-deepspeed", action="store_true", help="leave out DeepSpeed's pipeline engine (1f1b row)")
    ap.add_argument("--torch-openblas", metavar="LIB",
                    help="also run torch.distributed.pipelining's rows with this OpenBLAS (e.g. "
                         "/usr/lib/x86_64-linux-gnu/libopenblas.so.0) preloaded in place of torch's own BLAS")
    ap.add_argument("--eager-threads", default="1",
                    help="eager PyTorch's intra-op threads, comma-separated for a row each (e.g. 1,2)")
    ap.add_argument("--pprun-blas", default="auto",
                    help="pprun --blas for its rows, comma-separated for a row each (e.g. auto,torch: the second "
                         "runs LibTorch's own BLAS, the one torch's rows run on)")
    ap.add_argument("--pipelining-rank", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--deepspeed-rank", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    ap.add_argument("--schedule", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.deepspeed_rank is not None:
        return deepspeed_rank(a.work, a.deepspeed_rank, a.port, a.chunks, a.steps, a.out, a.model)
    if a.pipelining_rank is not None:
        return pipelining_rank(a.work, a.pipelining_rank, a.port, a.schedule, a.chunks, a.steps, a.out,
                               a.patch_torch_v_handshake, a.model)
    if a.smoke:
        a.batch, a.chunks, a.steps, a.formats = SMOKE_BATCH[a.model], 4, 2, "torchscript,onnx,pt2"
        a.schedules = a.schedules or "all"
    elif a.steps < 3:
        ap.error("--steps must be >= 3 (the first is excluded)")
    a.batch = a.batch or DEFAULT_BATCH[a.model]
    a.schedules = a.schedules or "gpipe,1f1b"
    scheds = list(SCHEDULES) if a.schedules == "all" else a.schedules.split(",")
    formats = a.formats.split(",")
    for s in scheds:
        if s not in SCHEDULES:
            ap.error("unknown schedule %r; choose from %s or all" % (s, ", ".join(SCHEDULES)))
    for f in formats:
        if f not in ("torchscript", "onnx", "pt2"):
            ap.error("unknown format %r; choose from torchscript, onnx, pt2" % f)
    work = tempfile.mkdtemp(prefix="ppc_bench_")
    try:
        bench = MODELS[a.model]
        prepare(a.build, work, a.batch, min(a.steps, 4), {SCHEDULES[s][0] for s in scheds}, formats, a.model)
        print("train step: %s, batch %d, %d micro-batches, %sSGD%s, %d ranks (%s); 1 intra-op thread per process; "
              "torch %s; %d steps%s"
              % (bench.what, a.batch, a.chunks, "" if bench.loss == "mse" else bench.loss + " loss, ",
                 "" if bench.lr == LR else " (lr %g)" % bench.lr, RANKS,
                 bench.split, torch.__version__, a.steps,
                 "; smoke: losses only, no timings" if a.smoke else ", first excluded"))
        eager = run_eager(work, a.steps, a.model)
        results = [("eager (1 process)", "-") + eager]
        for n in (int(t) for t in a.eager_threads.split(",") if int(t) != 1):
            results.append(("eager (1 process, %d threads)" % n, "-") + run_eager(work, a.steps, a.model, n))
        torch.set_num_threads(1)
        notes = []
        for sched in scheds:
            times, losses, order = run_pipelining(work, sched, a.chunks, a.steps, a.patch_torch_v_handshake,
                                                  a.model)
            patched = a.patch_torch_v_handshake and SCHEDULES[sched][2] == "v"
            results.append(("torch.distributed.pipelining" + (" (patched)" if patched else ""), sched, times, losses))
            if a.torch_openblas:
                times_o, losses_o, _ = run_pipelining(work, sched, a.chunks, a.steps, a.patch_torch_v_handshake,
                                                      a.model, a.torch_openblas)
                results.append(("torch.distributed.pipelining, OpenBLAS", sched, times_o, losses_o))
            if sched == "1f1b" and not a.no_deepspeed:  # DeepSpeed's one training schedule
                results.append(("DeepSpeed PipelineModule", sched)
                               + tuple(run_deepspeed(work, a.chunks, a.steps, a.model)))
            for fmt in formats:
                for blas in a.pprun_blas.split(","):
                    results.append(("pprun (%s stages%s)" % (fmt, "" if blas == "auto" else ", --blas " + blas), sched)
                                   + run_pprun(a.build, work, fmt, sched, a.chunks, a.steps, bench.loss, bench.lr,
                                               blas))
            notes.append("%-16s %s" % (sched, order_note(pprun_order(a.build, work, formats[0], sched, a.chunks),
                                                          order, SCHEDULES[sched][1])))
        base = {r[1]: statistics.median(r[2][1:]) for r in results
                if r[0].startswith("torch.distributed") and "OpenBLAS" not in r[0] and not isinstance(r[2], str)}
        width = max(len(r[0]) for r in results)
        if a.smoke:
            print("%-*s %-16s  %s" % (width, "", "schedule", "losses"))
        else:
            print("%-*s %-16s %10s %10s %10s  %s" % (width, "", "schedule", "step ms", "samples/s", "vs pipe",
                                                      "losses (first 3)"))
        for name, sched, times, losses in results:
            if isinstance(times, str):
                print("%-*s %-16s  could not run here: %s" % (width, name, sched, times))
                continue
            text = " ".join("%.6f" % l for l in losses[:3])
            if a.smoke:
                print("%-*s %-16s  %s" % (width, name, sched, text))
                continue
            med = statistics.median(times[1:])
            ref = base.get(sched)
            if name.startswith("eager") and base:
                ref = base.get("gpipe", next(iter(base.values())))
            vs = "%9.2fx" % (ref / med) if ref else "%10s" % "-"
            print("%-*s %-16s %10.2f %10.0f %s  %s" % (width, name, sched, med, a.batch / med * 1e3, vs, text))
        print("schedules, pprun's against torch.distributed.pipelining's (%d ranks, %d micro-batches):"
              % (RANKS, a.chunks))
        for line in notes:
            print("  " + line)
        for line in sorted(PPRUN_GEMMS):
            print("pprun " + line)
        if any(isinstance(r[2], str) and r[0].startswith("torch") for r in results):
            print("could not run: " + GLOO_SELF_SEND + "; pprun's rows of those schedules are checked against "
                  "eager PyTorch's losses")
        bad, worst = check_losses(results, eager[1])
        if bad:
            print("LOSSES DISAGREE (pprun against torch.distributed.pipelining, or eager where it could not run):")
            for line in bad:
                print("  " + line)
            return 1
        print("losses agree: every pprun row within %g relative of torch.distributed.pipelining's with the same "
              "schedule (of eager PyTorch's where torch could not run), each printed step; the largest: %.2g"
              % (RTOL, worst))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
