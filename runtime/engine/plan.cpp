// Planning a run before any rank starts: the lowered schedule (named or from
// a CSV file), stage costs for the simulator, and a check of the data.
#include "runtime/engine/engine_internal.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "runtime/engine/microbatch.h"
#include "runtime/engine/pt_io.h"
#include "runtime/schedule/csv.h"
#include "runtime/schedule/lowering.h"
#include "runtime/schedule/registry.h"
#include "runtime/schedule/simulator.h"
#include "runtime/schedule/validator.h"
#include "schemas/error.h"
#include "schemas/json_text.h"
#include "schemas/profile.h"

namespace ppc::runtime {

using engine_detail::stage_graph_of;
using schedule::Action;

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
    compute = schedule::read_csv(read_text_file(schedule_file, schedule_file, "the schedule file"), schedule_file);
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
  int m = 0;
  for (const auto& rank :
       schedule::read_csv(read_text_file(schedule_file, schedule_file, "the schedule file"), schedule_file))
    for (const auto& a : rank) m = std::max(m, a.microbatch + 1);
  if (m == 0) throw Error(schedule_file + ": the schedule has no actions");
  return m;
}

SimCosts sim_costs(const manifest::Manifest& m, const std::string& costs_file) {
  const size_t S = m.stages.size();
  SimCosts out;
  out.file = costs_file;
  out.stages.resize(S);
  // A stage that reads no other stage's output has no input gradients: its
  // I is nothing, its W all of its backward.
  const schedule::StageGraph graph = stage_graph_of(m);
  auto input_gradients = [&](size_t s) { return !graph.producers.at(s).empty(); };
  if (costs_file.empty()) {
    for (size_t s = 0; s < S; ++s) {
      double f = static_cast<double>(std::max<int64_t>(m.stages[s].flops, 1));
      out.stages[s] = schedule::StageCost{f, 2 * f, 0, 0}.filled(input_gradients(s));
    }
    return out;
  }
  const profile::Profile p = profile::read_profile(costs_file).as_work();
  out.cores = p.shared_cores();
  if (p.stages.size() != S)
    throw Error(costs_file + ": has costs for " + std::to_string(p.stages.size()) + " stages, the manifest has " +
                std::to_string(S));
  for (size_t s = 0; s < S; ++s) {
    const auto& c = p.stages[s];
    out.stages[s] = schedule::StageCost{c.f, c.b, c.i, c.w}.filled(input_gradients(s));
  }
  for (const auto& e : p.edges) out.edge_bytes.push_back({e.from, e.to, e.bytes, e.grad_bytes});
  out.message = p.message_cost();
  return out;
}

schedule::SimResult simulate_plan(const manifest::Manifest& m, const schedule::Schedule& sched, const SimCosts& costs,
                                  double comm, int replicas) {
  schedule::StageGraph graph = stage_graph_of(m);
  for (const auto& e : costs.edge_bytes) {
    const auto& readers = graph.consumers.at(static_cast<size_t>(e.producer));
    if (!std::binary_search(readers.begin(), readers.end(), e.consumer))
      throw Error(costs.file + ": edge " + std::to_string(e.producer) + " -> " + std::to_string(e.consumer) +
                  " has bytes, but the manifest's stage " + std::to_string(e.consumer) + " reads nothing from stage " +
                  std::to_string(e.producer) + " (costs of another split?)");
    graph.bytes[{e.producer, e.consumer}] = {e.bytes, e.grad_bytes};
  }
  schedule::SimOptions so;
  so.costs = costs.stages;
  schedule::set_message_cost(so, costs.message);
  so.comm = comm;  // --comm, or the file's latency (in the costs' unit)
  so.cores = costs.cores;
  so.replicas = replicas;
  for (const auto& st : m.stages) {
    double bytes = 0;
    for (const auto& p : st.params)
      if (p.trainable) bytes += static_cast<double>(p.bytes);
    so.grad_bytes.push_back(bytes);
  }
  return schedule::simulate(sched, static_cast<int>(m.stages.size()), graph, so);
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
  MicroBatches mb =
      split_batch(m, batch, o.chunks, o.train && o.loss != "model" && !o.synthetic ? o.target_key : "", where);
  if (o.dp > 1 && mb.batch_size < static_cast<int64_t>(o.dp) * o.chunks)
    throw Error(where + ": a batch of " + std::to_string(mb.batch_size) + " samples cannot be split into " +
                std::to_string(o.dp) + " replicas x " + std::to_string(o.chunks) + " micro-batches (--dp, --chunks)");
}

}  // namespace ppc::runtime
