// pprun: runs one rank of a pipeline that ppc split (or, with --nproc N, all
// N local ranks). Parses the command line and calls the runtime.
#include <CLI/CLI.hpp>
#include <ATen/Parallel.h>

#include <dlfcn.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <iostream>
#include <thread>

#include "runtime/engine/engine.h"
#include "runtime/launch/local_launcher.h"
#include "runtime/manifest/stage_map.h"
#include "runtime/schedule/csv.h"
#include "runtime/schedule/lowering.h"
#include "runtime/schedule/registry.h"
#include "runtime/schedule/timeline.h"
#include "runtime/stages/stage_module.h"
#include "runtime/transport/transport.h"
#include "schemas/error.h"

namespace fs = std::filesystem;
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

// An output file's folder must exist and be writable before any rank runs:
// otherwise the run would end in a failed write, or none at all.
void check_output_path(const std::string& option, const std::string& path) {
  if (path.empty()) return;
  fs::path dir = fs::path(path).parent_path();
  if (dir.empty()) dir = ".";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error(option + " " + path + ": no folder '" + dir.string() + "'");
  if (access(dir.c_str(), W_OK) != 0) throw Error(option + " " + path + ": cannot write into '" + dir.string() + "'");
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

std::vector<std::string> input_files(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(path + ": no such file or directory (--inputs)");
  if (!fs::is_directory(path, ec)) return {path};
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(path))
    if (e.path().extension() == ".pt") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  if (files.empty()) throw Error(path + ": the directory holds no .pt files (--inputs)");
  return files;
}

// Intra-op threads for LibTorch and OpenBLAS: the two pools oversubscribe
// the cores when left to their defaults (DESIGN.md, "Threads on 2 cores").
void set_threads(int threads) {
  if (threads <= 0) {
    if (const char* v = std::getenv("PPRUN_THREADS")) threads = std::atoi(v);
  }
  if (threads <= 0) {
    int local = 1;
    if (const char* v = std::getenv("LOCAL_WORLD_SIZE")) local = std::max(1, std::atoi(v));
    threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / local);
  }
  at::set_num_threads(threads);
  using SetThreads = void (*)(int);
  if (auto f = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(threads);
}

// A column width for the text timeline: the shortest compute action, but at
// most 80 columns over the whole run.
double timeline_unit(const schedule::SimResult& sim) {
  double shortest = sim.makespan;
  for (const auto& rank : sim.timeline)
    for (const auto& t : rank)
      if (t.action.is_compute() && t.end > t.start) shortest = std::min(shortest, t.end - t.start);
  return std::max(shortest, sim.makespan / 80);
}

// argv without "--nproc N" / "--nproc=N": what each spawned rank runs.
std::vector<std::string> child_args(int argc, char** argv) {
  std::vector<std::string> out;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--nproc") {
      ++i;
      continue;
    }
    if (a.rfind("--nproc=", 0) == 0) continue;
    out.push_back(a);
  }
  return out;
}

}  // namespace

