#include "runtime/engine/engine.h"

#include <torch/csrc/autograd/autograd.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <ostream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "runtime/engine/microbatch.h"
#include "runtime/engine/pt_io.h"
#include "runtime/engine/wire.h"
#include "runtime/schedule/csv.h"
#include "runtime/schedule/lowering.h"
#include "runtime/schedule/validator.h"
#include "runtime/schedule/registry.h"
#include "runtime/schedule/simulator.h"
#include "runtime/schedule/stage_graph.h"
#include "runtime/schedule/timeline.h"
#include "runtime/stages/stage_module.h"
#include "schemas/error.h"
#include "schemas/sha256.h"

namespace fs = std::filesystem;

namespace ppc::runtime {

using schedule::Action;

namespace {

schedule::StageGraph stage_graph_of(const manifest::Manifest& m) {
  std::vector<schedule::StageEdge> edges;
  for (const auto& st : m.stages)
    for (const auto& in : st.inputs)
      if (in.from_stage >= 0) edges.push_back({in.from_stage, st.index});
  return schedule::StageGraph::from_edges(static_cast<int>(m.stages.size()), edges);
}

// Gloo has no bool type: bools travel as bytes.
at::Tensor wire_view(const at::Tensor& t) { return t.scalar_type() == at::kBool ? t.view(at::kByte) : t; }

void accumulate(at::Tensor& into, const at::Tensor& g) {
  if (!into.defined()) into = g;
  else into = into + g;
}

}  // namespace

schedule::Schedule plan_schedule(const manifest::Manifest& m, const std::string& name, int world_size, int chunks,
                                 bool train, const std::string& schedule_file) {
  int num_stages = static_cast<int>(m.stages.size());
  stages_of_rank(num_stages, world_size, 0);  // checks that world_size divides the stage count
  if (chunks < 1) throw Error("--chunks must be at least 1");
  schedule::Schedule compute;
  schedule::StageGraph graph = stage_graph_of(m);
  if (schedule_file.empty()) {
    compute = schedule::make_compute_schedule(name, world_size, num_stages / world_size, chunks, !train);
  } else {
    std::ifstream in(schedule_file);
    if (!in) throw Error(schedule_file + ": cannot open the schedule file");
    std::stringstream text;
    text << in.rdbuf();
    compute = schedule::read_csv(text.str(), schedule_file);
    for (size_t r = 0; r < compute.size(); ++r)
      for (size_t k = 0; k < compute[r].size(); ++k)
        if (compute[r][k].is_comm())
          throw Error(schedule_file + ": rank " + std::to_string(r) + ", action " + std::to_string(k) + " (" +
                      schedule::to_string(compute[r][k]) +
                      "): give compute actions only (F, B, I, W); pprun adds the sends and receives");
    if (static_cast<int>(compute.size()) != world_size)
      throw Error(schedule_file + ": has " + std::to_string(compute.size()) + " rows (ranks), the run has " +
                  std::to_string(world_size));
    if (!train) {
      for (auto& rank : compute) {
        schedule::RankSchedule kept;
        for (const auto& a : rank)
          if (a.kind == Action::F) kept.push_back(a);
        rank = std::move(kept);
      }
    }
    schedule::ValidateOptions vo;
    vo.forward_only = !train;
    std::string problem = schedule::validate(compute, num_stages, chunks, graph, vo);
    if (!problem.empty()) throw Error(schedule_file + ": " + problem);
    schedule::SimResult sim = schedule::simulate(compute, num_stages, graph);
    if (sim.deadlock) throw Error(schedule_file + ": " + sim.deadlock_message());
  }
  auto lowered = schedule::add_communication(compute, num_stages, graph);
  return schedule::hoist_receives(lowered, 1);
}

/// Micro-batches in a compute-only CSV schedule (largest index + 1).
int microbatches_in_schedule_file(const std::string& schedule_file) {
  std::ifstream in(schedule_file);
  if (!in) throw Error(schedule_file + ": cannot open the schedule file");
  std::stringstream text;
  text << in.rdbuf();
  int m = 0;
  for (const auto& rank : schedule::read_csv(text.str(), schedule_file))
    for (const auto& a : rank) m = std::max(m, a.microbatch + 1);
  if (m == 0) throw Error(schedule_file + ": the schedule has no actions");
  return m;
}

namespace {

/// The tensors stage `producer` sends to stage `consumer`, in the consumer's
/// input order: out_idx[k] of the producer's outputs is in_idx[k] of the consumer's inputs.
struct Link {
  int producer = 0, consumer = 0;
  std::vector<int> out_idx, in_idx;
  std::vector<bool> differentiable;
  bool remote = false;
};

/// A receive in flight: activations (header first) or gradients.
struct PendingRecv {
  int link = 0;
  at::Tensor header;
  std::unique_ptr<Work> header_work;
  std::vector<int> slots;  ///< which entries of the link the buffers hold (gradients)
  std::vector<at::Tensor> buffers;
  std::vector<std::unique_ptr<Work>> works;
};

/// One stage's state for one micro-batch, from its forward to its backward.
struct MicroState {
  std::vector<at::Tensor> inputs, outputs, out_grads, in_grads;
  at::Tensor loss;
  std::vector<at::Tensor> roots, root_grads;  ///< kept from I to W (split backward)
  std::vector<PendingRecv> recv_f, recv_b;
  bool forward_done = false;
};

struct LocalStage {
  int index = 0;
  const manifest::Stage* info = nullptr;
  std::unique_ptr<StageModule> module;
  std::unique_ptr<Optimizer> optimizer;
  std::map<std::string, at::Tensor> tensors;  ///< parameters and buffers by artifact name
  std::vector<at::Tensor> trainable;           ///< what W differentiates
  std::vector<MicroState> mb;
};

class Engine {
 public:
  Engine(const LoadedManifest& lm, Transport& t, const EngineOptions& o, std::ostream& log)
      : lm_(lm), m_(lm.manifest), t_(t), o_(o), log_(log) {}

