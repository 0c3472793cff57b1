// pprun's program logic: option checks, the manifest's defaults, the
// schedule printed or simulated, local ranks launched, or this rank run.
#include "runtime/app/pprun.h"

#include <ATen/Parallel.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <thread>

#include "runtime/engine/replicas.h"
#include "runtime/launch/local_launcher.h"
#include "runtime/manifest/stage_map.h"
#include "runtime/schedule/csv.h"
#include "runtime/schedule/lowering.h"
#include "runtime/schedule/timeline.h"
#include "runtime/stages/blas.h"
#include "runtime/stages/device.h"
#include "runtime/stages/stage_module.h"
#include "runtime/transport/transport.h"
#include "schemas/error.h"

namespace fs = std::filesystem;

namespace ppc::runtime {

namespace {

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

std::vector<std::string> input_files(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(path + ": no such file or directory (--inputs)");
  if (!fs::is_directory(path, ec)) return {path};
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(path))
    if (e.path().extension() == ".pt" && !e.is_directory(ec)) files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  if (files.empty()) throw Error(path + ": the directory holds no .pt files (--inputs)");
  return files;
}

// Intra-op threads for LibTorch and OpenBLAS: the two pools oversubscribe
// the cores when left to their defaults (docs/runtime.md, "Threads").
int set_threads(int threads) {
  if (threads <= 0) {
    if (const char* v = std::getenv("PPRUN_THREADS")) threads = std::atoi(v);
  }
  if (threads <= 0) {
    int local = 1;
    if (const char* v = std::getenv("LOCAL_WORLD_SIZE")) local = std::max(1, std::atoi(v));
    threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / local);
  }
  at::set_num_threads(threads);
  set_blas_threads(threads);
  return threads;
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

// Ranks of the job a launcher starts: --nproc on each of --nnodes hosts.
int launched_world(const PprunOptions& o) { return o.nproc * o.nnodes.value_or(1); }

std::optional<std::string> env_value(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? std::optional<std::string>(v) : std::nullopt;
}

// --nnodes / --node-rank: one launcher per host. Each host must be given the
// same rendezvous address and port, so neither has a default there.
void check_hosts(const PprunOptions& o) {
  if ((o.nnodes || o.node_rank) && o.nproc == 0)
    throw Error(std::string(o.nnodes ? "--nnodes" : "--node-rank") +
                " goes with --nproc K (the ranks this host starts); under torchrun, its environment says where each "
                "rank belongs");
  const int nnodes = o.nnodes.value_or(1), node = o.node_rank.value_or(0);
  const std::string hosts = "--nnodes " + std::to_string(nnodes);
  if (node >= nnodes)
    throw Error("--node-rank " + std::to_string(node) + " is outside 0.." + std::to_string(nnodes - 1) + " (" + hosts +
                ")");
  if (nnodes == 1) return;
  if (!o.master_addr && !env_value("MASTER_ADDR"))
    throw Error(hosts + " needs --master-addr (or MASTER_ADDR): the address of node 0's host, the same on every host");
  if (!o.master_port && !env_value("MASTER_PORT"))
    throw Error(hosts + " needs --master-port (or MASTER_PORT): a port free on node 0's host, the same on every host");
}

// Combinations and values the option parser cannot judge alone. Checked
// before --nproc launches anything, as each rank would check them.
void check_options(PprunOptions& o) {
  EngineOptions& e = o.engine;
  if (o.manifest_dir.empty()) o.manifest_dir = e.resume_dir;
  if (o.manifest_dir.empty()) throw Error("give the pipeline with --manifest DIR (the output of ppc split)");
  if (!e.resume_dir.empty() && fs::path(o.manifest_dir) != fs::path(e.resume_dir) &&
      !(fs::exists(o.manifest_dir) && fs::exists(e.resume_dir) && fs::equivalent(o.manifest_dir, e.resume_dir)))
    throw Error("--resume " + e.resume_dir + " carries its own manifest; drop --manifest or point it there");
  if (!e.resume_dir.empty()) read_resume_step(e);  // before any rank starts
  if (!o.inputs.empty() && e.synthetic) throw Error("give either --inputs or --synthetic, not both");
  if (!e.output_path.empty() && e.train) throw Error("--output is for inference; training writes with --save DIR");
  if (!e.save_dir.empty() && !e.train) throw Error("--save needs --train");
  if ((o.save_every_given || o.keep_given) && e.save_dir.empty())
    throw Error(std::string(o.save_every_given ? "--save-every" : "--keep") + " needs --save DIR");
  if (o.master_port && (*o.master_port < 1 || *o.master_port > 65535))
    throw Error("master port " + std::to_string(*o.master_port) + " is outside 1..65535");
  if (o.master_addr && o.master_addr->empty()) throw Error("--master-addr is empty");
  check_output_path("--output", e.output_path);
  check_output_path("--trace", e.trace_path);
  if (e.trace_memory && e.trace_path.empty()) throw Error("--trace-memory needs --trace FILE (it adds to the trace)");
  check_output_path("--timeline", e.timeline_path);
  check_output_path("--profile", e.profile_path);
  if (o.nproc > 0 && o.rank) throw Error("--rank: --nproc gives every local rank its own; drop --rank");
  check_hosts(o);
  if (o.nproc > 0 && o.world_size && *o.world_size != launched_world(o))
    throw Error("--world-size " + std::to_string(*o.world_size) + " differs from --nproc " + std::to_string(o.nproc) +
                (o.nnodes ? " x --nnodes " + std::to_string(*o.nnodes) : ""));
  if (o.rank && *o.rank < 0) throw Error("--rank " + std::to_string(*o.rank) + " is negative");
  if (o.world_size && *o.world_size < 1) throw Error("--world-size must be >= 1, not " + std::to_string(*o.world_size));
  for (const auto& d : o.dims) {
    auto eq = d.find('=');
    char* end = nullptr;
    long long v = eq == std::string::npos ? 0 : std::strtoll(d.c_str() + eq + 1, &end, 10);
    if (eq == std::string::npos || eq == 0 || end == d.c_str() + eq + 1 || *end != '\0' || v < 1)
      throw Error("--dim '" + d + "': expected NAME=N with N >= 1");
    e.dims[d.substr(0, eq)] = v;
  }
  check_device_spec(e.device);
  if (o.backend == "nccl")
    throw Error(
        "--backend nccl: not supported yet; with --device cuda, messages travel over Gloo through host "
        "memory (docs/runtime.md, GPUs)");
}

// --device cuda: LibTorch's CUDA libraries opened and a GPU chosen before
// anything else asks LibTorch about CUDA. A rank resolves its own GPU (by its
// LOCAL_RANK); a launcher checks once that there is one before starting ranks.
void open_rank_device(PprunOptions& o) {
  if (o.engine.device == "cpu" || o.print_schedule || o.simulate) return;
  int local_rank = -1;
  if (auto v = env_value("LOCAL_RANK")) local_rank = std::atoi(v->c_str());
  const c10::Device d = open_device(o.engine.device, local_rank);
  if (o.nproc == 0) o.engine.device = d.str();
}

// Runtime defaults recorded by ppc (the split spec's "defaults"), unless
// given here; a schedule file brings its own micro-batch count.
void apply_manifest_defaults(PprunOptions& o, const manifest::Manifest& m) {
  EngineOptions& e = o.engine;
  if (!o.schedule_given && m.default_schedule) e.schedule = *m.default_schedule;
  if (!o.chunks_given && m.default_chunks) e.chunks = *m.default_chunks;
  if (!o.dp_given && m.default_dp) e.dp = *m.default_dp;
  if (e.schedule_file.empty()) return;
  int in_file = microbatches_in_schedule_file(e.schedule_file);
  if (o.chunks_given && e.chunks != in_file)
    throw Error(e.schedule_file + ": the schedule runs " + std::to_string(in_file) + " micro-batches, not --chunks " +
                std::to_string(e.chunks));
  e.chunks = in_file;
  e.schedule = fs::path(e.schedule_file).filename().string();
}

// The ranks of one pipeline replica among `world` (all of them without --dp).
int pipeline_ranks(const PprunOptions& o, int world) {
  return replica_layout(world, o.engine.dp, o.engine.dp_layout).pipeline;
}

// --simulate: per-rank timelines and the summary, and the SVG with --timeline.
int simulate(PprunOptions& o, const manifest::Manifest& m, const schedule::Schedule& s, int ws, std::ostream& out) {
  const EngineOptions& e = o.engine;
  SimCosts costs = sim_costs(m, o.costs_file);
  if (!o.comm_given) o.comm_ms = costs.message.latency_ms;
  schedule::SimResult sim = simulate_plan(m, s, costs, o.comm_ms, e.dp);
  out << "simulated " << e.schedule << ": " << ws << " ranks"
      << (e.dp > 1 ? " x " + std::to_string(e.dp) + " replicas" : "") << ", " << m.stages.size() << " stages, "
      << e.chunks << " micro-batches, costs " << (o.costs_file.empty() ? "from FLOP estimates" : o.costs_file) << "\n"
      << schedule::format_timeline(sim, timeline_unit(sim)) << schedule::format_summary(sim);
  if (!e.timeline_path.empty()) {
    std::ostringstream title;
    title << "simulated " << e.schedule << ": " << ws << " ranks, " << m.stages.size() << " stages, " << e.chunks
          << " micro-batches; bubble " << std::fixed << std::setprecision(1) << sim.bubble_fraction * 100 << "%";
    std::ofstream(e.timeline_path) << schedule::timeline_svg(schedule::events_of(sim), ws, title.str(),
                                                             o.costs_file.empty() ? "FLOPs" : "ms");
  }
  return sim.deadlock ? 1 : 0;
}

// --print-schedule or --simulate: no rank runs.
int look_at_schedule(PprunOptions& o, const manifest::Manifest& m, std::ostream& out) {
  const EngineOptions& e = o.engine;
  int ws = o.world_size.value_or(0);
  if (ws == 0) {
    const char* v = std::getenv("WORLD_SIZE");
    ws = o.nproc > 0 ? launched_world(o) : v ? std::atoi(v) : static_cast<int>(m.stages.size());
  }
  ws = pipeline_ranks(o, ws);  // one replica's
  // Simulation is about training schedules unless --train is absent and the user asks for inference.
  bool train = e.train || o.simulate;
  auto s = plan_schedule(m, e.schedule, ws, e.chunks, train, e.schedule_file);
  if (!o.print_schedule) return simulate(o, m, s, ws, out);
  if (o.format == "csv") {
    out << schedule::write_csv(schedule::strip_communication(s));
  } else {
    for (size_t r = 0; r < s.size(); ++r) out << "rank " << r << ": " << schedule::to_string(s[r]) << "\n";
  }
  return 0;
}

// Bad data and a --save that would replace something else fail here, once,
// before any rank starts.
void check_run(PprunOptions& o, const LoadedManifest& lm) {
  EngineOptions& e = o.engine;
  if (!e.synthetic && o.inputs.empty())
    throw Error("give the data with --inputs FILE|DIR or --synthetic --batch-size N");
  if (!o.inputs.empty()) e.input_files = input_files(o.inputs);
  if (!e.save_dir.empty()) {
    std::error_code ec;
    if (fs::exists(e.save_dir, ec) && !fs::is_empty(e.save_dir, ec) &&
        !fs::exists(fs::path(e.save_dir) / "pprun_state.json", ec))
      throw Error(e.save_dir + ": exists and is not a pprun checkpoint; refusing to replace it (--save)");
  }
  check_stage_format(lm);
  check_data(lm.manifest, e);
}

// The rendezvous of a launch across hosts: the options, else MASTER_ADDR and
// MASTER_PORT (check_hosts made sure one of each is there).
void hosts_rendezvous(const PprunOptions& o, LaunchOptions& lo) {
  lo.master_addr = o.master_addr ? *o.master_addr : *env_value("MASTER_ADDR");
  if (o.master_port) {
    lo.master_port = *o.master_port;
    return;
  }
  const std::string port = *env_value("MASTER_PORT");
  char* end = nullptr;
  const long v = std::strtol(port.c_str(), &end, 10);
  if (*end != '\0' || v < 1 || v > 65535) throw Error("MASTER_PORT '" + port + "' is not a port in 1..65535");
  lo.master_port = static_cast<int>(v);
}

int launch(const PprunOptions& o, const manifest::Manifest& m) {
  // Across hosts, the ranks check the plan: where the hosts disagree (another
  // --nproc), they tell the others, which a launcher failing here could not.
  if (!o.nnodes || *o.nnodes == 1)
    plan_schedule(m, o.engine.schedule, pipeline_ranks(o, o.nproc), o.engine.chunks, o.engine.train,
                  o.engine.schedule_file);
  LaunchOptions lo;
  lo.executable = fs::read_symlink("/proc/self/exe").string();
  lo.args = o.child_args;
  lo.nproc = o.nproc;
  lo.nnodes = o.nnodes.value_or(1);
  lo.node_rank = o.node_rank.value_or(0);
  if (lo.nnodes > 1) hosts_rendezvous(o, lo);
  if (o.master_addr) lo.master_addr = *o.master_addr;
  if (o.master_port) lo.master_port = *o.master_port;
  try {
    if (lo.master_port == 0) lo.master_port = pick_free_port(lo.master_addr);
  } catch (const std::runtime_error& e) {  // the address is the user's
    std::string what = e.what();
    throw Error("--master-addr '" + lo.master_addr + "' is unusable: " + what.substr(what.rfind("': ") + 3));
  }
  lo.threads_per_rank = o.threads;
  return launch_local_ranks(lo);
}

int run_rank(const PprunOptions& o, const LoadedManifest& lm, std::ostream& out) {
  RendezvousOptions ro;
  BlasInUse blas;
  try {
    ro = rendezvous_from_env(o.master_addr, o.master_port, o.rank, o.world_size,
                             std::chrono::milliseconds(static_cast<int64_t>(o.timeout_s * 1000)));
  } catch (const std::invalid_argument& e) { throw Error(e.what()); }
  // Check the placement before connecting, so bad input fails fast on every
  // rank (across hosts, where the hosts may disagree, the others learn of it).
  try {
    const ReplicaLayout layout = replica_layout(ro.world_size, o.engine.dp, o.engine.dp_layout);
    stages_of_rank(static_cast<int>(lm.manifest.stages.size()), layout.pipeline, layout.position_of(ro.rank));
    plan_schedule(lm.manifest, o.engine.schedule, layout.pipeline, o.engine.chunks, o.engine.train,
                  o.engine.schedule_file);
    blas = choose_blas(parse_blas_choice(o.blas));
  } catch (const Error& e) { throw Error(announce_bad_start(ro, e.what())); }
  const int threads = set_threads(o.threads);
  std::unique_ptr<Transport> transport;
  try {
    transport = connect_gloo(ro);
    run_pipeline(lm, *transport, o.engine, out);
    transport->barrier();
    // Said after the run, so that a run stopped by bad input says one line.
    if (ro.rank == 0 && !o.engine.quiet)
      out << "float32 GEMMs on " << blas.describe() << ", " << threads << " intra-op thread"
          << (threads == 1 ? "" : "s") << " per rank\n";
  } catch (const PeerError& e) {
    std::cerr << "pprun: rank " << ro.rank << ": error: " << e.what() << "\n";
    std::cerr.flush();
    std::_Exit(1);  // peers are gone: do not wait on them while tearing down
  }
  return 0;
}

}  // namespace

int run_pprun(PprunOptions& o, std::ostream& out) {
  check_options(o);
  open_rank_device(o);
  LoadedManifest lm = load_and_verify(o.manifest_dir);
  apply_manifest_defaults(o, lm.manifest);
  if (o.print_schedule || o.simulate) return look_at_schedule(o, lm.manifest, out);
  check_run(o, lm);
  if (o.nproc > 0) return launch(o, lm.manifest);
  return run_rank(o, lm, out);
}

// Tensors of the same sizes are freed and allocated again every micro-batch
// (weight gradients, activations). With glibc's defaults, blocks above the
// mmap threshold come fresh from the kernel each time and the heap is trimmed
// back, so every reuse page-faults its memory in again: on a VM that made a
// training step with 8 micro-batches 4x slower than with one. Keep freed
// memory in the process, as PyTorch's caching allocators do.
void keep_freed_memory() {
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

}  // namespace ppc::runtime