// Tensors of the same sizes are freed and allocated again every micro-batch
// (weight gradients, activations). With glibc's defaults, blocks above the
// mmap threshold come fresh from the kernel each time and the heap is trimmed
// back, so every reuse page-faults its memory in again: on a VM that made a
// training step with 8 micro-batches 4x slower than with one. Keep freed
// memory in the process, as PyTorch's caching allocators do.
static void keep_freed_memory() {
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

int main(int argc, char** argv) {
  keep_freed_memory();
  CLI::App app{"pprun: run a pipeline split by ppc, one process per rank"};
  std::string manifest_dir;
  std::optional<int> rank, world_size, master_port;
  std::optional<std::string> master_addr;
  int nproc = 0, threads = 0;
  double timeout_s = 300;
  bool print_schedule = false;
  std::string inputs;
  std::vector<std::string> dims;
  EngineOptions o;

  app.add_option("--manifest", manifest_dir, "ppc output directory (or its manifest.json)");
  app.add_option("--rank", rank, "this process's rank (default: $RANK)");
  app.add_option("--world-size", world_size, "number of ranks (default: $WORLD_SIZE)");
  app.add_option("--master-addr", master_addr, "rendezvous host (default: $MASTER_ADDR or 127.0.0.1)");
  app.add_option("--master-port", master_port, "rendezvous port (default: $MASTER_PORT or 29500; --nproc picks a free one)");
  app.add_option("--nproc", nproc, "spawn this many local ranks and prefix their output")->check(CLI::Range(1, 1024));
  std::string backend = "gloo";
  app.add_option("--backend", backend, "c10d backend: gloo (CPU); nccl needs a CUDA build of LibTorch")
      ->check(CLI::IsMember({"gloo", "nccl"}));
  app.add_option("--timeout", timeout_s, "seconds any communication may take before the run fails")
      ->check(at_least(0, false));
  app.add_option("--threads", threads, "intra-op threads per rank (default: cores / local ranks)")
      ->check(CLI::Range(1, 4096));
  app.add_flag("--print-schedule", print_schedule, "print every rank's lowered schedule and exit");
  std::string format = "text", costs_file;
  double comm_ms = 0;
  bool simulate = false;
  app.add_option("--format", format, "--print-schedule: text (lowered) or csv (compute-only, torch's format)")
      ->check(CLI::IsMember({"text", "csv"}));
  app.add_flag("--simulate", simulate, "simulate the schedule (no ranks started): timelines, steps, bubble, memory");
  app.add_option("--costs", costs_file, "--simulate: per-stage costs measured by --profile (default: FLOP estimates)");
  app.add_option("--schedule-file", o.schedule_file, "compute-only CSV schedule (torch.distributed.pipelining's format)");
  app.add_option("--trace", o.trace_path, "write a Chrome trace (Perfetto) of every action on every rank");
  app.add_option("--timeline", o.timeline_path, "write an SVG picture of the last step (or of --simulate)");
  app.add_option("--comm", comm_ms, "--simulate: time one message (a stage edge's tensors for one micro-batch, each way) takes in flight, in the costs' unit (default: a --profile costs file's message_ms, else 0); a costs file with message bytes adds them at its rate, and its calibrated message_cpu_ms to both ends' ranks")
      ->check(at_least(0, true));
  app.add_option("--profile", o.profile_path, "write measured per-stage F/B/I/W ms per micro-batch (for --costs)");
  app.add_option("--schedule", o.schedule, "pipeline schedule")
      ->check(CLI::IsMember(schedule::schedule_names()));
  app.add_option("--chunks", o.chunks, "micro-batches per batch")->check(CLI::Range(1, 1 << 20));
  app.add_option("--steps", o.steps, "batches to run")->check(CLI::Range(1, 1 << 30));
  app.add_option("--inputs", inputs, "a .pt file (dict of tensors by model input name) or a folder of them, one per step");
  app.add_flag("--synthetic", o.synthetic, "random inputs of the manifest's shapes (and, training, a learnable target)");
  app.add_option("--batch-size", o.batch_size, "samples per batch for --synthetic")->check(CLI::Range(1, 1 << 30));
  app.add_option("--seed", o.seed, "seed of --synthetic")->check(at_least(0, true));
  app.add_option("--dim", dims, "value of a symbolic input dim for --synthetic, NAME=N");
  app.add_flag("--train", o.train, "train (default: inference)");
  app.add_option("--loss", o.loss, "loss on the model output")->check(CLI::IsMember({"mse", "cross_entropy", "model"}));
  app.add_option("--target-key", o.target_key, "batch entry holding the targets");
  app.add_option("--optimizer", o.optimizer.kind, "optimizer")->check(CLI::IsMember({"sgd", "adam", "adamw"}));
  // The bounds torch.optim enforces.
  app.add_option("--lr", o.optimizer.lr, "learning rate")->check(at_least(0, true));
  app.add_option("--momentum", o.optimizer.momentum, "SGD momentum")->check(at_least(0, true));
  app.add_option("--weight-decay", o.optimizer.weight_decay, "weight decay (L2 for sgd/adam, decoupled for adamw)")
      ->check(at_least(0, true));
  app.add_option("--beta1", o.optimizer.beta1, "Adam beta1")->check(unit_interval());
  app.add_option("--beta2", o.optimizer.beta2, "Adam beta2")->check(unit_interval());
  app.add_option("--eps", o.optimizer.eps, "Adam epsilon")->check(at_least(0, true));
  app.add_option("--output", o.output_path, "inference: write the model outputs (a dict) to this .pt file");
  app.add_option("--save", o.save_dir, "training: write the trained pipeline, optimizer state and params.pt here (a link to DIR.d/step-N)");
  app.add_option("--save-every", o.save_every, "training: also --save after every N steps (a kill keeps the newest complete checkpoint)")
      ->check(CLI::Range(1, 1 << 30));
  app.add_option("--keep", o.keep, "checkpoints kept in SAVE.d/ (SAVE links to the newest)")->check(CLI::Range(1, 1 << 20));
  app.add_option("--resume", o.resume_dir, "continue training from a --save directory");
  app.add_flag("--quiet", o.quiet, "no per-step log");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::cerr << "pprun: error: " << e.what() << "\n";
    return 2;
  }

  try {
    if (manifest_dir.empty()) manifest_dir = o.resume_dir;
    if (manifest_dir.empty()) throw Error("give the pipeline with --manifest DIR (the output of ppc split)");
    if (!o.resume_dir.empty() && fs::path(manifest_dir) != fs::path(o.resume_dir) &&
        !(fs::exists(manifest_dir) && fs::exists(o.resume_dir) && fs::equivalent(manifest_dir, o.resume_dir)))
      throw Error("--resume " + o.resume_dir + " carries its own manifest; drop --manifest or point it there");
    if (!inputs.empty() && o.synthetic) throw Error("give either --inputs or --synthetic, not both");
    if (!o.output_path.empty() && o.train) throw Error("--output is for inference; training writes with --save DIR");
    if (!o.save_dir.empty() && !o.train) throw Error("--save needs --train");
    if ((app.count("--save-every") || app.count("--keep")) && o.save_dir.empty())
      throw Error(std::string(app.count("--save-every") ? "--save-every" : "--keep") + " needs --save DIR");
    // Checked before --nproc launches anything, as each rank would check it.
    if (master_port && (*master_port < 1 || *master_port > 65535))
      throw Error("master port " + std::to_string(*master_port) + " is outside 1..65535");
    if (master_addr && master_addr->empty()) throw Error("--master-addr is empty");
    check_output_path("--output", o.output_path);
    check_output_path("--trace", o.trace_path);
    check_output_path("--timeline", o.timeline_path);
    check_output_path("--profile", o.profile_path);
    if (nproc > 0 && rank) throw Error("--rank: --nproc gives every local rank its own; drop --rank");
    if (nproc > 0 && world_size && *world_size != nproc)
      throw Error("--world-size " + std::to_string(*world_size) + " differs from --nproc " + std::to_string(nproc));
    if (rank && *rank < 0) throw Error("--rank " + std::to_string(*rank) + " is negative");
    if (world_size && *world_size < 1) throw Error("--world-size must be >= 1, not " + std::to_string(*world_size));
    for (const auto& d : dims) {
      auto eq = d.find('=');
      char* end = nullptr;
      long long v = eq == std::string::npos ? 0 : std::strtoll(d.c_str() + eq + 1, &end, 10);
      if (eq == std::string::npos || eq == 0 || end == d.c_str() + eq + 1 || *end != '\0' || v < 1)
        throw Error("--dim '" + d + "': expected NAME=N with N >= 1");
      o.dims[d.substr(0, eq)] = v;
    }

    if (backend == "nccl")
      throw Error("--backend nccl: this pprun is built against a CPU-only LibTorch; build it against a CUDA "
                  "LibTorch to run over NCCL (runtime/transport/ holds the only c10d code)");
    LoadedManifest lm = load_and_verify(manifest_dir);
    // Runtime defaults recorded by ppc (the split spec's "defaults"), unless given here.
    if (!app.count("--schedule") && lm.manifest.default_schedule) o.schedule = *lm.manifest.default_schedule;
    if (!app.count("--chunks") && lm.manifest.default_chunks) o.chunks = *lm.manifest.default_chunks;
    if (!o.schedule_file.empty()) {
      int in_file = microbatches_in_schedule_file(o.schedule_file);
      if (app.count("--chunks") && o.chunks != in_file)
        throw Error(o.schedule_file + ": the schedule runs " + std::to_string(in_file) + " micro-batches, not --chunks " +
                    std::to_string(o.chunks));
      o.chunks = in_file;
      o.schedule = fs::path(o.schedule_file).filename().string();
    }
    if (print_schedule || simulate) {
      int ws = world_size.value_or(0);
      if (ws == 0) {
        const char* v = std::getenv("WORLD_SIZE");
        ws = nproc > 0 ? nproc : v ? std::atoi(v) : static_cast<int>(lm.manifest.stages.size());
      }
      // Simulation is about training schedules unless --train is absent and the user asks for inference.
      bool train = o.train || simulate;
      auto s = plan_schedule(lm.manifest, o.schedule, ws, o.chunks, train, o.schedule_file);
      if (print_schedule) {
        if (format == "csv") {
          std::cout << schedule::write_csv(schedule::strip_communication(s));
        } else {
          for (size_t r = 0; r < s.size(); ++r) std::cout << "rank " << r << ": " << schedule::to_string(s[r]) << "\n";
        }
        return 0;
      }
      SimCosts costs = sim_costs(lm.manifest, costs_file);
      if (!app.count("--comm") && costs.message_ms > 0) comm_ms = costs.message_ms;
      schedule::SimResult sim = simulate_plan(lm.manifest, s, costs, comm_ms);
      std::cout << "simulated " << o.schedule << ": " << ws << " ranks, " << lm.manifest.stages.size() << " stages, "
                << o.chunks << " micro-batches, costs " << (costs_file.empty() ? "from FLOP estimates" : costs_file)
                << "\n"
                << schedule::format_timeline(sim, timeline_unit(sim)) << schedule::format_summary(sim);
      if (!o.timeline_path.empty()) {
        std::ostringstream title;
        title << "simulated " << o.schedule << ": " << ws << " ranks, " << lm.manifest.stages.size() << " stages, "
              << o.chunks << " micro-batches; bubble " << std::fixed << std::setprecision(1)
              << sim.bubble_fraction * 100 << "%";
        std::ofstream(o.timeline_path) << schedule::timeline_svg(schedule::events_of(sim), ws, title.str(),
                                                                 costs_file.empty() ? "FLOPs" : "ms");
      }
      return sim.deadlock ? 1 : 0;
    }
    if (!o.synthetic && inputs.empty()) throw Error("give the data with --inputs FILE|DIR or --synthetic --batch-size N");
    if (!inputs.empty()) o.input_files = input_files(inputs);

    // Bad input fails here, once, before any rank starts.
    if (!o.save_dir.empty()) {
      std::error_code ec;
      if (fs::exists(o.save_dir, ec) && !fs::is_empty(o.save_dir, ec) &&
          !fs::exists(fs::path(o.save_dir) / "pprun_state.json", ec))
        throw Error(o.save_dir + ": exists and is not a pprun checkpoint; refusing to replace it (--save)");
    }
    check_stage_format(lm);
    check_data(lm.manifest, o);
    if (nproc > 0) {
      plan_schedule(lm.manifest, o.schedule, nproc, o.chunks, o.train, o.schedule_file);
      LaunchOptions lo;
      lo.executable = fs::read_symlink("/proc/self/exe").string();
      lo.args = child_args(argc, argv);
      lo.nproc = nproc;
      if (master_addr) lo.master_addr = *master_addr;
      if (master_port) lo.master_port = *master_port;
      try {
        if (!master_port) lo.master_port = pick_free_port(lo.master_addr);
      } catch (const std::runtime_error& e) {  // the address is the user's
        std::string what = e.what();
        throw Error("--master-addr '" + lo.master_addr + "' is unusable: " + what.substr(what.rfind("': ") + 3));
      }
      lo.threads_per_rank = threads;
      return launch_local_ranks(lo);
    }

    RendezvousOptions ro;
    try {
      ro = rendezvous_from_env(master_addr, master_port, rank, world_size,
                               std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000)));
    } catch (const std::invalid_argument& e) {
      throw Error(e.what());
    }
    // Check the placement before connecting, so bad input fails fast on every rank.
    stages_of_rank(static_cast<int>(lm.manifest.stages.size()), ro.world_size, ro.rank);
    plan_schedule(lm.manifest, o.schedule, ro.world_size, o.chunks, o.train, o.schedule_file);
    set_threads(threads);
    std::unique_ptr<Transport> transport;
    try {
      transport = connect_gloo(ro);
      run_pipeline(lm, *transport, o, std::cout);
      transport->barrier();
    } catch (const PeerError& e) {
      std::cerr << "pprun: rank " << ro.rank << ": error: " << e.what() << "\n";
      std::cerr.flush();
      std::_Exit(1);  // peers are gone: do not wait on them while tearing down
    }
  } catch (const Error& e) {
    std::cerr << "pprun: error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::string what = e.what();
    std::cerr << "pprun: internal error: " << what.substr(0, what.find('\n')) << "\n";
    return 1;
  }
  return 0;
}