  void run();

 private:
  void setup();
  void load_batch(int64_t step);
  void reset_micro_states();
  void execute(const Action& a);
  void forward(int s, int m);
  enum class Backward { Full, Input };
  void backward(int s, int m, Backward kind);
  void backward_weight(int s, int m);
  void post_recv_forward(int s, int m);
  void post_recv_backward(int s, int m);
  void send_forward(int s, int m);
  void send_backward(int s, int m);
  void finish_recv_forward(PendingRecv& p, MicroState& st, int m);
  at::Tensor compute_loss(const at::Tensor& out, int m);
  void sync_tied_gradients();
  void collect_outputs(int s, int m, const std::vector<at::Tensor>& outs);
  void write_outputs();
  void save_checkpoint(int64_t steps_done);
  void resume();
  // Measurement: trace events, per-step statistics gathered on rank 0.
  double now_us() const {
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - origin_).count();
  }
  void record(const std::string& name, const std::string& category, int stage, int microbatch, double start,
              double end);
  void report_step(int64_t step, double secs);
  void write_trace_and_timeline();
  void write_profile();

  LocalStage& local(int s) { return locals_[local_of_[s]]; }
  bool is_local(int s) const { return local_of_[s] >= 0; }
  int rank_of(int s) const { return stage_rank_[s]; }

  const LoadedManifest& lm_;
  const manifest::Manifest& m_;
  Transport& t_;
  const EngineOptions& o_;
  std::ostream& log_;

  int num_stages_ = 0;
  std::vector<LocalStage> locals_;
  std::vector<int> local_of_;
  std::vector<int> stage_rank_;  ///< where the schedule places each stage
  bool split_backward_ = false;  ///< the schedule has I/W instead of B
  std::vector<Link> links_;
  std::vector<std::vector<int>> links_in_, links_out_;  // per stage: indices into links_
  std::unique_ptr<wire::Tags> tags_;
  schedule::RankSchedule actions_;
  int loss_stage_ = -1, loss_output_ = -1;
  int64_t start_step_ = 0;

  // The current batch.
  std::map<std::string, std::vector<at::Tensor>> micro_inputs_;  // model input -> per micro-batch
  std::vector<at::Tensor> micro_targets_;
  std::vector<int64_t> micro_sizes_;
  int64_t batch_samples_ = 0;
  at::Tensor synthetic_teacher_;
  std::vector<at::Tensor> full_batch_first_input_;  // synthetic targets are computed from it
  double step_loss_ = 0;

  int in_flight_ = 0, peak_in_flight_ = 0;  // micro-batches between F and B on this rank (training)

  schedule::Schedule plan_;        ///< every rank's lowered schedule
  schedule::StageGraph graph_;
  std::chrono::steady_clock::time_point origin_;  ///< common start (after a barrier)
  bool tracing_ = false, collect_ = false;
  int64_t step_ = 0;
  double compute_start_ = -1;       ///< when the running compute action got its data
  double busy_ = 0, first_start_ = 0, last_end_ = 0;
  std::vector<double> stage_cost_;  ///< this step: per stage F, B, I, W time (us)
  std::vector<double> profile_sum_;  ///< over measured steps, all stages (rank 0)
  int profile_steps_ = 0;
  std::vector<schedule::TraceEvent> events_;

