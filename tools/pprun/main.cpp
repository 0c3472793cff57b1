// pprun: runs one rank of a pipeline that ppc split (or, with --nproc N, all
// N local ranks). Parses the command line; runtime/app/pprun.cpp does the rest.
#include <CLI/CLI.hpp>

#include <iostream>

#include "runtime/app/pprun.h"
#include "runtime/engine/replicas.h"
#include "runtime/schedule/registry.h"
#include "schemas/error.h"

using namespace ppc;
using namespace ppc::runtime;

namespace {

// A number option's lower bound, said plainly (CLI11's own range checks
// print the largest double as the upper end).
CLI::Validator at_least(double lo, bool inclusive) {
  std::string want = std::string(inclusive ? ">= " : "> ") + CLI::detail::to_string(lo);
  return CLI::Validator(
      [lo, inclusive, want](std::string& s) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(s, v)) return "'" + s + "' is not a number";
        return (inclusive ? v >= lo : v > lo) ? std::string() : "must be " + want + ", not " + s;
      },
      "NUMBER " + want);
}

// [0, 1), as torch.optim wants Adam's betas.
CLI::Validator unit_interval() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(s, v)) return "'" + s + "' is not a number";
        return v >= 0 && v < 1 ? std::string() : "must be in [0, 1), not " + s;
      },
      "NUMBER in [0, 1)");
}

// argv without the launcher's own options ("--nproc N" / "--nproc=N", and
// so --nnodes and --node-rank): what each spawned rank runs.
std::vector<std::string> child_args(int argc, char** argv) {
  std::vector<std::string> out;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    bool launcher_option = false;
    for (const char* name : {"--nproc", "--nnodes", "--node-rank"}) {
      if (a == name) {
        ++i;
        launcher_option = true;
      } else if (a.rfind(std::string(name) + "=", 0) == 0) {
        launcher_option = true;
      }
    }
    if (!launcher_option) out.push_back(a);
  }
  return out;
}

