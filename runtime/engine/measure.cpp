// Measuring a run (measure.h): trace events per action, per-step statistics
// gathered on rank 0 (measured vs simulated bubble), profiles for the
// simulator, and the Chrome trace / SVG timeline files.
#include "runtime/engine/measure.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <malloc.h>
#include <sched.h>
#include <time.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <thread>

#include "runtime/engine/engine_internal.h"
#include "runtime/engine/wire.h"
#include "runtime/schedule/calibration.h"
#include "runtime/schedule/simulator.h"
#include "schemas/profile.h"

namespace ppc::runtime::engine_detail {

Measurement::Measurement(const MeasuredRun& run)
    : t_(run.transport),
      w_(run.world),
      layout_(run.layout),
      replica_(run.layout.replica_of(run.world.rank())),
      o_(run.options),
      log_(run.log),
      m_(run.manifest),
      num_stages_(run.num_stages),
      plan_(run.plan),
      graph_(run.graph),
      start_step_(run.start_step),
      loss_stage_(run.loss_stage) {
  tracing_ = !o_.trace_path.empty() || !o_.timeline_path.empty();
  collect_ = !o_.quiet || !o_.profile_path.empty();
}

void Measurement::start_run() {
  if (!o_.profile_path.empty()) {
    measure_link();
    const size_t S = static_cast<size_t>(num_stages_);
    message_bytes_.assign(2 * S * S, 0.0);
    message_count_.assign(2 * S * S, 0.0);
  }
  origin_ = std::chrono::steady_clock::now();
  if (collect_ || tracing_) align_clocks();
}

void Measurement::start_step(int64_t step) {
  step_ = step;
  busy_ = 0;
  first_start_ = -1;
  first_compute_ = -1;
  stage_cost_.assign(4 * num_stages_, 0.0);
  stage_cpu_.assign(4 * num_stages_, 0.0);
  loss_us_ = 0;
}

ActionClock Measurement::begin_action(const schedule::Action& a) {
  ActionClock c;
  c.begin = now_us();
  c.cpu_begin = a.is_compute() ? thread_cpu_us() : 0.0;  // a clock read only where it is used
  compute_start_ = compute_cpu_start_ = -1;
  return c;
}

void Measurement::end_action(const schedule::Action& a, const ActionClock& c) {
  // Both clocks first, the CPU's inside the wall clock's interval as at the
  // start: the recording below is in neither (a stage of a few us would
  // otherwise show more CPU time than wall time).
  const double cpu_end = a.is_compute() ? thread_cpu_us() : 0.0;
  const double end = now_us();
  if (first_start_ < 0) first_start_ = c.begin;
  last_end_ = end;
  if (!a.is_compute()) {
    record(schedule::to_string(a), schedule::kind_name(a.kind), a.stage, a.microbatch, c.begin, end);
    if (o_.trace_memory) record_heap(end);
    return;
  }
  // A compute action first waits for its data (the receive was posted earlier).
  double start = compute_start_ >= 0 ? compute_start_ : c.begin;
  if (first_compute_ < 0) first_compute_ = start;
  if (start - c.begin > 20) record("wait", "wait", a.stage, a.microbatch, c.begin, start);
  record(schedule::to_string(a), schedule::kind_name(a.kind), a.stage, a.microbatch, start, end);
  busy_ += end - start;
  const int k = 4 * a.stage + (a.kind == Action::F ? 0 : a.kind == Action::B ? 1 : a.kind == Action::I ? 2 : 3);
  stage_cost_[k] += end - start;
  stage_cpu_[k] += cpu_end - (compute_cpu_start_ >= 0 ? compute_cpu_start_ : c.cpu_begin);
  if (o_.trace_memory) record_heap(end);  // after the CPU clock's reading: the sample costs tens of us
}

// The heap in use (glibc's count of allocated bytes, mmapped blocks
// included): with pprun's malloc settings every tensor's memory comes from
// it, so it is the rank's tensors plus the runtime's own allocations.
void Measurement::record_heap(double at) {
  const struct mallinfo2 mi = mallinfo2();
  schedule::TraceEvent e;
  e.name = "heap";
  e.category = "memory";
  e.rank = w_.rank();
  e.step = static_cast<int>(step_);
  e.start_us = e.end_us = at;
  e.value = static_cast<double>(mi.uordblks + mi.hblkhd) / (1024.0 * 1024.0);
  events_.push_back(std::move(e));
}

void Measurement::message_received(int direction, int producer, int consumer, double bytes) {
  const size_t S = static_cast<size_t>(num_stages_);
  const size_t k =
      (static_cast<size_t>(direction) * S + static_cast<size_t>(producer)) * S + static_cast<size_t>(consumer);
  message_bytes_[k] += bytes;
  message_count_[k] += 1;
}

void Measurement::end_run(const std::vector<LocalStage>& locals, const std::vector<int64_t>& micro_sizes) {
  if (tracing_) write_trace_and_timeline();
  if (!o_.profile_path.empty()) {
    gather_node_times(locals);
    gather_message_bytes();
  }
  if (!o_.profile_path.empty() && t_.rank() == 0 && replica_ == 0) write_profile(micro_sizes);
}

void Measurement::record(const std::string& name, const std::string& category, int stage, int microbatch, double start,
                         double end) {
  if (!tracing_) return;
  schedule::TraceEvent e;
  e.name = name;
  e.category = category;
  e.rank = w_.rank();
  e.stage = stage;
  e.microbatch = microbatch;
  e.step = static_cast<int>(step_);
  e.start_us = start;
  e.end_us = end;
  events_.push_back(std::move(e));
}

// Every rank sends rank 0 its part of the step's statistics: the loss, its
// busy time, first/last action times and first compute's start, and its
// stages' F/B/I/W time. Rank 0 sums them and logs the step with the measured
// bubble next to the one the simulator predicts from the same measured stage
// times. Point-to-point, not a collective: if a rank dies here, the error
// names it.
void Measurement::end_step(int64_t step, double secs, double step_loss, int64_t batch_samples,
                           std::vector<std::unique_ptr<Work>>& sends, std::vector<at::Tensor>& keepalive) {
  const double measured_at = now_us();  // `secs` ends here on this rank's clock (rank 0's, aligned)
  const int P = t_.world_size(), S = num_stages_;
  const int first_compute = 2 + 3 * P + 4 * S;  // P entries: each rank's first compute start
  const int cpu = first_compute + P;            // 4 S entries: the stages' CPU time
  std::vector<double> v(cpu + 4 * S, 0.0);
  v[0] = step_loss;
  v[1 + t_.rank()] = busy_;
  v[1 + P + t_.rank()] = first_start_;
  v[1 + 2 * P + t_.rank()] = last_end_;
  for (int k = 0; k < 4 * S; ++k) v[1 + 3 * P + k] = stage_cost_[k];
  v[1 + 3 * P + 4 * S] = loss_us_;
  v[first_compute + t_.rank()] = first_compute_;
  for (int k = 0; k < 4 * S; ++k) v[cpu + k] = stage_cpu_[k];
  at::Tensor mine = at::tensor(v, at::kDouble);
  if (t_.rank() != 0) {
    // Waited on at the end of the next step, with the other sends.
    sends.push_back(t_.isend(mine, 0, wire::Tags::kStats));
    keepalive.push_back(mine);
    return;
  }
  at::Tensor sum = mine.clone();
  for (int r = 1; r < P; ++r) {
    at::Tensor theirs = at::empty_like(mine);
    t_.irecv(theirs, r, wire::Tags::kStats)->wait();
    sum += theirs;
  }
  const double* g = sum.data_ptr<double>();
  double loss = g[0];
  if (replica_ != 0) {  // this replica's loss to rank 0, which logs the step
    at::Tensor l = at::full({1}, loss, at::kDouble);
    sends.push_back(w_.isend(l, 0, wire::Tags::kReplicaLoss));
    keepalive.push_back(l);
    return;
  }
  for (int d = 1; d < layout_.replicas; ++d) {  // every other replica's first rank reports
    at::Tensor l = at::zeros({1}, at::kDouble);
    w_.irecv(l, layout_.rank_of(d, 0), wire::Tags::kReplicaLoss)->wait();
    loss += l.item<double>();
  }
  double busy = 0, start = g[1 + P], end = 0;
  for (int r = 0; r < P; ++r) {
    busy += g[1 + r];
    start = std::min(start, g[1 + P + r]);
    end = std::max(end, g[1 + 2 * P + r]);
  }
  double span = std::max(end - start, 1e-9);
  // The step ends when the last rank's last action does: in inference rank 0
  // is done before the last rank has computed its last micro-batches.
  if (end > measured_at) secs += (end - measured_at) / 1e6;
  // The pipeline, as the simulator sees it, starts with the first compute.
  double compute_start = end;
  for (int r = 0; r < P; ++r)
    if (g[first_compute + r] >= 0) compute_start = std::min(compute_start, g[first_compute + r]);
  double measured = 1 - busy / (P * span);
  // The simulator on this step's measured per-micro-batch stage times.
  std::vector<schedule::StageCost> costs(S);
  for (int s = 0; s < S; ++s) {
    const double* c = g + 1 + 3 * P + 4 * s;
    costs[s] = schedule::StageCost{c[0] / o_.chunks, c[1] / o_.chunks, c[2] / o_.chunks, c[3] / o_.chunks};
  }
  schedule::SimOptions so;
  so.costs = costs;
  schedule::SimResult sim = schedule::simulate(plan_, S, graph_, so);
  if (o_.steps == 1 || step > start_step_) {  // the first step of several pays one-time costs
    if (profile_sum_.empty()) profile_sum_.assign(4 * S, 0.0), profile_cpu_sum_.assign(4 * S, 0.0);
    for (int k = 0; k < 4 * S; ++k) {
      profile_sum_[k] += g[1 + 3 * P + k] / o_.chunks;
      profile_cpu_sum_[k] += g[cpu + k] / o_.chunks;
    }
    profile_loss_sum_ += g[1 + 3 * P + 4 * S] / o_.chunks;
    profile_step_ms_.push_back(secs * 1000);
    profile_overhead_ms_.push_back(std::max(0.0, secs * 1000 - (end - compute_start) / 1000));
    ++profile_steps_;
  }
  if (o_.quiet) return;
  std::ostringstream line;
  line << "step " << (step + 1) << "/" << (start_step_ + o_.steps);
  if (o_.train) line << "  loss " << std::setprecision(6) << std::fixed << loss;
  line << std::setprecision(1) << std::fixed << "  samples/s " << (static_cast<double>(batch_samples) / secs)
       << "  step " << std::setprecision(2) << secs * 1000 << " ms" << std::setprecision(1) << "  bubble "
       << measured * 100 << "% (simulated " << sim.bubble_fraction * 100 << "%)";
  log_ << line.str() << std::endl;
}

// Each rank asks rank 0 for its clock several times; the round trip with the
// least delay bounds the offset best (rank 0's reading is taken, on average,
// halfway through it). The barrier only starts the ranks' clocks within its
// own exit skew, which on a busy machine is milliseconds: enough to turn the
// measured bubble and the trace's cross-rank picture into fiction.
// Every replica reads one clock: rank 0's.
void Measurement::align_clocks() {
  const int P = w_.world_size();
  if (P < 2) return;
  const int rounds = 16;
  at::Tensor ping = at::zeros({1}, at::kDouble), stamp = at::zeros({1}, at::kDouble);
  if (w_.rank() == 0) {
    for (int r = 1; r < P; ++r) {
      for (int i = 0; i < rounds; ++i) {
        w_.irecv(ping, r, wire::Tags::kProbe)->wait();
        stamp[0] = now_us();
        w_.isend(stamp, r, wire::Tags::kProbe)->wait();
      }
    }
    return;
  }
  double best_rtt = 1e300, offset = 0;
  for (int i = 0; i < rounds; ++i) {
    double t0 = now_us();
    w_.isend(ping, 0, wire::Tags::kProbe)->wait();
    w_.irecv(stamp, 0, wire::Tags::kProbe)->wait();
    double t1 = now_us();
    if (t1 - t0 < best_rtt) {
      best_rtt = t1 - t0;
      offset = stamp.item<double>() - (t0 + t1) / 2;
    }
  }
  origin_ -= std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double, std::micro>(offset));
}