  std::vector<std::unique_ptr<Work>> pending_sends_;
  std::vector<at::Tensor> send_keepalive_;
  std::map<std::string, std::vector<at::Tensor>> collected_;  // model output -> pieces
};

void Engine::setup() {
  num_stages_ = static_cast<int>(m_.stages.size());
  const int P = t_.world_size();
  auto lowered = plan_schedule(m_, o_.schedule, P, o_.chunks, o_.train, o_.schedule_file);
  plan_ = lowered;
  graph_ = stage_graph_of(m_);
  tracing_ = !o_.trace_path.empty() || !o_.timeline_path.empty();
  collect_ = !o_.quiet || !o_.profile_path.empty();
  actions_ = lowered.at(t_.rank());
  stage_rank_ = schedule::stage_ranks(lowered, num_stages_);
  std::vector<int> mine;
  for (int s = 0; s < num_stages_; ++s)
    if (stage_rank_[s] == t_.rank()) mine.push_back(s);
  for (const auto& rank : lowered)
    for (const auto& a : rank) split_backward_ |= a.kind == Action::I;
  local_of_.assign(num_stages_, -1);

  // Links from the consumers' inputs (edges and transmitted ties).
  std::map<std::pair<int, int>, int> link_of;
  links_in_.assign(num_stages_, {});
  links_out_.assign(num_stages_, {});
  size_t max_slots = 1;
  for (const auto& st : m_.stages) {
    for (size_t i = 0; i < st.inputs.size(); ++i) {
      const auto& in = st.inputs[i];
      if (in.source == "model_input") continue;
      int p = in.from_stage;
      const auto& outs = m_.stages.at(p).outputs;
      auto it = std::find_if(outs.begin(), outs.end(), [&](const auto& o) { return o.name == in.name; });
      if (it == outs.end())
        throw Error(lm_.dir + "/manifest.json: stage " + std::to_string(st.index) + " input '" + in.name +
                    "' is not an output of stage " + std::to_string(p));
      auto key = std::make_pair(p, st.index);
      if (!link_of.count(key)) {
        link_of[key] = static_cast<int>(links_.size());
        Link l;
        l.producer = p;
        l.consumer = st.index;
        l.remote = rank_of(p) != rank_of(st.index);
        links_.push_back(l);
        links_in_[st.index].push_back(link_of[key]);
        links_out_[p].push_back(link_of[key]);
      }
      Link& l = links_[link_of[key]];
      l.out_idx.push_back(static_cast<int>(it - outs.begin()));
      l.in_idx.push_back(static_cast<int>(i));
      bool diff = true;
      for (const auto& e : m_.edges)
        if (e.value == in.name && e.producer == p) diff = e.differentiable;
      l.differentiable.push_back(diff);
      max_slots = std::max(max_slots, l.out_idx.size() + 1);
    }
  }
  tags_ = std::make_unique<wire::Tags>(num_stages_, o_.chunks, static_cast<int>(max_slots));

  if (o_.train) {
    if (m_.model_outputs.size() != 1)
      throw Error("training needs a model with exactly one output (the loss is computed from it); this one has " +
                  std::to_string(m_.model_outputs.size()));
    const auto& mo = m_.model_outputs[0];
    loss_stage_ = mo.stage;
    const auto& outs = m_.stages.at(loss_stage_).outputs;
    for (size_t j = 0; j < outs.size(); ++j)
      if (outs[j].name == mo.name) loss_output_ = static_cast<int>(j);
    if (loss_output_ < 0) throw Error(lm_.dir + "/manifest.json: model output '" + mo.name + "' is not an output of its stage");
  } else if (!o_.output_path.empty()) {
    std::set<int> ranks;
    for (const auto& mo : m_.model_outputs) ranks.insert(rank_of(mo.stage));
    if (ranks.size() > 1) throw Error("--output: the model outputs are computed on several ranks; not supported yet");
  }

  for (int s : mine) {
    local_of_[s] = static_cast<int>(locals_.size());
    LocalStage ls;
    ls.index = s;
    ls.info = &m_.stages[s];
    ls.module = load_stage(lm_, s);
    ls.module->set_training(o_.train);
    if (split_backward_) ls.module->prepare_split_backward();
    std::vector<NamedTensor> trainable;
    for (auto& [name, p] : ls.module->parameters()) {
      ls.tensors[name] = p;
      trainable.emplace_back(name, p);
      ls.trainable.push_back(p);
    }
    for (auto& [name, b] : ls.module->buffers()) ls.tensors[name] = b;
    if (o_.train) ls.optimizer = std::make_unique<Optimizer>(o_.optimizer, trainable);
    locals_.push_back(std::move(ls));
  }

  if (!o_.resume_dir.empty()) resume();
}

void Engine::resume() {
  fs::path dir(o_.resume_dir);
  fs::path state_file = dir / "pprun_state.json";
  std::ifstream in(state_file);
  if (!in) throw Error(state_file.string() + ": missing (is '" + o_.resume_dir + "' a directory written by pprun --save?)");
  nlohmann::json j;
  try {
    in >> j;
    start_step_ = j.at("step").get<int64_t>();
    std::string kind = j.at("optimizer").get<std::string>();
    if (o_.train && kind != o_.optimizer.kind)
      throw Error(state_file.string() + ": the checkpoint was trained with --optimizer " + kind + ", not " +
                  o_.optimizer.kind);
  } catch (const nlohmann::json::exception& e) {
    throw Error(state_file.string() + ": malformed: " + e.what());
  }
  if (!o_.train) return;
  for (auto& ls : locals_) {
    fs::path f = dir / ("optimizer_stage" + std::to_string(ls.index) + ".pt");
    ls.optimizer->load_state(load_tensor_dict(f.string()), f.string());
  }
}

void Engine::load_batch(int64_t step) {
  std::vector<NamedTensor> batch;
  std::string where;
  if (o_.synthetic) {
    where = "synthetic batch";
    uint64_t seed = o_.seed * 1000003ULL + static_cast<uint64_t>(step % o_.synthetic_batches);
    batch = synthetic_batch(m_, o_.batch_size, o_.dims, o_.int_high, seed);
  } else {
    where = o_.input_files.at(static_cast<size_t>(step % static_cast<int64_t>(o_.input_files.size())));
    batch = load_tensor_dict(where);
  }
  MicroBatches mb = split_batch(m_, batch, o_.chunks, o_.train && o_.loss != "model" && !o_.synthetic ? o_.target_key : "",
                                where);
  micro_inputs_ = std::move(mb.inputs);
  micro_targets_ = std::move(mb.targets);
  micro_sizes_ = std::move(mb.sizes);
  batch_samples_ = mb.batch_size;
  full_batch_first_input_.clear();
  if (o_.synthetic && o_.train && o_.loss != "model") {
    for (const auto& [name, t] : batch) {
      if (at::isFloatingType(t.scalar_type())) {
        full_batch_first_input_ = {t};
        break;
      }
    }
  }
}

void Engine::reset_micro_states() {
  for (auto& ls : locals_) {
    ls.mb.clear();
    ls.mb.resize(o_.chunks);
    for (auto& st : ls.mb) {
      st.inputs.resize(ls.info->inputs.size());
      st.out_grads.resize(ls.info->outputs.size());
    }
  }
}

void Engine::run() {
  setup();
  t_.barrier();
  origin_ = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < o_.steps; ++i) {
    step_ = start_step_ + i;
    auto t0 = std::chrono::steady_clock::now();
    load_batch(step_);
    reset_micro_states();
    step_loss_ = 0;
    busy_ = 0;
    first_start_ = -1;
    stage_cost_.assign(4 * num_stages_, 0.0);
    for (const Action& a : actions_) execute(a);
    double t = now_us();
    for (auto& w : pending_sends_) w->wait();
    pending_sends_.clear();
    send_keepalive_.clear();
    record("wait for sends", "wait", -1, -1, t, now_us());
    if (o_.train) {
      t = now_us();
      sync_tied_gradients();
      record("tied-gradient all-reduce", "allreduce", -1, -1, t, now_us());
      t = now_us();
      for (auto& ls : locals_) {
        ls.optimizer->step();
        ls.optimizer->zero_grad();
      }
      record("optimizer step", "optimizer", -1, -1, t, now_us());
    }
    if (collect_) report_step(step_, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  if (t_.rank() == 0 && !o_.quiet && o_.train)
    log_ << "rank 0 held at most " << peak_in_flight_ << " of " << o_.chunks
         << " micro-batches of activations (schedule " << o_.schedule << ")" << std::endl;
  if (tracing_) write_trace_and_timeline();
  if (!o_.profile_path.empty() && t_.rank() == 0) write_profile();
  if (!o_.train && !o_.output_path.empty()) write_outputs();
  if (o_.train && !o_.save_dir.empty()) save_checkpoint(start_step_ + o_.steps);
}

void Engine::record(const std::string& name, const std::string& category, int stage, int microbatch, double start,
                    double end) {
  if (!tracing_) return;
  schedule::TraceEvent e;
  e.name = name;
  e.category = category;
  e.rank = t_.rank();
  e.stage = stage;
  e.microbatch = microbatch;
  e.step = static_cast<int>(step_);
  e.start_us = start;
  e.end_us = end;
  events_.push_back(std::move(e));
}

// One all-reduce per step gathers on every rank: the loss, each rank's busy
// time and first/last action times, and each stage's F/B/I/W time. Rank 0
// logs the step with the measured bubble next to the one the simulator
// predicts from the same measured stage times.
void Engine::report_step(int64_t step, double secs) {
  const int P = t_.world_size(), S = num_stages_;
  std::vector<double> v(1 + 3 * P + 4 * S, 0.0);
  v[0] = step_loss_;
  v[1 + t_.rank()] = busy_;
  v[1 + P + t_.rank()] = first_start_;
  v[1 + 2 * P + t_.rank()] = last_end_;
  for (int k = 0; k < 4 * S; ++k) v[1 + 3 * P + k] = stage_cost_[k];
  std::vector<at::Tensor> ts{at::tensor(v, at::kDouble)};
  std::vector<int> all(P);
  for (int r = 0; r < P; ++r) all[r] = r;
  t_.all_reduce_sum(ts, all);
  if (t_.rank() != 0) return;
  const double* g = ts[0].data_ptr<double>();
  double busy = 0, start = g[1 + P], end = 0;
  for (int r = 0; r < P; ++r) {
    busy += g[1 + r];
    start = std::min(start, g[1 + P + r]);
    end = std::max(end, g[1 + 2 * P + r]);
  }
  double span = std::max(end - start, 1e-9);
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
    if (profile_sum_.empty()) profile_sum_.assign(4 * S, 0.0);
    for (int k = 0; k < 4 * S; ++k) profile_sum_[k] += g[1 + 3 * P + k] / o_.chunks;
    ++profile_steps_;
  }
  if (o_.quiet) return;
  std::ostringstream line;
  line << "step " << (step + 1) << "/" << (start_step_ + o_.steps);
  if (o_.train) line << "  loss " << std::setprecision(6) << std::fixed << g[0];
  line << std::setprecision(1) << std::fixed << "  samples/s " << (static_cast<double>(batch_samples_) / secs)
       << "  step " << std::setprecision(2) << secs * 1000 << " ms" << std::setprecision(1) << "  bubble "
       << measured * 100 << "% (simulated " << sim.bubble_fraction * 100 << "%)";
  log_ << line.str() << std::endl;
}

void Engine::write_profile() {
  nlohmann::ordered_json j;
  j["version"] = 1;
  j["unit"] = "ms";
  j["schedule"] = o_.schedule;
  j["chunks"] = o_.chunks;
  j["steps_measured"] = profile_steps_;
  j["stages"] = nlohmann::ordered_json::array();
  for (int s = 0; s < num_stages_; ++s) {
    auto at = [&](int k) { return profile_steps_ ? profile_sum_[4 * s + k] / profile_steps_ / 1000.0 : 0.0; };
    j["stages"].push_back({{"stage", s}, {"f", at(0)}, {"b", at(1)}, {"i", at(2)}, {"w", at(3)}});
  }
  std::ofstream(o_.profile_path) << j.dump(2) << "\n";
}

// Every rank's events travel to rank 0 as numbers (count, then 6 per event).
void Engine::write_trace_and_timeline() {
  static const std::vector<std::string> other = {"wait", "allreduce", "optimizer"};
  auto code_of = [&](const schedule::TraceEvent& e) -> double {
    for (int k = Action::F; k <= Action::RECV_B; ++k)
      if (e.category == schedule::kind_name(static_cast<Action::Kind>(k))) return k;
    for (size_t k = 0; k < other.size(); ++k)
      if (e.category == other[k]) return 100 + static_cast<double>(k);
    return 100;
  };
  std::vector<schedule::TraceEvent> all;
  for (int r = 0; r < t_.world_size(); ++r) {
    at::Tensor count = at::zeros({1}, at::kLong);
    at::Tensor data;
    if (r == t_.rank()) {
      count[0] = static_cast<int64_t>(events_.size());
      std::vector<double> v;
      for (const auto& e : events_) {
        for (double x : {code_of(e), double(e.stage), double(e.microbatch), double(e.step), e.start_us, e.end_us})
          v.push_back(x);
      }
      data = at::tensor(v, at::kDouble);
      if (v.empty()) data = at::zeros({0}, at::kDouble);
    }
    if (r != 0) {
      if (t_.rank() == r) {
        t_.isend(count, 0, wire::Tags::kTrace)->wait();
        if (data.numel()) t_.isend(data, 0, wire::Tags::kTrace)->wait();
      } else if (t_.rank() == 0) {
        t_.irecv(count, r, wire::Tags::kTrace)->wait();
        data = at::empty({count.item<int64_t>() * 6}, at::kDouble);
        if (data.numel()) t_.irecv(data, r, wire::Tags::kTrace)->wait();
      }
    }
    if (t_.rank() != 0) continue;
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
        e.name = e.category == "wait" ? "wait" : e.category == "allreduce" ? "tied-gradient all-reduce" : "optimizer step";
      }
      all.push_back(std::move(e));
    }
  }
  if (t_.rank() != 0) return;
  if (!o_.trace_path.empty()) std::ofstream(o_.trace_path) << schedule::chrome_trace_json(all, t_.world_size());
  if (!o_.timeline_path.empty()) {
    // The last step, shifted to start at 0.
    std::vector<schedule::TraceEvent> last;
    for (const auto& e : all)
      if (e.step == step_) last.push_back(e);
    double t0 = last.empty() ? 0 : last.front().start_us;
    for (const auto& e : last) t0 = std::min(t0, e.start_us);
    double t1 = t0;
    for (auto& e : last) {
      e.start_us -= t0;
      e.end_us -= t0;
      t1 = std::max(t1, e.end_us + t0);
    }
    std::ostringstream title;
    title << "pprun " << o_.schedule << ": " << t_.world_size() << " ranks, " << num_stages_ << " stages, "
          << o_.chunks << " micro-batches; step " << (step_ + 1) << " measured, " << std::setprecision(1) << std::fixed
          << (t1 - t0) / 1000 << " ms";
    std::ofstream(o_.timeline_path) << schedule::timeline_svg(last, t_.world_size(), title.str(), "ms");
  }
}

