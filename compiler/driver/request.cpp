// Pass 1 of `ppc split`: the spec, the command line's overrides of it, and
// the measured costs, turned into the cost model's options.
#include <algorithm>

#include "compiler/driver/passes.h"
#include "schemas/error.h"

namespace ppc::driver {

namespace {

std::unique_ptr<JsonDocument> load_spec_text(const std::string& path) {
  try {
    return std::make_unique<JsonDocument>(JsonDocument::load(path, path));
  } catch (const JsonSyntaxError& e) { throw Error(e.what()); }
}

// --stages, --balance and --costs over the spec's `auto` section.
void apply_overrides(const SplitOptions& opts, spec::SplitSpec& spec) {
  if (opts.stages > 0) {
    if (!spec.split_points.empty())
      throw Error("--stages conflicts with the split points of " + opts.spec_path + "; give one or the other");
    spec::AutoSplit a = spec.auto_split ? *spec.auto_split : spec::AutoSplit{};
    a.stages = opts.stages;
    spec.auto_split = a;
  }
  if (opts.spec_path.empty() && opts.stages <= 0) throw Error("give a split spec (--splits FILE) or --stages N");
  if (!opts.balance.empty()) {
    if (!spec.auto_split) throw Error("--balance needs an automatic split (--stages N or an 'auto' spec)");
    spec.auto_split->balance = opts.balance;
  } else if (!opts.costs_path.empty() && spec.auto_split) {
    spec.auto_split->balance = "time";  // measured costs are what --costs is for
  }
  if (opts.emit == "balance" && !spec.auto_split)
    throw Error("--emit balance needs an automatic split (--stages N or an 'auto' spec)");
}

analysis::CostModelOptions cost_options(const spec::SplitSpec& spec, const analysis::MeasuredCosts* measured) {
  analysis::CostModelOptions o;
  if (spec.defaults.schedule) o.schedule = *spec.defaults.schedule;
  if (spec.defaults.chunks) o.chunks = *spec.defaults.chunks;
  o.measured = measured;
  if (spec.auto_split) {
    const auto& a = *spec.auto_split;
    o.balance = a.balance;
    o.cut_at = a.cut_at;
    o.module_depth = a.module_depth;
    if (a.flops_per_second) o.flops_per_second = *a.flops_per_second;
    if (a.link_bytes_per_second) o.link_bytes_per_second = *a.link_bytes_per_second;
    if (a.memory_cap_mib) o.memory_cap_bytes = *a.memory_cap_mib * (1 << 20);
    if (a.micro_batch_size) o.micro_batch_size = *a.micro_batch_size;
    if (a.optimizer_states) o.optimizer_states = *a.optimizer_states;
  } else if (measured) {
    o.balance = "time";
  }
  // Measured costs bring the measured link and micro-batch size, unless the spec says otherwise.
  if (measured && measured->profile.bytes_per_second > 0 &&
      (!spec.auto_split || !spec.auto_split->link_bytes_per_second))
    o.link_bytes_per_second = measured->profile.bytes_per_second;
  // Per message and micro-batch, a stage pays the idle link's latency (the
  // calls on both sides) besides the bytes. What a message costs in the
  // running pipeline (message_cpu_ms at both ends) is not charged here: the
  // step search charges it to candidate splits and the simulator, which
  // knows which messages each split sends, judges them. It goes to the
  // manifest for prediction.
  if (measured) o.link_latency_ms = measured->profile.latency_ms;
  if (measured && (!spec.auto_split || !spec.auto_split->micro_batch_size))
    o.micro_batch_size = std::max(1, static_cast<int>(measured->profile.micro_batch_size + 0.5));
  // A crossing value of unknown shape: as large as the profiled messages
  // were on average, per sample (TorchScript graphs carry no shapes).
  if (measured && !measured->profile.edges.empty()) {
    double sum = 0;
    for (const auto& e : measured->profile.edges) sum += e.bytes;
    o.unknown_value_bytes =
        sum / static_cast<double>(measured->profile.edges.size()) / measured->profile.micro_batch_size;
  }
  return o;
}

// Measured costs predict the step: the profiled run's schedule, chunks,
// micro-batch size and message latency unless the spec's defaults say.
analysis::StepOptions step_options(const spec::SplitSpec& spec, const analysis::MeasuredCosts& measured,
                                   const analysis::CostModelOptions& cost_opts) {
  analysis::StepOptions step;
  step.schedule = spec.defaults.schedule               ? *spec.defaults.schedule
                  : !measured.profile.schedule.empty() ? measured.profile.schedule
                                                       : step.schedule;
  step.chunks = spec.defaults.chunks          ? *spec.defaults.chunks
                : measured.profile.chunks > 0 ? measured.profile.chunks
                                              : step.chunks;
  step.micro_batch_size = cost_opts.micro_batch_size;
  step.forward_fraction = measured.forward_fraction;
  step.message = measured.message();
  step.overhead_ms = measured.overhead_ms();
  step.cores = measured.profile.shared_cores();
  step.replicas = spec.defaults.dp.value_or(1);
  return step;
}

}  // namespace

SplitRequest read_request(const SplitOptions& opts) {
  SplitRequest r;
  if (!opts.spec_path.empty()) {
    r.doc = load_spec_text(opts.spec_path);
    r.spec = spec::parse_split_spec(*r.doc);
  }
  apply_overrides(opts, r.spec);
  // Measured costs are read before the model, for the same reason as the spec.
  if (!opts.costs_path.empty())
    r.measured = std::make_unique<analysis::MeasuredCosts>(analysis::load_measured_costs(opts.costs_path));
  r.cost_opts = cost_options(r.spec, r.measured.get());
  const auto& auto_split = r.spec.auto_split;
  if (auto_split && auto_split->balance == "time" && !r.measured) {
    std::string msg = "balance 'time' needs measured costs: give --costs PROFILE.json (written by pprun --profile)";
    if (r.doc && !auto_split->pointer.empty() && opts.balance.empty())
      throw Error(r.doc->where(auto_split->pointer + "/balance", msg));
    throw Error(msg);
  }
  r.predict = r.measured && r.cost_opts.balance == "time";
  if (r.predict) r.step = step_options(r.spec, *r.measured, r.cost_opts);
  return r;
}

}  // namespace ppc::driver