void add_options(CLI::App& app, PprunOptions& o) {
  EngineOptions& e = o.engine;
  app.add_option("--manifest", o.manifest_dir, "ppc output directory (or its manifest.json)");
  app.add_option("--rank", o.rank, "this process's rank (default: $RANK)");
  app.add_option("--world-size", o.world_size, "number of ranks (default: $WORLD_SIZE)");
  app.add_option("--master-addr", o.master_addr, "rendezvous host (default: $MASTER_ADDR or 127.0.0.1)");
  app.add_option("--master-port", o.master_port,
                 "rendezvous port (default: $MASTER_PORT or 29500; --nproc on one host picks a free one)");
  app.add_option("--nproc", o.nproc, "spawn this many local ranks and prefix their output")->check(CLI::Range(1, 1024));
  app.add_option("--nnodes", o.nnodes, "--nproc across hosts: hosts of the job, one pprun --nproc on each")
      ->check(CLI::Range(1, 65536));
  app.add_option("--node-rank", o.node_rank, "--nproc across hosts: this host's index, 0..nnodes-1")
      ->check(CLI::Range(0, 65535));
  app.add_option("--backend", o.backend, "c10d backend: gloo (CPU); nccl needs a CUDA build of LibTorch")
      ->check(CLI::IsMember({"gloo", "nccl"}));
  app.add_option("--device", e.device,
                 "where stages compute: cpu (default), cuda (GPU LOCAL_RANK mod the visible GPUs) or cuda:N; GPUs need "
                 "the build against a CUDA LibTorch");
  app.add_option("--timeout", o.timeout_s, "seconds any communication may take before the run fails")
      ->check(at_least(0, false));
  app.add_option("--threads", o.threads, "intra-op threads per rank (default: cores / local ranks)")
      ->check(CLI::Range(1, 4096));
  app.add_option("--blas", o.blas,
                 "library of the float32 GEMMs on the CPU: auto (OpenBLAS in place of MKL on a CPU that is not "
                 "Intel's), torch (LibTorch's own), openblas")
      ->check(CLI::IsMember({"auto", "torch", "openblas"}));
  app.add_flag("--print-schedule", o.print_schedule, "print every rank's lowered schedule and exit");
  app.add_option("--format", o.format, "--print-schedule: text (lowered) or csv (compute-only, torch's format)")
      ->check(CLI::IsMember({"text", "csv"}));
  app.add_flag("--simulate", o.simulate, "simulate the schedule (no ranks started): timelines, steps, bubble, memory");
  app.add_option("--costs", o.costs_file,
                 "--simulate: per-stage costs measured by --profile (default: FLOP estimates)");
  app.add_option("--schedule-file", e.schedule_file,
                 "compute-only CSV schedule (torch.distributed.pipelining's format)");
  app.add_option("--trace", e.trace_path, "write a Chrome trace (Perfetto) of every action on every rank");
  app.add_flag("--trace-memory", e.trace_memory,
               "--trace: also sample each rank's heap in use after every action (a counter per rank; each sample "
               "costs tens of microseconds)");
  app.add_option("--timeline", e.timeline_path, "write an SVG picture of the last step (or of --simulate)");
  app.add_option("--comm", o.comm_ms,
                 "--simulate: time one message (a stage edge's tensors for one micro-batch, each way) takes in flight, "
                 "in the costs' unit (default: a --profile costs file's message_ms, else 0); a costs file with message "
                 "bytes adds them at its rate, and its calibrated message_cpu_ms to both ends' ranks")
      ->check(at_least(0, true));
  app.add_option("--profile", e.profile_path, "write measured per-stage F/B/I/W ms per micro-batch (for --costs)");
  app.add_option("--schedule", e.schedule, "pipeline schedule")->check(CLI::IsMember(schedule::schedule_names()));
  app.add_option("--chunks", e.chunks, "micro-batches per batch")->check(CLI::Range(1, 1 << 20));
  app.add_option("--steps", e.steps, "batches to run")->check(CLI::Range(1, 1 << 30));
  app.add_option("--inputs", o.inputs,
                 "a .pt file (dict of tensors by model input name) or a folder of them, one per step");
  app.add_flag("--synthetic", e.synthetic,
               "random inputs of the manifest's shapes (and, training, a learnable target)");
  app.add_option("--batch-size", e.batch_size, "samples per batch for --synthetic")->check(CLI::Range(1, 1 << 30));
  app.add_option("--seed", e.seed, "seed of --synthetic")->check(at_least(0, true));
  app.add_option("--dim", o.dims, "value of a symbolic input dim for --synthetic, NAME=N");
  app.add_flag("--train", e.train, "train (default: inference)");
  app.add_option("--loss", e.loss, "loss on the model output")->check(CLI::IsMember({"mse", "cross_entropy", "model"}));
  app.add_option("--target-key", e.target_key, "batch entry holding the targets");
  app.add_option("--optimizer", e.optimizer.kind, "optimizer")->check(CLI::IsMember({"sgd", "adam", "adamw"}));
  // The bounds torch.optim enforces.
  app.add_option("--lr", e.optimizer.lr, "learning rate")->check(at_least(0, true));
  app.add_option("--momentum", e.optimizer.momentum, "SGD momentum")->check(at_least(0, true));
  app.add_option("--weight-decay", e.optimizer.weight_decay, "weight decay (L2 for sgd/adam, decoupled for adamw)")
      ->check(at_least(0, true));
  app.add_option("--beta1", e.optimizer.beta1, "Adam beta1")->check(unit_interval());
  app.add_option("--beta2", e.optimizer.beta2, "Adam beta2")->check(unit_interval());
  app.add_option("--eps", e.optimizer.eps, "Adam epsilon")->check(at_least(0, true));
  app.add_option("--output", e.output_path, "inference: write the model outputs (a dict) to this .pt file");
  app.add_option("--save", e.save_dir,
                 "training: write the trained pipeline, optimizer state and params.pt here (a link to DIR.d/step-N)");
  app.add_option("--save-every", e.save_every,
                 "training: also --save after every N steps (a kill keeps the newest complete checkpoint)")
      ->check(CLI::Range(1, 1 << 30));
  app.add_option("--keep", e.keep, "checkpoints kept in SAVE.d/ (SAVE links to the newest)")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--resume", e.resume_dir, "continue training from a --save directory");
  app.add_flag("--quiet", e.quiet, "no per-step log");
  app.add_option("--dp", e.dp,
                 "data parallel: this many replicas of the pipeline, each on its shard of every batch, their "
                 "gradients summed (world = pipeline ranks x replicas)")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--dp-layout", e.dp_layout,
                 "ranks of the replicas: pipeline-major (rank = replica * P + position) or data-major "
                 "(rank = position * replicas + replica)")
      ->check(CLI::IsMember(replica_layout_names()));
  app.add_option("--dp-bucket-mb", e.dp_bucket_mb, "--dp: gradients summed in buckets of at most this many MiB")
      ->check(at_least(0, false));
}

}  // namespace

int main(int argc, char** argv) {
  keep_freed_memory();
  CLI::App app{"pprun: run a pipeline split by ppc, one process per rank"};
  PprunOptions o;
  add_options(app, o);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::cerr << "pprun: error: " << e.what() << "\n";
    return 2;
  }
  o.schedule_given = app.count("--schedule") > 0;
  o.chunks_given = app.count("--chunks") > 0;
  o.dp_given = app.count("--dp") > 0;
  o.comm_given = app.count("--comm") > 0;
  o.save_every_given = app.count("--save-every") > 0;
  o.keep_given = app.count("--keep") > 0;
  o.child_args = child_args(argc, argv);
  try {
    return run_pprun(o, std::cout);
  } catch (...) { return report_exception("pprun", std::cerr); }
}