void Engine::execute(const Action& a) {
  double begin = now_us();
  compute_start_ = -1;
  switch (a.kind) {
    case Action::F: forward(a.stage, a.microbatch); break;
    case Action::B: backward(a.stage, a.microbatch, Backward::Full); break;
    case Action::I: backward(a.stage, a.microbatch, Backward::Input); break;
    case Action::W: backward_weight(a.stage, a.microbatch); break;
    case Action::RECV_F: post_recv_forward(a.stage, a.microbatch); break;
    case Action::SEND_F: send_forward(a.stage, a.microbatch); break;
    case Action::RECV_B: post_recv_backward(a.stage, a.microbatch); break;
    case Action::SEND_B: send_backward(a.stage, a.microbatch); break;
  }
  double end = now_us();
  if (first_start_ < 0) first_start_ = begin;
  last_end_ = end;
  if (!a.is_compute()) {
    record(schedule::to_string(a), schedule::kind_name(a.kind), a.stage, a.microbatch, begin, end);
    return;
  }
  // A compute action first waits for its data (the receive was posted earlier).
  double start = compute_start_ >= 0 ? compute_start_ : begin;
  if (start - begin > 20) record("wait", "wait", a.stage, a.microbatch, begin, start);
  record(schedule::to_string(a), schedule::kind_name(a.kind), a.stage, a.microbatch, start, end);
  busy_ += end - start;
  stage_cost_[4 * a.stage + (a.kind == Action::F ? 0 : a.kind == Action::B ? 1 : a.kind == Action::I ? 2 : 3)] +=
      end - start;
}

