#include "compiler/analysis/cost_model.h"

#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "schemas/error.h"
#include "schemas/profile.h"

namespace ppc::analysis {

MeasuredCosts load_measured_costs(const std::string& path) {
  MeasuredCosts m;
  m.profile = profile::read_profile(path).as_work();
  const profile::Profile& p = m.profile;
  double fsum = 0, all = 0;
  for (size_t s = 0; s < p.stages.size(); ++s) {
    const auto& c = p.stages[s];
    if (c.first_node.empty() || c.last_node.empty())
      throw Error(path + ": stage " + std::to_string(s) +
                  " has no 'first_node'/'last_node' (write the profile with this version of pprun --profile)");
    fsum += c.f;
    all += c.total_ms();
  }
  if (all > 0) m.forward_fraction = fsum / all;
  return m;
}

namespace {

// Per sample. A value of unknown shape (TorchScript without shapes) counts
// `unknown` bytes when given (the profiled messages' mean), else one element.
double value_bytes(const ir::Value& v, double unknown = 0) {
  if (v.cost_numel < 0 && !v.shape.rank_known && unknown > 0) return unknown;
  return (v.cost_numel >= 0 ? v.cost_numel : v.shape.numel(1.0)) * std::max(0, ir::dtype_size(v.dtype));
}

std::string module_prefix(const std::string& path, int depth) {
  size_t pos = 0;
  for (int d = 0; d < depth; ++d) {
    pos = path.find('.', pos);
    if (pos == std::string::npos) return path;
    if (d + 1 < depth) ++pos;
  }
  return path.substr(0, pos);
}

// Every value a node produces that a later node reads: what a cut can
// separate (the readers sorted, all after the producer).
struct Crossing {
  int producer;
  ir::ValueId value;
  std::vector<int> readers;
};

// The placeable nodes, in graph order, become the model's items; returns
// each node's item position (-1 for constant-like nodes).
std::vector<int> place_items(const ir::Graph& g, const std::vector<bool>& const_like, CostModel& m) {
  std::vector<int> pos(g.nodes.size(), -1);
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (!const_like[i]) {
      pos[i] = static_cast<int>(m.items.size());
      m.items.push_back(static_cast<ir::NodeId>(i));
    }
  return pos;
}

// Placeable readers of a value; constant-like readers (cloned where
// needed) stand for the placeable readers of what they compute.
void collect_readers(const ir::Graph& g, const std::vector<int>& pos, ir::ValueId v, std::set<int>& out, int depth) {
  for (ir::NodeId c : g.values[v].consumers) {
    if (pos[c] >= 0) {
      out.insert(pos[c]);
    } else if (depth < 16) {
      for (ir::ValueId w : g.nodes[c].outputs) collect_readers(g, pos, w, out, depth + 1);
    }
  }
}

// Params: first reader gets the bytes (equal-params baseline, balance "params").
void add_params(const ir::Graph& g, const std::vector<int>& pos, const CostModelOptions& o, CostModel& m) {
  const int n = static_cast<int>(m.items.size());
  m.param_bytes.assign(n, 0.0);
  for (size_t k = 0; k < g.params.size(); ++k) {
    std::set<int> r;
    collect_readers(g, pos, g.params[k].value, r, 0);
    if (r.empty()) continue;
    double bytes = static_cast<double>(g.params[k].bytes);
    m.param_bytes[*r.begin()] += bytes;
    ChainProblem::Resident res;
    res.readers.assign(r.begin(), r.end());
    res.bytes = g.params[k].is_float ? bytes * (2 + o.optimizer_states) : bytes;
    m.problem.resident.push_back(std::move(res));
  }
}

// Module units at module_depth; with cut_at "module", cuts only between units.
void assign_module_units(const ir::Graph& g, const CostModelOptions& o, CostModel& m) {
  const int n = static_cast<int>(m.items.size());
  m.unit_of.assign(n, 0);
  std::string prev;
  int u = -1;
  for (int i = 0; i < n; ++i) {
    std::string key = module_prefix(g.nodes[m.items[i]].module, o.module_depth);
    if (i == 0 || key != prev) ++u;
    m.unit_of[i] = u;
    prev = key;
  }
  if (o.cut_at == "module") {
    m.problem.allowed.assign(n + 1, false);
    for (int b = 1; b < n; ++b) m.problem.allowed[b] = m.unit_of[b - 1] != m.unit_of[b];
  }
}

// The crossings, also recorded as the model's reads and their bytes.
std::vector<Crossing> find_crossings(const ir::Graph& g, const std::vector<int>& pos, const CostModelOptions& o,
                                     CostModel& m) {
  const int n = static_cast<int>(m.items.size());
  std::vector<Crossing> crossings;
  for (int i = 0; i < n; ++i)
    for (ir::ValueId v : g.nodes[m.items[i]].outputs) {
      std::set<int> r;
      collect_readers(g, pos, v, r, 0);
      Crossing c{i, v, {}};
      for (int x : r)
        if (x > i) c.readers.push_back(x);
      if (!c.readers.empty()) crossings.push_back(std::move(c));
    }
  for (const Crossing& c : crossings) {
    m.reads.emplace_back(c.producer, c.readers);
    const ir::Value& val = g.values[c.value];
    const double bytes = value_bytes(val, o.unknown_value_bytes);
    m.read_bytes.emplace_back(bytes, ir::dtype_is_float(val.dtype) ? bytes : 0.0);
  }
  return crossings;
}

// No cut between the producer of a value of unknown rank and its last reader.
void block_untyped_cuts(const ir::Graph& g, const std::vector<Crossing>& crossings, int n, ChainProblem& p) {
  std::vector<int> blocked(n + 2, 0);  // difference array over boundaries
  for (const Crossing& c : crossings) {
    if (g.values[c.value].shape.rank_known) continue;
    blocked[c.producer + 1] += 1;
    blocked[c.readers.back() + 1] -= 1;
  }
  if (p.allowed.empty()) p.allowed.assign(n + 1, true);
  int live = 0;
  for (int b = 0; b <= n; ++b) {
    live += blocked[b];
    if (live > 0) p.allowed[b] = false;
  }
}

// Each item's share of a stage's time, for the stage's items [first, last]:
// in proportion to `times` where the profile has them, else to their FLOPs.
std::vector<double> stage_weights(const ir::Graph& g, const CostModel& m, int first, int last,
                                  const std::map<std::string, double>& times) {
  std::vector<double> w;
  double sum = 0.0;
  for (int i = first; i <= last; ++i) {
    auto it = times.find(g.nodes[m.items[i]].name);
    w.push_back(it != times.end() ? it->second : 0.0);
    sum += w.back();
  }
  if (!(sum > 0)) {
    w.clear();
    sum = 0.0;
    for (int i = first; i <= last; ++i) {
      w.push_back(std::max(1.0, g.nodes[m.items[i]].flops));
      sum += w.back();
    }
  }
  for (double& x : w) x /= sum;
  return w;
}

// Spreads profiled stage `s`, which covers items [first, last], over those items.
void spread_stage_time(const ir::Graph& g, const profile::Profile& prof, size_t s, int first, int last, CostModel& m) {
  const profile::StageTimes& st = prof.stages[s];
  // The stage's forward goes to its nodes in proportion to their
  // measured forward times, its backward in proportion to their measured
  // backward times (the forward ones where the profile has none), where
  // the profile has them (nodes folded into constants or fused into a
  // later node's kernel take none); else both to their FLOPs. The stage's
  // own overhead (inputs, autograd) is spread the same way.
  std::map<std::string, double> node_f, node_b;
  for (const auto& nd : st.nodes) {
    node_f[nd.node] += nd.f;
    if (nd.b > 0) node_b[nd.node] += nd.b;
  }
  const std::vector<double> wf = stage_weights(g, m, first, last, node_f),
                            wb = node_b.empty() ? wf : stage_weights(g, m, first, last, node_b);
  const double ms = st.total_ms();
  double fwd = std::min(st.f, ms), bwd = ms - fwd;
  if (static_cast<int>(s) == prof.loss_stage) fwd = std::max(0.0, fwd - prof.loss_ms);
  const double per_sample = 1.0 / prof.micro_batch_size;
  for (int i = first; i <= last; ++i) m.problem.compute[i] = per_sample * (fwd * wf[i - first] + bwd * wb[i - first]);
}

// Balance "time": the profiled stages must cover the items in order.
void measured_compute(const ir::Graph& g, const std::vector<int>& pos, const MeasuredCosts& mc, CostModel& m) {
  const int n = static_cast<int>(m.items.size());
  std::map<std::string, int> by_name;
  for (int i = 0; i < n; ++i) by_name[g.nodes[m.items[i]].name] = i;
  int next = 0;
  for (size_t s = 0; s < mc.profile.stages.size(); ++s) {
    const profile::StageTimes& st = mc.profile.stages[s];
    auto a = by_name.find(st.first_node), b = by_name.find(st.last_node);
    std::string where = mc.profile.file + ": stage " + std::to_string(s);
    if (a == by_name.end()) throw Error(where + ": node '" + st.first_node + "' is not in this model");
    if (b == by_name.end()) throw Error(where + ": node '" + st.last_node + "' is not in this model");
    if (a->second != next || b->second < a->second)
      throw Error(where + ": covers nodes " + std::to_string(a->second) + ".." + std::to_string(b->second) +
                  " of this model, expected to start at node " + std::to_string(next) +
                  " (profile a split of this same model)");
    spread_stage_time(g, mc.profile, s, a->second, b->second, m);
    next = b->second + 1;
  }
  if (next != n)
    throw Error(mc.profile.file + ": the profiled stages cover " + std::to_string(next) + " of this model's " +
                std::to_string(n) + " nodes (profile a split of this same model)");
  if (mc.profile.loss_ms > 0 && !g.outputs.empty()) {
    ir::NodeId producer = g.values[g.outputs[0]].producer;
    int at = producer != ir::kNone ? pos[producer] : -1;
    m.problem.compute[at >= 0 ? at : n - 1] += mc.profile.loss_ms / mc.profile.micro_batch_size;
  }
}

// Each item's compute cost and the unit it is in, per the balance.
void set_compute(const ir::Graph& g, const std::vector<int>& pos, const CostModelOptions& o, CostModel& m) {
  const int n = static_cast<int>(m.items.size());
  ChainProblem& p = m.problem;
  if (o.balance == "uniform") {
    m.unit = "nodes";
    std::fill(p.compute.begin(), p.compute.end(), 1.0);
  } else if (o.balance == "params") {
    m.unit = "bytes";
    p.compute = m.param_bytes;
  } else if (o.balance == "flops") {
    m.unit = "ms";
    // Forward + backward (about twice the forward) per sample.
    for (int i = 0; i < n; ++i)
      p.compute[i] = 3.0 * std::max(0.0, g.nodes[m.items[i]].flops) / o.flops_per_second * 1e3;
  } else if (o.balance == "time") {
    m.unit = "ms";
    if (!o.measured)
      throw Error("balance 'time' needs measured costs: give --costs PROFILE.json (written by pprun --profile)");
    measured_compute(g, pos, *o.measured, m);
  } else {
    throw Error("unknown balance '" + o.balance + "'");
  }
}

void add_transfers(const ir::Graph& g, const std::vector<Crossing>& crossings, const CostModelOptions& o,
                   ChainProblem& p) {
  for (const Crossing& c : crossings) {
    const ir::Value& val = g.values[c.value];
    // The activation forward, and its gradient backward when it has one.
    double factor = ir::dtype_is_float(val.dtype) ? 2.0 : 1.0;
    ChainProblem::Transfer t;
    t.producer = c.producer;
    t.consumers = c.readers;
    t.cost = factor * value_bytes(val, o.unknown_value_bytes) / o.link_bytes_per_second * 1e3;
    p.transfers.push_back(std::move(t));
  }
  // The latency once per receiving stage: pprun packs what a stage sends
  // another for a micro-batch into one message, forward and back.
  p.receive_cost = 2.0 * o.link_latency_ms / o.micro_batch_size;
}

// Memory: bytes of float activations each node produces, held per
// micro-batch until the backward; in-flight micro-batches per stage.
void add_memory(const ir::Graph& g, const CostModelOptions& o, int stages, CostModel& m) {
  const int n = static_cast<int>(m.items.size());
  ChainProblem& p = m.problem;
  p.activation.assign(n, 0.0);
  for (int i = 0; i < n; ++i)
    for (ir::ValueId v : g.nodes[m.items[i]].outputs)
      if (ir::dtype_is_float(g.values[v].dtype)) p.activation[i] += value_bytes(g.values[v]) * o.micro_batch_size;
  p.inflight.assign(stages, 1.0);
  for (int k = 0; k < stages; ++k) p.inflight[k] = o.schedule == "gpipe" ? o.chunks : std::min(o.chunks, stages - k);
  p.memory_cap = o.memory_cap_bytes;
}

}  // namespace

CostModel build_cost_model(const ir::Graph& g, const std::vector<bool>& const_like, const CostModelOptions& o,
                           int stages) {
  CostModel m;
  m.balance = o.balance;
  const std::vector<int> pos = place_items(g, const_like, m);
  const int n = static_cast<int>(m.items.size());
  m.problem.compute.assign(n, 0.0);
  add_params(g, pos, o, m);
  assign_module_units(g, o, m);
  const std::vector<Crossing> crossings = find_crossings(g, pos, o, m);
  if (o.typed_cuts_only) block_untyped_cuts(g, crossings, n, m.problem);
  const bool timed = o.balance == "time" || o.balance == "flops";
  set_compute(g, pos, o, m);
  if (timed && o.link_bytes_per_second > 0) add_transfers(g, crossings, o, m.problem);
  add_memory(g, o, stages, m);
  return m;
}

Evaluation evaluate(const CostModel& m, const std::vector<int>& starts) {
  Evaluation e;
  const int n = static_cast<int>(m.items.size());
  const int stages = static_cast<int>(starts.size()) + 1;
  int prev = 0;
  double sum = 0.0;
  for (int k = 0; k < stages; ++k) {
    int end = k + 1 < stages ? starts[k] : n;
    double c = stage_cost(m.problem, prev, end), comp = 0.0;
    for (int i = prev; i < end; ++i) comp += m.problem.compute[i];
    e.stage_costs.push_back(c);
    e.stage_compute.push_back(comp);
    e.stage_memory.push_back(
        stage_memory(m.problem, k < static_cast<int>(m.problem.inflight.size()) ? k : 0, prev, end));
    e.bottleneck = std::max(e.bottleneck, c);
    sum += c;
    prev = end;
  }
  double mean = sum / stages;
  e.imbalance = mean > 0 ? e.bottleneck / mean : 1.0;
  return e;
}

double lower_bound(const CostModel& m, int stages) {
  double total = 0.0, big = 0.0;
  for (double c : m.problem.compute) {
    total += c;
    big = std::max(big, c);
  }
  return std::max(total / stages, big);
}

namespace {
bool allowed_at(const CostModel& m, int b) { return m.problem.allowed.empty() || m.problem.allowed[b]; }

// Completes `starts` to stages-1 cuts with the last allowed positions not yet
// used (so every stage is non-empty); empty when impossible.
std::vector<int> fill_up(const CostModel& m, std::vector<int> starts, int stages) {
  const int n = static_cast<int>(m.items.size());
  for (int b = n - 1; b >= 1 && static_cast<int>(starts.size()) < stages - 1; --b)
    if (allowed_at(m, b) && std::find(starts.begin(), starts.end(), b) == starts.end()) starts.push_back(b);
  std::sort(starts.begin(), starts.end());
  if (static_cast<int>(starts.size()) != stages - 1) return {};
  return starts;
}
}  // namespace

std::vector<int> equal_params_starts(const CostModel& m, int stages) {
  const int n = static_cast<int>(m.items.size());
  double total = 0.0;
  for (double b : m.param_bytes) total += b;
  const double share = total / stages;
  std::vector<int> starts;
  double acc = 0.0;
  for (int i = 0; i < n && static_cast<int>(starts.size()) < stages - 1; ++i) {
    acc += m.param_bytes[i];
    // Close the stage once it holds its share, at the next place a cut is allowed.
    if (acc >= share && share > 0 && i + 1 < n && allowed_at(m, i + 1)) {
      starts.push_back(i + 1);
      acc = 0.0;
    }
  }
  return fill_up(m, starts, stages);
}

std::vector<int> uniform_layers_starts(const CostModel& m, int stages) {
  const int n = static_cast<int>(m.items.size());
  // Units: module instances at module_depth, or single nodes when there are
  // fewer units than stages.
  std::vector<int> unit_start;
  for (int i = 0; i < n; ++i)
    if (i == 0 || m.unit_of[i] != m.unit_of[i - 1]) unit_start.push_back(i);
  if (static_cast<int>(unit_start.size()) < stages) {
    unit_start.clear();
    for (int i = 0; i < n; ++i) unit_start.push_back(i);
  }
  const int u = static_cast<int>(unit_start.size());
  std::vector<int> starts;
  for (int k = 1; k < stages; ++k) {
    int b = unit_start[static_cast<size_t>(static_cast<int64_t>(u) * k / stages)];
    while (b < n && !allowed_at(m, b)) ++b;
    if (b >= n || (!starts.empty() && b <= starts.back())) continue;
    starts.push_back(b);
  }
  return fill_up(m, starts, stages);
}

}  // namespace ppc::analysis