double Measurement::thread_cpu_us() {
  timespec ts{};
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

void Measurement::measure_link() {
  if (t_.world_size() < 2 || t_.rank() > 1 || replica_ != 0) return;
  auto one_way_ms = [&](int64_t floats, int reps) {
    at::Tensor buf = at::zeros({floats}, at::kFloat);
    std::vector<double> ms;
    for (int i = 0; i <= reps; ++i) {  // the first round trip sets up the connection
      double t0 = now_us();
      if (t_.rank() == 0) {
        t_.isend(buf, 1, wire::Tags::kProbe)->wait();
        t_.irecv(buf, 1, wire::Tags::kProbe)->wait();
      } else {
        t_.irecv(buf, 0, wire::Tags::kProbe)->wait();
        t_.isend(buf, 0, wire::Tags::kProbe)->wait();
      }
      if (i > 0) ms.push_back((now_us() - t0) / 2000.0);
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
  };
  const int64_t big = int64_t{1} << 20;
  double small_ms = one_way_ms(1, 40), big_ms = one_way_ms(big, 10);
  link_latency_ms_ = small_ms;
  link_bytes_per_s_ = static_cast<double>(big * 4) / (std::max(big_ms - small_ms, 1e-6) / 1000.0);
}

void Measurement::gather_node_times(const std::vector<LocalStage>& locals) {
  node_us_.assign(num_stages_, {});
  if (t_.rank() == 0) {
    for (auto& ls : locals) node_us_[ls.index] = ls.module->node_times_us();
    for (int r = 1; r < t_.world_size(); ++r) {
      at::Tensor count = at::zeros({1}, at::kLong);
      t_.irecv(count, r, wire::Tags::kProfile)->wait();
      if (count.item<int64_t>() == 0) continue;
      at::Tensor meta = at::empty({3 * count.item<int64_t>()}, at::kLong);
      t_.irecv(meta, r, wire::Tags::kProfile)->wait();
      for (int64_t k = 0; k < count.item<int64_t>(); ++k) {
        int64_t s = meta[3 * k].item<int64_t>(), nbytes = meta[3 * k + 1].item<int64_t>(),
                n = meta[3 * k + 2].item<int64_t>();
        if (n == 0) continue;
        at::Tensor names = at::empty({nbytes}, at::kByte), us = at::empty({2 * n}, at::kDouble);
        t_.irecv(names, r, wire::Tags::kProfile)->wait();
        t_.irecv(us, r, wire::Tags::kProfile)->wait();
        std::string all(reinterpret_cast<const char*>(names.data_ptr<uint8_t>()), static_cast<size_t>(nbytes));
        std::istringstream lines(all);
        std::string name;
        auto& out = node_us_.at(static_cast<size_t>(s));
        const double* t = us.data_ptr<double>();
        for (int64_t i = 0; i < n && std::getline(lines, name); ++i) out.push_back({name, t[2 * i], t[2 * i + 1]});
      }
    }
    return;
  }
  // Names joined by newlines, then forward and backward times, interleaved:
  // two messages per stage.
  std::vector<int64_t> meta;
  std::vector<at::Tensor> payload;
  for (auto& ls : locals) {
    auto times = ls.module->node_times_us();
    std::string names;
    std::vector<double> us;
    for (const auto& t : times) {
      names += t.name + "\n";
      us.push_back(t.forward_us);
      us.push_back(t.backward_us);
    }
    meta.insert(meta.end(), {ls.index, static_cast<int64_t>(names.size()), static_cast<int64_t>(times.size())});
    if (us.empty()) continue;
    at::Tensor bytes = at::empty({static_cast<int64_t>(names.size())}, at::kByte);
    std::copy(names.begin(), names.end(), reinterpret_cast<char*>(bytes.data_ptr<uint8_t>()));
    payload.push_back(bytes);
    payload.push_back(at::tensor(us, at::kDouble));
  }
  at::Tensor count = at::full({1}, static_cast<int64_t>(locals.size()), at::kLong);
  t_.isend(count, 0, wire::Tags::kProfile)->wait();
  if (locals.empty()) return;
  at::Tensor m = at::tensor(meta, at::kLong);
  t_.isend(m, 0, wire::Tags::kProfile)->wait();
  for (auto& p : payload) t_.isend(p, 0, wire::Tags::kProfile)->wait();
}

void Measurement::gather_message_bytes() {
  if (t_.world_size() < 2) return;
  const size_t S = static_cast<size_t>(num_stages_);
  at::Tensor mine = at::empty({static_cast<int64_t>(4 * S * S)}, at::kDouble);
  std::copy(message_bytes_.begin(), message_bytes_.end(), mine.data_ptr<double>());
  std::copy(message_count_.begin(), message_count_.end(), mine.data_ptr<double>() + 2 * S * S);
  if (t_.rank() != 0) {
    t_.isend(mine, 0, wire::Tags::kProfile)->wait();
    return;
  }
  for (int r = 1; r < t_.world_size(); ++r) {
    at::Tensor theirs = at::empty_like(mine);
    t_.irecv(theirs, r, wire::Tags::kProfile)->wait();
    const double* v = theirs.data_ptr<double>();
    for (size_t k = 0; k < 2 * S * S; ++k) {
      message_bytes_[k] += v[k];
      message_count_[k] += v[2 * S * S + k];
    }
  }
}

namespace {

// The cores this process may run on (its affinity mask: taskset, cgroup
// cpusets), else the machine's.
int usable_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

}  // namespace

void Measurement::profile_edges(profile::Profile& p, schedule::StageGraph& graph) const {
  // The messages between ranks: mean bytes per micro-batch on each stage
  // edge, each way. The calibration below charges them at the ping-pong's
  // bandwidth, so that a split sending more bytes is predicted to pay more.
  const size_t S = static_cast<size_t>(num_stages_);
  for (size_t a = 0; a < S; ++a)
    for (size_t b = a + 1; b < S; ++b) {
      const size_t fwd = a * S + b, bwd = S * S + a * S + b;
      if (message_count_[fwd] == 0 && message_count_[bwd] == 0) continue;
      profile::EdgeBytes e;
      e.from = static_cast<int>(a);
      e.to = static_cast<int>(b);
      if (message_count_[fwd] > 0) e.bytes = message_bytes_[fwd] / message_count_[fwd];
      if (message_count_[bwd] > 0) e.grad_bytes = message_bytes_[bwd] / message_count_[bwd];
      p.edges.push_back(e);
      graph.bytes[{e.from, e.to}] = {e.bytes, e.grad_bytes};
    }
}

void Measurement::profile_stages(profile::Profile& p) const {
  // Mean F/B/I/W ms per micro-batch of each stage over the profiled steps,
  // and with one intra-op thread, the CPU time of their thread: the work,
  // without the waits for a core where ranks time-share them.
  const bool one_thread = at::get_num_threads() == 1;
  const double calls = std::max(1, profile_steps_) * static_cast<double>(o_.chunks);
  for (int s = 0; s < num_stages_; ++s) {
    auto at = [&](const std::vector<double>& sum, int k) {
      return profile_steps_ ? sum[4 * s + k] / profile_steps_ / 1000.0 : 0.0;
    };
    profile::StageTimes t;
    t.f = at(profile_sum_, 0);
    t.b = at(profile_sum_, 1);
    t.i = at(profile_sum_, 2);
    t.w = at(profile_sum_, 3);
    if (one_thread && profile_steps_)
      t.cpu_ms = at(profile_cpu_sum_, 0) +
                 (t.b > 0 ? at(profile_cpu_sum_, 1) : at(profile_cpu_sum_, 2) + at(profile_cpu_sum_, 3));
    t.first_node = m_.stages[s].first_node;
    t.last_node = m_.stages[s].last_node;
    // Per node: forward and backward ms per micro-batch, measured inside the
    // stage (ONNX stages), for ppc to spread the stage's F and B by rather
    // than by FLOPs.
    if (s < static_cast<int>(node_us_.size()))
      for (const auto& n : node_us_[s])
        t.nodes.push_back({n.name, n.forward_us / calls / 1000.0, n.backward_us / calls / 1000.0});
    p.stages.push_back(std::move(t));
  }
}

void Measurement::calibrate_messages(profile::Profile& p, const schedule::StageGraph& graph) const {
  if (profile_step_ms_.empty() || t_.world_size() <= 1) return;
  // Charged to the ranks rather than in flight because that is what carries
  // over to another split here: calibrated in flight, a message on an
  // imbalanced split's critical path (few messages, the slow stage's backlog
  // hides the rest) came out twice what it did on a balanced one. And in
  // proportion to the idle time rather than per message alike: with 3 ranks
  // on 2 cores, a split sending 1 MiB messages cost 0.37-0.40 ms of rank
  // time per message where one sending 512 KiB cost 0.20-0.26.
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  schedule::RunMeasurements run;
  // The simulator's costs: each stage's work, shared out over the host's
  // cores where its ranks time-shared them.
  const profile::Profile work = p.as_work();
  for (int s = 0; s < num_stages_; ++s) {
    const auto& t = work.stages[s];
    run.stage_ms.push_back(schedule::StageCost{t.f, t.b, t.i, t.w});
  }
  run.cores = p.shared_cores();
  run.link_latency_ms = link_latency_ms_;
  run.link_bytes_per_second = link_bytes_per_s_;
  run.median_step_ms = median(profile_step_ms_);
  run.median_overhead_ms = median(profile_overhead_ms_);
  const schedule::Calibration c = schedule::calibrate_message_cost(plan_, num_stages_, graph, run);
  p.step_ms = c.pipeline_step_ms + run.median_overhead_ms;
  p.overhead_ms = run.median_overhead_ms;
  p.simulated_step_ms = c.simulated_step_ms;
  p.has_link = true;
  p.message_ms = c.message.latency_ms;
  p.message_bytes_per_second = c.message.bytes_per_second;
  p.message_cpu_ms = c.message.rank_ms;
  p.message_cpu_bytes_per_second = c.message.rank_bytes_per_second;
}

void Measurement::write_profile(const std::vector<int64_t>& micro_sizes) {
  profile::Profile p;
  p.schedule = o_.schedule;
  p.chunks = o_.chunks;
  p.steps_measured = profile_steps_;
  // What `ppc split --costs` needs to put the times on the model's nodes.
  p.source_sha256 = m_.source.sha256;
  double samples = 0;
  for (int64_t n : micro_sizes) samples += static_cast<double>(n);
  p.micro_batch_size = micro_sizes.empty() ? 1.0 : samples / static_cast<double>(micro_sizes.size());
  // The loss (and, with --synthetic, its target) is computed in the loss
  // stage's F: its share, per micro-batch, so ppc can put it on the node
  // producing the model output rather than spread it over the stage.
  if (o_.train) {
    p.loss_stage = loss_stage_;
    p.loss_ms = profile_steps_ ? profile_loss_sum_ / profile_steps_ / 1000.0 : 0.0;
  }
  // Rank 0's host: are the profiled times wall times of ranks time-sharing
  // its cores?
  p.host.cores = usable_cores();
  p.host.threads = at::get_num_threads();
  if (const char* n = std::getenv("LOCAL_WORLD_SIZE")) p.host.local_ranks = std::max(0, std::atoi(n));
  p.host.ranks = t_.world_size();
  // The link between ranks 0 and 1: one small message's one-way time and the
  // bandwidth of a 4 MiB one (the same machine's loopback for --nproc).
  if (link_latency_ms_ >= 0) {
    p.has_link = true;
    p.latency_ms = link_latency_ms_;
    p.bytes_per_second = link_bytes_per_s_;
  }
  schedule::StageGraph graph = graph_;
  profile_edges(p, graph);
  profile_stages(p);
  calibrate_messages(p, graph);
  std::ofstream(o_.profile_path) << profile::profile_json(p);
  if (p.host.oversubscribed())
    log_ << "note: " << o_.profile_path << ": measured with " << p.host.summary()
         << (p.has_work_times()
                 ? ": its stage times include waiting for a core; the simulator shares the stages' CPU times out "
                   "over the cores instead"
                 : ": its times include waiting for a core, which the simulator (a core per rank and thread) "
                   "does not model without one thread per rank")
         << std::endl;
}

// Every rank's events travel to rank 0 as numbers (count, then 6 per event).
void Measurement::write_trace_and_timeline() {
  static const std::vector<std::string> other = {"wait", "allreduce", "optimizer", "dp", "memory"};
  auto code_of = [&](const schedule::TraceEvent& e) -> double {
    for (int k = Action::F; k <= Action::RECV_B; ++k)
      if (e.category == schedule::kind_name(static_cast<Action::Kind>(k))) return k;
    for (size_t k = 0; k < other.size(); ++k)
      if (e.category == other[k]) return 100 + static_cast<double>(k);
    return 100;
  };
  std::vector<schedule::TraceEvent> all;
  for (int r = 0; r < w_.world_size(); ++r) {
    at::Tensor count = at::zeros({1}, at::kLong);
    at::Tensor data;
    if (r == w_.rank()) {
      count[0] = static_cast<int64_t>(events_.size());
      std::vector<double> v;
      for (const auto& e : events_) {
        const double last = e.category == "memory" ? e.value : e.end_us;  // a sample has no end: its value
        for (double x : {code_of(e), double(e.stage), double(e.microbatch), double(e.step), e.start_us, last})
          v.push_back(x);
      }
      data = at::tensor(v, at::kDouble);
      if (v.empty()) data = at::zeros({0}, at::kDouble);
    }
    if (r != 0) {
      if (w_.rank() == r) {
        w_.isend(count, 0, wire::Tags::kTrace)->wait();
        if (data.numel()) w_.isend(data, 0, wire::Tags::kTrace)->wait();
      } else if (w_.rank() == 0) {
        w_.irecv(count, r, wire::Tags::kTrace)->wait();
        data = at::empty({count.item<int64_t>() * 6}, at::kDouble);
        if (data.numel()) w_.irecv(data, r, wire::Tags::kTrace)->wait();
      }
    }
    if (w_.rank() != 0) continue;
    const double* d = data.data_ptr<double>();
    for (int64_t i = 0; i < count.item<int64_t>(); ++i, d += 6) {
      schedule::TraceEvent e;
      int code = static_cast<int>(d[0]);
      e.rank = r;
      e.stage = static_cast<int>(d[1]);
      e.microbatch = static_cast<int>(d[2]);
      e.step = static_cast<int>(d[3]);
      e.start_us = d[4];
      e.end_us = d[5];
      if (code < 100) {
        Action a;
        a.kind = static_cast<Action::Kind>(code);
        a.stage = e.stage;
        a.microbatch = e.microbatch;
        e.name = schedule::to_string(a);
        e.category = schedule::kind_name(a.kind);
      } else {
        e.category = other.at(code - 100);
        e.name = e.category == "wait"        ? "wait"
                 : e.category == "allreduce" ? "tied-gradient all-reduce"
                 : e.category == "dp"        ? "gradient all-reduce"
                 : e.category == "memory"    ? "heap"
                                             : "optimizer step";
        if (e.category == "memory") {
          e.value = e.end_us;
          e.end_us = e.start_us;
        }
      }
      all.push_back(std::move(e));
    }
  }
  if (w_.rank() != 0) return;
  if (!o_.trace_path.empty()) std::ofstream(o_.trace_path) << schedule::chrome_trace_json(all, w_.world_size());
  if (!o_.timeline_path.empty()) {
    // The last step, shifted to start at 0.
    std::vector<schedule::TraceEvent> last;
    for (const auto& e : all)
      if (e.step == step_ && e.category != "dp" && e.category != "memory")
        last.push_back(e);  // in flight beside the actions: trace only
    double t0 = last.empty() ? 0 : last.front().start_us;
    for (const auto& e : last) t0 = std::min(t0, e.start_us);
    double t1 = t0;
    for (auto& e : last) {
      e.start_us -= t0;
      e.end_us -= t0;
      t1 = std::max(t1, e.end_us + t0);
    }
    std::ostringstream title;
    title << "pprun " << o_.schedule << ": " << w_.world_size() << " ranks, " << num_stages_ << " stages, " << o_.chunks
          << " micro-batches; step " << (step_ + 1) << " measured, " << std::setprecision(1) << std::fixed
          << (t1 - t0) / 1000 << " ms";
    std::ofstream(o_.timeline_path) << schedule::timeline_svg(last, w_.world_size(), title.str(), "ms");
  }
}

}  // namespace ppc::runtime::engine_detail