void Engine::post_recv_forward(int s, int m) {
  MicroState& st = local(s).mb[m];
  for (int li : links_in_[s]) {
    const Link& l = links_[li];
    if (!l.remote) continue;
    PendingRecv p;
    p.link = li;
    p.header = wire::header_buffer(static_cast<int>(l.in_idx.size()));
    p.header_work = t_.irecv(p.header, rank_of(l.producer), tags_->data(0, l.producer, s, m, 0));
    st.recv_f.push_back(std::move(p));
  }
}

void Engine::finish_recv_forward(PendingRecv& p, MicroState& st, int m) {
  const Link& l = links_[p.link];
  p.header_work->wait();
  p.buffers = wire::allocate_from_header(p.header, static_cast<int>(l.in_idx.size()));
  for (size_t k = 0; k < p.buffers.size(); ++k)
    p.works.push_back(t_.irecv(wire_view(p.buffers[k]), rank_of(l.producer),
                               tags_->data(0, l.producer, l.consumer, m, static_cast<int>(k) + 1)));
  for (size_t k = 0; k < p.buffers.size(); ++k) {
    p.works[k]->wait();
    st.inputs[l.in_idx[k]] = p.buffers[k];
  }
}

void Engine::forward(int s, int m) {
  LocalStage& ls = local(s);
  MicroState& st = ls.mb[m];
  if (st.recv_f.empty()) post_recv_forward(s, m);  // not hoisted by the schedule
  for (auto& p : st.recv_f) finish_recv_forward(p, st, m);
  st.recv_f.clear();
  compute_start_ = now_us();
  const auto& ins = ls.info->inputs;
  for (size_t i = 0; i < ins.size(); ++i) {
    if (ins[i].source == "model_input") {
      st.inputs[i] = micro_inputs_.at(ins[i].name).at(m);
    } else if (!st.inputs[i].defined()) {
      throw std::logic_error("stage " + std::to_string(s) + " input '" + ins[i].name + "' of micro-batch " +
                             std::to_string(m) + " never arrived");
    } else if (o_.train) {
      at::Tensor x = st.inputs[i].detach();
      if (at::isFloatingType(x.scalar_type())) x.requires_grad_(true);
      st.inputs[i] = x;
    }
  }
  std::vector<at::Tensor> outs;
  if (o_.train) {
    outs = ls.module->forward(st.inputs);
    if (s == loss_stage_) st.loss = compute_loss(outs[loss_output_], m);
  } else {
    at::NoGradGuard no_grad;
    outs = ls.module->forward(st.inputs);
    collect_outputs(s, m, outs);
  }
  st.outputs = outs;
  st.forward_done = true;
  if (o_.train) peak_in_flight_ = std::max(peak_in_flight_, ++in_flight_);
  // Consumers on this rank get the tensors directly.
  for (int li : links_out_[s]) {
    const Link& l = links_[li];
    if (l.remote) continue;
    MicroState& cst = local(l.consumer).mb[m];
    for (size_t k = 0; k < l.out_idx.size(); ++k) cst.inputs[l.in_idx[k]] = outs[l.out_idx[k]];
  }
  if (!o_.train) st.inputs.clear();
}

