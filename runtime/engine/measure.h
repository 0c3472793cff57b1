// Measurement of a run, apart from the engine that it observes: trace events
// per action, per-step statistics gathered on rank 0 (the measured bubble
// next to the simulated one), profiles for `ppc split --costs` and
// `pprun --simulate --costs`, and the Chrome trace / SVG timeline files.
// The engine tells it what happens (an action's start and end, a compute
// action getting its data, a message received, the loss's time) and hands it
// what it needs at the end of a step and of the run; it never drives the
// engine. Not part of the runtime's interface.
#pragma once

#include <ATen/core/Tensor.h>

#include <chrono>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "runtime/engine/engine.h"
#include "runtime/engine/replicas.h"
#include "runtime/schedule/action.h"
#include "runtime/schedule/stage_graph.h"
#include "runtime/schedule/timeline.h"
#include "runtime/stages/node_time.h"

namespace ppc::profile {
struct Profile;
}

namespace ppc::runtime::engine_detail {

struct LocalStage;

/// What the measurement observes, fixed for the run.
struct MeasuredRun {
  Transport& transport;  ///< this replica's pipeline
  Transport& world;      ///< every rank (the same as `transport` without data parallelism)
  const ReplicaLayout& layout;
  const EngineOptions& options;
  std::ostream& log;
  const manifest::Manifest& manifest;
  int num_stages = 0;
  const schedule::Schedule& plan;  ///< every rank's lowered schedule
  const schedule::StageGraph& graph;
  int64_t start_step = 0;  ///< > 0 after --resume
  int loss_stage = -1;
};

/// When an action began, by the wall clock (us since the common origin) and
/// by the running thread's CPU clock (compute actions only).
struct ActionClock {
  double begin = 0, cpu_begin = 0;
};

class Measurement {
 public:
  explicit Measurement(const MeasuredRun& run);

  /// After the ranks agreed on the run: the link probe (--profile) and the
  /// common clock (rank 0's) that every rank's timestamps read.
  void start_run();
  void start_step(int64_t step);
  /// Per-step statistics are gathered (the step log, --profile).
  bool collecting() const { return collect_; }
  /// Each action's own time is asked for (--profile, --trace, --timeline): on
  /// a GPU the engine then waits for an action's kernels before it ends, so
  /// that the action is timed running, not queued.
  bool timing_actions() const { return tracing_ || !o_.profile_path.empty(); }

  double now_us() const {
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - origin_).count();
  }
  ActionClock begin_action(const schedule::Action& a);
  /// A compute action has its data: its time (and CPU time) runs from here.
  void compute_has_data() {
    compute_start_ = now_us();
    compute_cpu_start_ = thread_cpu_us();
  }
  void end_action(const schedule::Action& a, const ActionClock& c);
  /// A span outside the schedule's actions (the wait for sends, the tied
  /// gradients' all-reduce, the optimizer step), for the trace.
  void record(const std::string& name, const std::string& category, int stage, int microbatch, double start,
              double end);
  /// --profile: a message of `bytes` on stage edge producer -> consumer
  /// (direction 0: activations, 1: gradients).
  bool counting_messages() const { return !message_count_.empty(); }
  void message_received(int direction, int producer, int consumer, double bytes);
  /// Time spent computing the loss (inside the loss stage's F).
  void add_loss_us(double us) { loss_us_ += us; }

  /// The step's statistics to rank 0 and, there, the step's log line. A
  /// rank other than 0 sends without waiting: the send joins `sends`, which
  /// the engine waits on with its own. `secs`: this rank's step time; rank 0
  /// logs the whole step's, to the end of the last rank's last action.
  void end_step(int64_t step, double secs, double step_loss, int64_t batch_samples,
                std::vector<std::unique_ptr<Work>>& sends, std::vector<at::Tensor>& keepalive);
  /// After the last step: the trace and timeline (--trace, --timeline), and
  /// the profile (--profile) with every rank's node times and message bytes.
  void end_run(const std::vector<LocalStage>& locals, const std::vector<int64_t>& micro_sizes);

 private:
  /// CPU time of the calling thread (us): with one intra-op thread, a
  /// compute action's work, whatever else shares its core.
  static double thread_cpu_us();
  /// --trace: a sample of this rank's heap in use (a counter in the trace).
  void record_heap(double at);
  void write_trace_and_timeline();
  void write_profile(const std::vector<int64_t>& micro_sizes);
  /// The profile's stage edges (mean bytes per message each way), also
  /// added to `graph`.
  void profile_edges(profile::Profile& p, schedule::StageGraph& graph) const;
  /// The profile's mean F/B/I/W (and CPU) ms per micro-batch, per stage and node.
  void profile_stages(profile::Profile& p) const;
  /// What a message costs in the running pipeline (see measure.cpp).
  void calibrate_messages(profile::Profile& p, const schedule::StageGraph& graph) const;
  /// --profile: ranks 0 and 1 time a ping-pong of 4 bytes and of 4 MiB.
  void measure_link();
  /// Shifts origin_ so that every rank's now_us() reads rank 0's clock: the
  /// offset of the fastest of several timestamp round trips with rank 0.
  void align_clocks();
  /// --profile: every rank sends rank 0 its stages' per-node forward and backward times.
  void gather_node_times(const std::vector<LocalStage>& locals);
  /// --profile: every rank sends rank 0 the bytes of the messages it received.
  void gather_message_bytes();

  Transport& t_;
  Transport& w_;
  const ReplicaLayout& layout_;
  const int replica_;
  const EngineOptions& o_;
  std::ostream& log_;
  const manifest::Manifest& m_;
  const int num_stages_;
  const schedule::Schedule& plan_;
  const schedule::StageGraph& graph_;
  const int64_t start_step_;
  const int loss_stage_;

  std::chrono::steady_clock::time_point origin_;  ///< common start (after a barrier)
  bool tracing_ = false, collect_ = false;
  int64_t step_ = 0;
  // This step.
  double compute_start_ = -1;      ///< when the running compute action got its data
  double compute_cpu_start_ = -1;  ///< thread_cpu_us() at compute_start_
  double busy_ = 0, first_start_ = 0, last_end_ = 0;
  double first_compute_ = -1;       ///< this step's first compute action's start (after its wait), us
  std::vector<double> stage_cost_;  ///< per stage F, B, I, W time (us)
  std::vector<double> stage_cpu_;   ///< the same, CPU time of the thread running them (us)
  double loss_us_ = 0;              ///< time in compute_loss (part of the loss stage's F)
  // Over the measured steps (rank 0).
  double profile_loss_sum_ = 0;          ///< per micro-batch
  std::vector<double> profile_sum_;      ///< all stages
  std::vector<double> profile_cpu_sum_;  ///< the same, CPU time
  int profile_steps_ = 0;
  std::vector<double> profile_step_ms_;      ///< measured step times of the profiled steps
  std::vector<double> profile_overhead_ms_;  ///< their time outside the pipeline
  std::vector<schedule::TraceEvent> events_;
  /// --profile (empty otherwise): per direction and stage edge (2 x S x S),
  /// bytes received and messages.
  std::vector<double> message_bytes_, message_count_;
  std::vector<std::vector<NodeTime>> node_us_;           ///< rank 0: per stage, totals
  double link_latency_ms_ = -1, link_bytes_per_s_ = -1;  ///< measured (rank 0), -1: not measured
};

}  // namespace ppc::runtime::engine_detail