void Engine::send_forward(int s, int m) {
  MicroState& st = local(s).mb[m];
  for (int li : links_out_[s]) {
    const Link& l = links_[li];
    if (!l.remote) continue;
    std::vector<at::Tensor> ts;
    for (int j : l.out_idx) ts.push_back(st.outputs[j].detach().contiguous());
    at::Tensor header = wire::encode_header(ts);
    int dst = rank_of(l.consumer);
    pending_sends_.push_back(t_.isend(header, dst, tags_->data(0, s, l.consumer, m, 0)));
    send_keepalive_.push_back(header);
    for (size_t k = 0; k < ts.size(); ++k) {
      pending_sends_.push_back(t_.isend(wire_view(ts[k]), dst, tags_->data(0, s, l.consumer, m, static_cast<int>(k) + 1)));
      send_keepalive_.push_back(ts[k]);
    }
  }
  if (!o_.train) st.outputs.clear();
}

void Engine::post_recv_backward(int s, int m) {
  MicroState& st = local(s).mb[m];
  for (int li : links_out_[s]) {
    const Link& l = links_[li];
    if (!l.remote) continue;
    PendingRecv p;
    p.link = li;
    for (size_t k = 0; k < l.out_idx.size(); ++k) {
      const at::Tensor& out = st.outputs.at(l.out_idx[k]);
      if (!l.differentiable[k] || !at::isFloatingType(out.scalar_type())) continue;
      at::Tensor buf = at::empty(out.sizes(), out.options().requires_grad(false));
      p.slots.push_back(static_cast<int>(k));
      p.works.push_back(t_.irecv(buf, rank_of(l.consumer), tags_->data(1, s, l.consumer, m, static_cast<int>(k) + 1)));
      p.buffers.push_back(buf);
    }
    st.recv_b.push_back(std::move(p));
  }
}

void Engine::backward(int s, int m, Backward kind) {
  LocalStage& ls = local(s);
  MicroState& st = ls.mb[m];
  if (!st.forward_done) throw std::logic_error("backward of stage " + std::to_string(s) + " before its forward");
  bool expects_remote = false;
  for (int li : links_out_[s]) expects_remote |= links_[li].remote;
  if (expects_remote && st.recv_b.empty()) post_recv_backward(s, m);
  for (auto& p : st.recv_b) {
    const Link& l = links_[p.link];
    for (size_t i = 0; i < p.buffers.size(); ++i) {
      p.works[i]->wait();
      accumulate(st.out_grads[l.out_idx[p.slots[i]]], p.buffers[i]);
    }
  }
  st.recv_b.clear();
  compute_start_ = now_us();
  std::vector<at::Tensor> roots, grads;
  if (st.loss.defined()) {
    roots.push_back(st.loss);
    grads.push_back(at::ones_like(st.loss));
  }
  for (size_t j = 0; j < st.outputs.size(); ++j) {
    if (st.out_grads[j].defined() && st.outputs[j].requires_grad()) {
      roots.push_back(st.outputs[j]);
      grads.push_back(st.out_grads[j]);
    }
  }
  st.in_grads.assign(st.inputs.size(), at::Tensor());
  if (kind == Backward::Full) {
    if (!roots.empty()) torch::autograd::backward(roots, grads);
    for (size_t i = 0; i < st.inputs.size(); ++i) {
      const at::Tensor& x = st.inputs[i];
      if (!x.defined() || !x.requires_grad()) continue;
      st.in_grads[i] = x.grad().defined() ? x.grad() : at::zeros_like(x);
    }
  } else {
    // Zero-bubble: gradients of the inputs only, keeping the graph for W.
    std::vector<at::Tensor> xs;
    std::vector<size_t> which;
    for (size_t i = 0; i < st.inputs.size(); ++i) {
      if (st.inputs[i].defined() && st.inputs[i].requires_grad()) {
        xs.push_back(st.inputs[i]);
        which.push_back(i);
      }
    }
    if (!roots.empty() && !xs.empty()) {
      auto gx = torch::autograd::grad(roots, xs, grads, /*retain_graph=*/true, /*create_graph=*/false,
                                      /*allow_unused=*/true);
      for (size_t k = 0; k < which.size(); ++k) st.in_grads[which[k]] = gx[k];
    }
    for (size_t k = 0; k < which.size(); ++k)
      if (!st.in_grads[which[k]].defined()) st.in_grads[which[k]] = at::zeros_like(st.inputs[which[k]]);
    st.roots = std::move(roots);
    st.root_grads = std::move(grads);
  }
  // Producers on this rank: their output gradients accumulate directly.
  for (int li : links_in_[s]) {
    const Link& l = links_[li];
    if (l.remote) continue;
    MicroState& pst = local(l.producer).mb[m];
    for (size_t k = 0; k < l.in_idx.size(); ++k) {
      const at::Tensor& g = st.in_grads[l.in_idx[k]];
      if (l.differentiable[k] && g.defined()) accumulate(pst.out_grads[l.out_idx[k]], g);
    }
  }
  st.inputs.clear();
  st.outputs.clear();
  st.out_grads.clear();
  st.loss = at::Tensor();
  if (kind == Backward::Full) --in_flight_;
}

void Engine::backward_weight(int s, int m) {
  LocalStage& ls = local(s);
  MicroState& st = ls.mb[m];
  if (!st.roots.empty() && !ls.trainable.empty()) {
    auto gw = torch::autograd::grad(st.roots, ls.trainable, st.root_grads, /*retain_graph=*/false,
                                    /*create_graph=*/false, /*allow_unused=*/true);
    at::NoGradGuard no_grad;
    for (size_t k = 0; k < gw.size(); ++k) {
      if (!gw[k].defined()) continue;
      at::Tensor& g = ls.trainable[k].mutable_grad();
      if (g.defined()) g.add_(gw[k]);
      else g = gw[k].clone();
    }
  }
  st.roots.clear();
  st.root_grads.clear();
  --in_flight_;
}

void Engine::send_backward(int s, int m) {
  MicroState& st = local(s).mb[m];
  for (int li : links_in_[s]) {
    const Link& l = links_[li];
    if (!l.remote) continue;
    int dst = rank_of(l.producer);
    for (size_t k = 0; k < l.in_idx.size(); ++k) {
      const at::Tensor& g = st.in_grads.at(l.in_idx[k]);
      // The producer expects a gradient for every differentiable floating entry.
      if (!l.differentiable[k] || !g.defined()) continue;
      at::Tensor c = g.contiguous();
      pending_sends_.push_back(t_.isend(c, dst, tags_->data(1, l.producer, s, m, static_cast<int>(k) + 1)));
      send_keepalive_.push_back(c);
    }
  }
  st.in_grads.clear();
}

at::Tensor Engine::compute_loss(const at::Tensor& out, int m) {
  double scale = static_cast<double>(micro_sizes_.at(m)) / static_cast<double>(batch_samples_);
  at::Tensor loss;
  if (o_.loss == "model") {
    if (out.numel() != 1)
      throw Error("--loss model: the model output '" + m_.model_outputs[0].name + "' has " +
                  std::to_string(out.numel()) + " elements, expected a scalar loss");
    loss = out.reshape({});
  } else {
    at::Tensor target;
    if (o_.synthetic) {
      target = synthetic_target(out, full_batch_first_input_, micro_sizes_, m, o_.loss, o_.seed, synthetic_teacher_);
    } else {
      target = micro_targets_.at(m);
    }
    if (o_.loss == "mse") {
      if (!target.sizes().equals(out.sizes()))
        throw Error("--loss mse: target shape " + shape_text(target) + " differs from the output shape " + shape_text(out));
      loss = at::mse_loss(out, target.to(out.scalar_type()));
    } else {
      int64_t classes = out.size(-1);
      at::Tensor flat_t = target.reshape({-1});
      at::Tensor flat_o = out.reshape({-1, classes});
      if (flat_t.size(0) != flat_o.size(0))
        throw Error("--loss cross_entropy: target shape " + shape_text(target) + " does not match the output shape " +
                    shape_text(out) + " (classes are the last output dim)");
      loss = at::cross_entropy_loss(flat_o, flat_t.to(at::kLong));
    }
  }
  loss = loss * scale;
  step_loss_ += loss.item<double>();
  return loss;
}

void Engine::sync_tied_gradients() {
  for (const auto& g : m_.ties) {
    if (g.policy != "replicate") continue;
    std::set<int> holder_ranks;
    std::vector<std::pair<at::Tensor, bool>> mine;  // parameter, transposed
    for (const auto& mem : g.members) {
      for (int s : mem.stages) {
        holder_ranks.insert(rank_of(s));
        if (!is_local(s)) continue;
        // Tie members name the parameter as the IR does; TorchScript stages
        // store it under a flat artifact name (params[].original maps back).
        std::string name = mem.param;
        for (const auto& p : m_.stages[s].params)
          if (p.name != mem.param && p.original == mem.param) name = p.name;
        auto it = local(s).tensors.find(name);
        if (it == local(s).tensors.end())
          throw Error(lm_.dir + "/manifest.json: tie '" + g.name + "': stage " + std::to_string(s) + " has no parameter '" +
                      mem.param + "'");
        mine.emplace_back(it->second, mem.relation == "transpose");
      }
    }
    if (mine.empty()) continue;
    if (mine.size() == 1 && holder_ranks.size() == 1) continue;
    at::Tensor sum;
    for (auto& [p, transposed] : mine) {
      at::Tensor gr = p.grad().defined() ? p.grad() : at::zeros_like(p);
      if (transposed) gr = gr.t();
      accumulate(sum, gr);
    }
    sum = sum.contiguous();
    if (holder_ranks.size() > 1) {
      std::vector<at::Tensor> ts{sum};
      t_.all_reduce_sum(ts, std::vector<int>(holder_ranks.begin(), holder_ranks.end()));
      sum = ts[0];
    }
    for (auto& [p, transposed] : mine) p.mutable_grad() = transposed ? sum.t().contiguous() : sum.clone();
  }
}

void Engine::collect_outputs(int s, int m, const std::vector<at::Tensor>& outs) {
  if (o_.output_path.empty()) return;
  const auto& info = m_.stages[s].outputs;
  for (size_t j = 0; j < info.size(); ++j)
    if (info[j].model_output) collected_[info[j].name].push_back(outs[j]);
}

void Engine::write_outputs() {
  bool here = false;
  for (const auto& mo : m_.model_outputs) here |= rank_of(mo.stage) == t_.rank();
  if (!here) return;
  std::vector<NamedTensor> out;
  for (const auto& mo : m_.model_outputs) {
    auto& pieces = collected_[mo.name];
    if (pieces.empty()) continue;
    int dim = mo.batch_dim.value_or(0);
    out.emplace_back(mo.name, pieces[0].dim() == 0 ? at::stack(pieces) : at::cat(pieces, dim));
  }
  save_tensor_dict(o_.output_path, out);
}

void Engine::save_checkpoint(int64_t steps_done) {
  fs::path final_dir(o_.save_dir);
  fs::path tmp = final_dir.string() + ".partial";
  std::error_code ec;
  if (t_.rank() == 0) {
    if (fs::exists(final_dir, ec) && !fs::is_empty(final_dir, ec) && !fs::exists(final_dir / "pprun_state.json", ec))
      throw Error(o_.save_dir + ": exists and is not a pprun checkpoint; refusing to replace it");
    fs::remove_all(tmp, ec);
  }
  t_.barrier();
  fs::create_directories(tmp);
  for (auto& ls : locals_) {
    ls.module->save((tmp / ls.info->artifact).string());
    save_tensor_dict((tmp / ("optimizer_stage" + std::to_string(ls.index) + ".pt")).string(), ls.optimizer->state());
  }
  // Rank 0 gathers the artifacts' digests and every parameter (manifest order).
  manifest::Manifest out = m_;
  std::vector<NamedTensor> params;
  std::set<std::string> seen;
  std::set<std::string> secondary;  // tie members other than a group's first: not separate parameters
  for (const auto& g : m_.ties)
    for (size_t i = 1; i < g.members.size(); ++i) secondary.insert(g.members[i].param);
  for (int s = 0; s < num_stages_; ++s) {
    const auto& info = m_.stages[s];
    int r = rank_of(s);
    if (t_.rank() != 0 && r != t_.rank()) continue;
    std::string digest;
    if (r == t_.rank()) digest = sha256_file_hex((tmp / info.artifact).string());
    at::Tensor d = at::zeros({64}, at::kByte);
    if (r == t_.rank()) std::copy(digest.begin(), digest.end(), d.data_ptr<uint8_t>());
    if (r != 0) {
      if (t_.rank() == r) t_.isend(d, 0, wire::Tags::kSaveDigest)->wait();
      else t_.irecv(d, r, wire::Tags::kSaveDigest)->wait();
    }
    if (t_.rank() == 0) out.stages[s].sha256 = std::string(reinterpret_cast<const char*>(d.data_ptr<uint8_t>()), 64);
    for (const auto& p : info.params) {
      at::Tensor value;
      if (r == t_.rank()) value = local(s).tensors.at(p.name).detach().contiguous();
      if (r != 0) {
        if (t_.rank() == r) {
          t_.isend(wire_view(value), 0, wire::Tags::kSaveParam)->wait();
        } else {
          value = at::empty(p.shape, at::TensorOptions().dtype(scalar_type_of(p.dtype)));
          t_.irecv(wire_view(value), r, wire::Tags::kSaveParam)->wait();
        }
      }
      if (t_.rank() == 0 && !secondary.count(p.name) && seen.insert(p.original).second)
        params.emplace_back(p.original, value);
    }
  }
  if (t_.rank() != 0) return;
  save_tensor_dict((tmp / "params.pt").string(), params);
  {
    std::ofstream mf(tmp / "manifest.json");
    mf << manifest::to_json_text(out);
    nlohmann::ordered_json st;
    st["version"] = 1;
    st["step"] = steps_done;
    st["optimizer"] = o_.optimizer.kind;
    std::ofstream sf(tmp / "pprun_state.json");
    sf << st.dump(2) << "\n";
  }
  fs::remove_all(final_dir, ec);
  fs::rename(tmp, final_dir);
}

}  // namespace

std::vector<schedule::StageCost> stage_costs(const manifest::Manifest& m, const std::string& costs_file) {
  const size_t S = m.stages.size();
  std::vector<schedule::StageCost> out(S);
  if (costs_file.empty()) {
    for (size_t s = 0; s < S; ++s) {
      double f = static_cast<double>(std::max<int64_t>(m.stages[s].flops, 1));
      out[s] = schedule::StageCost{f, 2 * f, f, f};
    }
    return out;
  }
  std::ifstream in(costs_file);
  if (!in) throw Error(costs_file + ": cannot open the costs file");
  try {
    nlohmann::json j;
    in >> j;
    const auto& stages = j.at("stages");
    if (stages.size() != S)
      throw Error(costs_file + ": has costs for " + std::to_string(stages.size()) + " stages, the manifest has " +
                  std::to_string(S));
    for (size_t s = 0; s < S; ++s) {
      const auto& c = stages[s];
      out[s] = schedule::StageCost{c.at("f").get<double>(), c.at("b").get<double>(), c.at("i").get<double>(),
                                   c.at("w").get<double>()};
      // A profile of a schedule without split backward has no I/W: split B evenly.
      if (out[s].i == 0 && out[s].w == 0) out[s].i = out[s].w = out[s].b / 2;
      if (out[s].b == 0) out[s].b = out[s].i + out[s].w;
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(costs_file + ": malformed costs file: " + e.what());
  }
  return out;
}

schedule::SimResult simulate_plan(const manifest::Manifest& m, const schedule::Schedule& sched,
                                  const std::vector<schedule::StageCost>& costs) {
  schedule::SimOptions so;
  so.costs = costs;
  return schedule::simulate(sched, static_cast<int>(m.stages.size()), stage_graph_of(m), so);
}

void check_data(const manifest::Manifest& m, const EngineOptions& o) {
  std::vector<NamedTensor> batch;
  std::string where;
  if (o.synthetic) {
    where = "synthetic batch";
    batch = synthetic_batch(m, o.batch_size, o.dims, o.int_high, o.seed);
  } else {
    where = o.input_files.at(0);
    batch = load_tensor_dict(where);
  }
  split_batch(m, batch, o.chunks, o.train && o.loss != "model" && !o.synthetic ? o.target_key : "", where);
}

void run_pipeline(const LoadedManifest& manifest, Transport& transport, const EngineOptions& options,
                  std::ostream& log) {
  Engine engine(manifest, transport, options, log);
  engine.run();
}

}  // namespace ppc::runtime
