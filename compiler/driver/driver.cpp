#include "compiler/driver/driver.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <fstream>
#include <random>
#include <regex>
#include <set>
#include <sstream>

#include "compiler/analysis/balance.h"
#include "compiler/analysis/constants.h"
#include "compiler/analysis/cost_model.h"
#include "compiler/analysis/partition.h"
#include "compiler/analysis/split_points.h"
#include "compiler/analysis/step_model.h"
#include "compiler/driver/inspect.h"
#include "compiler/emitters/manifest_builder.h"
#include "compiler/emitters/stage_emitter.h"
#include "compiler/frontends/onnx/onnx_frontend.h"
#include "compiler/frontends/torchscript/plugin.h"
#include "compiler/ir/text.h"
#include "runtime/manifest/stage_map.h"
#include "schemas/error.h"
#include "schemas/sha256.h"
#include "schemas/split_spec.h"

namespace fs = std::filesystem;

namespace ppc::driver {

namespace {

std::unique_ptr<SourceModel> load_model(const std::string& path, std::vector<std::string>* notes,
                                        const std::map<std::string, int64_t>& dims = {}) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(path + ": no such model file");
  if (fs::is_directory(path, ec)) throw Error(path + ": is a directory, not a model file");
  std::string ext = fs::path(path).extension().string();
  if (ext == ".onnx") return onnx_frontend::load_onnx(path, path, notes, dims);
  if (!dims.empty() && notes)
    notes->push_back("--dim: ignored for " + path + " (TorchScript records the traced sizes; symbolic dims count as 1)");
  if (ext == ".pt" || ext == ".pth" || ext == ".torchscript") return torchscript_frontend::plugin().load(path, path, notes);
  throw Error(path + ": unknown model format '" + ext + "' (expected .onnx or .pt)");
}

std::string human_bytes(int64_t b) {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(1);
  if (b >= (1 << 20)) os << static_cast<double>(b) / (1 << 20) << " MiB";
  else if (b >= 1024) os << static_cast<double>(b) / 1024 << " KiB";
  else os << b << " B";
  return os.str();
}

std::string human_flops(double f) {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(2);
  if (f >= 1e9) os << f / 1e9 << " GFLOP";
  else if (f >= 1e6) os << f / 1e6 << " MFLOP";
  else if (f >= 1e3) os << f / 1e3 << " kFLOP";
  else os << f << " FLOP";
  return os.str();
}

std::string fixed(double x, int digits) {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(digits);
  os << x;
  return os.str();
}

// Six significant digits: manifests stay byte-identical across compilers.
double sig6(double x) {
  if (x == 0 || !std::isfinite(x)) return 0;
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.6g", x);
  return std::strtod(buf, nullptr);
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
  if (measured && measured->profile.bytes_per_second > 0 && (!spec.auto_split || !spec.auto_split->link_bytes_per_second))
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
    o.unknown_value_bytes = sum / static_cast<double>(measured->profile.edges.size()) / measured->profile.micro_batch_size;
  }
  return o;
}

void record_costs(manifest::Manifest& m, const analysis::AutoPartition& ap, bool is_auto,
                  const analysis::MeasuredCosts* measured) {
  const double forward_fraction = measured ? measured->forward_fraction : 1.0 / 3.0;
  const auto& e = ap.eval;
  for (size_t k = 0; k < m.stages.size() && k < e.stage_costs.size(); ++k) {
    m.stages[k].model_cost = sig6(e.stage_costs[k]);
    m.stages[k].model_compute = sig6(e.stage_compute[k]);
    m.stages[k].model_memory = sig6(e.stage_memory[k]);
  }
  manifest::Manifest::CostModel cm;
  cm.balance = ap.model.balance;
  cm.unit = ap.model.unit;
  cm.partition = is_auto ? "auto" : "split_points";
  cm.bottleneck = sig6(e.bottleneck);
  cm.imbalance = sig6(e.imbalance);
  cm.lower_bound = sig6(analysis::lower_bound(ap.model, static_cast<int>(e.stage_costs.size())));
  cm.forward_fraction = sig6(forward_fraction);
  if (measured && ap.model.unit == "ms") {
    cm.message_ms = sig6(measured->message_ms());
    if (measured->message_cpu_ms() > 0) cm.message_cpu_ms = sig6(measured->message_cpu_ms());
    if (measured->message_cpu_bytes_per_second() > 0)
      cm.message_cpu_bytes_per_second = sig6(measured->message_cpu_bytes_per_second());
    if (measured->message_bytes_per_second() > 0 && !ap.starts.empty()) {
      cm.message_bytes_per_second = sig6(measured->message_bytes_per_second());
      std::set<std::pair<int, int>> in_manifest;
      for (const auto& st : m.stages)
        for (const auto& in : st.inputs)
          if (in.from_stage >= 0) in_manifest.insert({in.from_stage, st.index});
      for (const auto& e : analysis::stage_edges(ap.model, ap.starts))
        if (in_manifest.count({e.producer, e.consumer}))
          cm.message_bytes.push_back({e.producer, e.consumer, sig6(e.bytes), sig6(e.grad_bytes)});
    }
    if (measured->overhead_ms() > 0) cm.step_overhead_ms = sig6(measured->overhead_ms());
  }
  if (ap.predicted_step_ms > 0) {
    cm.predicted_step_ms = sig6(ap.predicted_step_ms);
    cm.predicted_schedule = ap.predicted_schedule;
    const double cores = measured ? measured->profile.shared_cores() : 0.0;
    if (cores > 0 && cores < static_cast<double>(m.stages.size())) cm.predicted_cores = sig6(cores);
  }
  m.cost_model = cm;
}

std::string balance_report(const ir::Graph& g, const analysis::AutoPartition& ap, int stages) {
  nlohmann::ordered_json j;
  j["balance"] = ap.model.balance;
  j["unit"] = ap.model.unit;
  j["stages"] = stages;
  j["nodes"] = ap.model.items.size();
  j["lower_bound"] = analysis::lower_bound(ap.model, stages);
  j["strategies"] = nlohmann::ordered_json::array();
  auto add = [&](const std::string& name, const std::vector<int>& starts) {
    nlohmann::ordered_json s;
    s["name"] = name;
    if (static_cast<int>(starts.size()) != stages - 1) {
      s["error"] = "no such split with the allowed cuts";
      j["strategies"].push_back(s);
      return;
    }
    analysis::Evaluation e = analysis::evaluate(ap.model, starts);
    s["cuts"] = nlohmann::ordered_json::array();
    for (int b : starts) s["cuts"].push_back(g.nodes[ap.model.items[b]].name);
    s["stage_costs"] = e.stage_costs;
    s["stage_compute"] = e.stage_compute;
    s["stage_memory"] = e.stage_memory;
    s["bottleneck"] = e.bottleneck;
    s["imbalance"] = e.imbalance;
    j["strategies"].push_back(s);
  };
  add("auto", ap.starts);
  add("equal_params", analysis::equal_params_starts(ap.model, stages));
  add("uniform_layers", analysis::uniform_layers_starts(ap.model, stages));
  return j.dump(2) + "\n";
}

// Only replace an existing out/ that looks like one ppc wrote.
void check_replaceable(const fs::path& out) {
  std::error_code ec;
  if (!fs::exists(out, ec)) return;
  if (!fs::is_directory(out, ec)) throw Error(out.string() + ": exists and is not a directory");
  static const std::regex kOurs(R"(manifest\.json|stage[0-9]+\.(onnx|pt|onnx\.data))");
  for (const auto& e : fs::directory_iterator(out)) {
    std::string name = e.path().filename().string();
    if (!std::regex_match(name, kOurs))
      throw Error(out.string() + ": exists and holds '" + name + "', which ppc did not write; refusing to replace it (choose another -o or remove it)");
  }
}

fs::path make_temp_dir(const fs::path& out) {
  fs::path parent = out.parent_path().empty() ? fs::path(".") : out.parent_path();
  std::error_code ec;
  // Like `mkdir -p`: everything before this point succeeded, so the only
  // thing a later failure can leave behind is an empty parent directory.
  fs::create_directories(parent, ec);
  if (!fs::is_directory(parent, ec)) throw Error(out.string() + ": cannot create parent directory '" + parent.string() + "'");
  std::random_device rd;
  for (int attempt = 0; attempt < 100; ++attempt) {
    fs::path tmp = parent / ("." + out.filename().string() + ".ppc-tmp-" + std::to_string(rd() % 1000000));
    if (fs::create_directory(tmp, ec)) return tmp;
  }
  throw Error(out.string() + ": cannot create a temporary directory next to it");
}

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << text;
  if (!f) throw Error(p.string() + ": cannot write");
}

std::string dim_str(const spec::DimSpec& d) { return d.value ? std::to_string(*d.value) : "'" + d.symbol + "'"; }

std::string dim_str(const ir::Dim& d) {
  return d.is_known() ? std::to_string(d.value) : d.is_symbolic() ? "'" + d.symbol + "'" : "?";
}

// Types the spec declares for model inputs: fill in what the source does not
// record (TorchScript archives carry no dtypes or shapes) and reject what
// contradicts what it does.
void apply_declared_inputs(ir::Graph& g, const spec::SplitSpec& spec, const JsonDocument* doc) {
  auto fail = [&](const std::string& pointer, const std::string& msg) {
    return Error(doc ? doc->where(pointer, msg) : msg);
  };
  for (const auto& is : spec.inputs) {
    ir::ValueId v = g.find_value(is.name);
    if (v == ir::kNone || g.values[v].graph_input == ir::kNone) continue;  // reported with suggestions later
    ir::Value& val = g.values[v];
    if (is.dtype) {
      ir::DType want = *ir::dtype_from_name(*is.dtype);
      if (val.dtype != ir::DType::Undefined && val.dtype != ir::DType::Other && val.dtype != want)
        throw fail(is.pointer + "/dtype", "input '" + is.name + "' is " + ir::dtype_name(val.dtype) + " in the model, not " + *is.dtype);
      val.dtype = want;
    }
    if (is.shape) {
      const auto& dims = *is.shape;
      if (val.shape.rank_known && val.shape.dims.size() != dims.size())
        throw fail(is.pointer + "/shape", "input '" + is.name + "' has rank " + std::to_string(val.shape.dims.size()) +
                                              " in the model " + val.shape.str() + ", not " + std::to_string(dims.size()));
      ir::Shape merged = ir::Shape::of({});
      for (size_t i = 0; i < dims.size(); ++i) {
        ir::Dim declared = dims[i].value ? ir::Dim::known(*dims[i].value) : ir::Dim::symbolic(dims[i].symbol);
        if (val.shape.rank_known) {
          const ir::Dim& have = val.shape.dims[i];
          if ((have.is_known() || have.is_symbolic()) && !(have == declared))
            throw fail(is.pointer + "/shape/" + std::to_string(i), "dim " + std::to_string(i) + " of input '" + is.name +
                                                                     "' is " + dim_str(have) + " in the model, not " + dim_str(dims[i]));
        }
        merged.dims.push_back(declared);
      }
      val.shape = merged;
    }
  }
}

}  // namespace

void split(const SplitOptions& opts, std::ostream& out, std::ostream& err) {
  std::vector<std::string> notes;
  // The spec first: a typo there should not wait for a large model to load.
  spec::SplitSpec spec;
  std::unique_ptr<JsonDocument> doc;
  if (!opts.spec_path.empty()) {
    try {
      doc = std::make_unique<JsonDocument>(JsonDocument::load(opts.spec_path, opts.spec_path));
    } catch (const JsonSyntaxError& e) {
      throw Error(e.what());
    }
    spec = spec::parse_split_spec(*doc);
  }
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
  // Measured costs are read before the model, for the same reason.
  std::optional<analysis::MeasuredCosts> measured;
  if (!opts.costs_path.empty()) measured = analysis::load_measured_costs(opts.costs_path);
  analysis::CostModelOptions cost_opts = cost_options(spec, measured ? &*measured : nullptr);
  if (spec.auto_split && spec.auto_split->balance == "time" && !measured)
  {
    std::string msg = "balance 'time' needs measured costs: give --costs PROFILE.json (written by pprun --profile)";
    if (doc && !spec.auto_split->pointer.empty() && opts.balance.empty())
      throw Error(doc->where(spec.auto_split->pointer + "/balance", msg));
    throw Error(msg);
  }

  auto src = load_model(opts.model_path, &notes, opts.dims);
  apply_declared_inputs(src->mutable_graph(), spec, doc.get());
  const ir::Graph& g = src->graph();
  if (opts.emit == "ir") {
    for (const auto& n : notes) err << "note: " << n << "\n";
    out << ir::print_graph(g);
    return;
  }

  if (measured && !measured->profile.source_sha256.empty() && measured->profile.source_sha256 != sha256_file_hex(opts.model_path))
    throw Error(measured->profile.file + ": measured on a different model (source sha256 " + measured->profile.source_sha256.substr(0, 12) +
                "...), not " + opts.model_path);
  if (measured && measured->profile.host.oversubscribed())
    notes.push_back(measured->profile.file + ": measured with " + measured->profile.host.summary() +
                    (measured->profile.has_work_times() ? ": its stage times are taken as their CPU time, without the waits for a core"
                                       : ": its times include waiting for a core, and the predicted step gives each "
                                         "rank a core (no CPU times: more than one thread per rank)"));
  auto const_like = analysis::constant_like_nodes(g);
  cost_opts.typed_cuts_only = std::string(src->artifact_extension()) == ".onnx";
  std::vector<analysis::Cut> cuts;
  analysis::AutoPartition ap;
  // Measured costs predict the step: the profiled run's schedule, chunks,
  // micro-batch size and message latency unless the spec's defaults say.
  const bool predict = measured && cost_opts.balance == "time";
  analysis::StepOptions step;
  if (predict) {
    step.schedule = spec.defaults.schedule ? *spec.defaults.schedule
                    : !measured->profile.schedule.empty() ? measured->profile.schedule : step.schedule;
    step.chunks = spec.defaults.chunks ? *spec.defaults.chunks : measured->profile.chunks > 0 ? measured->profile.chunks : step.chunks;
    step.micro_batch_size = cost_opts.micro_batch_size;
    step.forward_fraction = measured->forward_fraction;
    step.message_ms = measured->message_ms();
    step.message_bytes_per_second = measured->message_bytes_per_second();
    step.message_cpu_ms = measured->message_cpu_ms();
    step.message_cpu_bytes_per_second = measured->message_cpu_bytes_per_second();
    step.overhead_ms = measured->overhead_ms();
    step.cores = measured->profile.shared_cores();
  }
  if (spec.auto_split) {
    try {
      ap = predict ? analysis::auto_partition_by_step(g, const_like, spec.auto_split->stages, cost_opts, step)
                   : analysis::auto_partition(g, const_like, spec.auto_split->stages, cost_opts);
    } catch (const Error& e) {
      if (doc && !spec.auto_split->pointer.empty()) throw Error(doc->where(spec.auto_split->pointer + "/stages", e.what()));
      throw;
    }
    cuts = ap.cuts;
  } else {
    cuts = analysis::resolve_split_points(g, const_like, spec, doc.get());
    ap.model = analysis::build_cost_model(g, const_like, cost_opts, static_cast<int>(cuts.size()) + 1);
    for (const auto& c : cuts) {
      const auto& items = ap.model.items;
      ap.starts.push_back(static_cast<int>(std::lower_bound(items.begin(), items.end(), c.position) - items.begin()));
    }
    ap.eval = analysis::evaluate(ap.model, ap.starts);
    if (predict) ap.predicted_step_ms = analysis::predict_step_ms(ap.model, ap.starts, step, &ap.predicted_schedule);
  }
  if (opts.emit == "balance") {
    for (const auto& n : notes) err << "note: " << n << "\n";
    out << balance_report(g, ap, spec.auto_split->stages);
    return;
  }

  analysis::TieOptions tie_opts;
  tie_opts.detect_folded = spec.ties.detect_folded;
  tie_opts.default_policy = spec.ties.policy;
  tie_opts.groups = spec.ties.groups;
  tie_opts.doc = doc.get();
  analysis::Partition p = analysis::partition(g, const_like, cuts, tie_opts);
  std::string problem = analysis::verify_partition(g, const_like, p);
  if (!problem.empty()) throw std::logic_error("partition verifier: " + problem);
  if (cost_opts.typed_cuts_only) analysis::require_ranked_edges(g, p, cuts, doc.get());
  notes.insert(notes.end(), p.notes.begin(), p.notes.end());

  if (opts.emit == "partition") {
    for (const auto& n : notes) err << "note: " << n << "\n";
    for (size_t i = 0; i < g.nodes.size(); ++i)
      out << (p.stage_of_node[i] < 0 ? std::string("const") : std::to_string(p.stage_of_node[i])) << " "
          << g.nodes[i].name << "\n";
    return;
  }

  auto batch_dims = model_input_batch_dims(g, spec, doc.get());
  manifest::Manifest m = build_manifest(*src, p, spec, batch_dims);
  m.source.file = fs::path(opts.model_path).filename().string();
  m.source.sha256 = sha256_file_hex(opts.model_path);
  for (auto& s : m.stages) s.artifact = "stage" + std::to_string(s.index) + src->artifact_extension();
  record_costs(m, ap, spec.auto_split.has_value(), measured ? &*measured : nullptr);

  for (const auto& t : m.ties) {
    std::string line = "tie '" + t.name + "' (" + t.policy + ", owner stage " + std::to_string(t.owner) + ", " + t.detected_by + "):";
    for (size_t i = 0; i < t.members.size(); ++i) {
      line += (i ? ";" : "") + std::string(" ") + t.members[i].param;
      if (t.members[i].relation != "identity") line += " (" + t.members[i].relation + ")";
      line += " in stage";
      for (size_t k = 0; k < t.members[i].stages.size(); ++k) line += (k ? "," : " ") + std::to_string(t.members[i].stages[k]);
    }
    notes.push_back(line);
  }

  if (opts.emit == "manifest") {
    for (const auto& n : notes) err << "note: " << n << "\n";
    out << manifest::to_json_text(m);
    return;
  }

  // Write everything into a temporary sibling, then swap it in: a failure
  // at any point leaves out/ as it was.
  const fs::path outp = fs::path(opts.out_dir).lexically_normal();
  if (outp.empty() || outp == "." || outp == "..") throw Error("-o: give a directory name to create");
  check_replaceable(outp);
  fs::path tmp = make_temp_dir(outp);
  try {
    for (auto& s : m.stages) {
      EmittedStage files = emit_stage(*src, p, s.index, (tmp / s.artifact).string());
      s.sha256 = sha256_hex(files.bytes);
      s.data_file = files.data_file;
      if (!files.data_file.empty()) s.data_sha256 = sha256_hex(files.data_bytes);
    }
    write_file(tmp / "manifest.json", manifest::to_json_text(m));
    std::error_code ec;
    fs::path old;
    if (fs::exists(outp, ec)) {
      old = tmp.string() + "-old";
      fs::rename(outp, old);
    }
    fs::rename(tmp, outp);
    if (!old.empty()) fs::remove_all(old, ec);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }

  for (const auto& n : notes) err << "note: " << n << "\n";
  out << "split " << m.source.file << " into " << m.stages.size() << " stages -> " << opts.out_dir << "/\n";
  const auto& cm = *m.cost_model;
  out << "  cost model: " << cm.balance << " (" << (cm.unit == "ms" ? "ms per sample, compute + communication received" : cm.unit)
      << "), " << (cm.partition == "auto" ? "optimal split" : "spec's split points") << "\n";
  double total_cost = 0;
  for (const auto& s : m.stages) total_cost += s.model_cost.value_or(0);
  for (const auto& s : m.stages) {
    // Bytes sent per sample: outputs to other stages, batch dim excluded.
    int64_t act_out = 0;
    bool act_known = true;
    for (const auto& o : s.outputs) {
      if (o.to_stages.empty()) continue;
      int64_t n = static_cast<int64_t>(o.to_stages.size());
      auto dt = ir::dtype_from_name(o.dtype);
      if (!o.shape || !dt) {
        act_known = false;
        continue;
      }
      for (size_t d = 0; d < o.shape->size(); ++d) {
        if (o.batch_dim && static_cast<int>(d) == *o.batch_dim) continue;
        if ((*o.shape)[d].value) n *= *(*o.shape)[d].value;
        else act_known = false;
      }
      act_out += n * ir::dtype_size(*dt);
    }
    double c = s.model_cost.value_or(0);
    out << "  stage " << s.index << "  " << s.artifact << "  nodes " << s.node_count << "  cost " << fixed(c, cm.unit == "ms" ? 4 : 0)
        << " " << cm.unit << " (" << (total_cost > 0 ? static_cast<int>(100.0 * c / total_cost + 0.5) : 0) << "%)  "
        << human_flops(static_cast<double>(s.flops)) << "  params " << s.params.size() << " (" << human_bytes(s.param_bytes)
        << ")  memory " << human_bytes(static_cast<int64_t>(s.model_memory.value_or(0))) << "  in " << s.inputs.size()
        << "  out " << s.outputs.size();
    if (!act_known && act_out == 0)
      out << " (bytes sent unknown: shapes unknown)";
    else if (act_out > 0 || !act_known)
      out << " (" << (act_known ? "" : ">= ") << human_bytes(act_out) << "/sample sent)";
    out << "\n";
  }
  out << "  imbalance (max/mean cost) " << fixed(cm.imbalance, 3) << ", bottleneck " << fixed(cm.bottleneck, 4) << " "
      << cm.unit << " (lower bound " << fixed(cm.lower_bound, 4) << "), " << m.edges.size() << " cross-stage edges, "
      << m.ties.size() << " tie groups\n";
  if (cm.predicted_step_ms)
    out << "  predicted step " << fixed(*cm.predicted_step_ms, 2) << " ms (" << *cm.predicted_schedule
        << ", one stage per rank, the profile's micro-batches; message latency " << fixed(cm.message_ms.value_or(0), 3)
        << " ms"
        << (cm.message_cpu_ms ? " + " + fixed(*cm.message_cpu_ms, 3) + " ms at each end" : std::string())
        << (cm.message_cpu_bytes_per_second
                ? " (and its bytes at " + fixed(*cm.message_cpu_bytes_per_second / 1e9, 2) + " GB/s there)"
                : std::string())
        << (cm.message_bytes_per_second
                ? " + bytes at " + fixed(*cm.message_bytes_per_second / 1e9, 2) + " GB/s"
                : std::string())
        << ", per-step overhead " << fixed(cm.step_overhead_ms.value_or(0), 2) << " ms"
        << (cm.predicted_cores ? "; the ranks share " + fixed(*cm.predicted_cores, 2) + " cores" : std::string())
        << ")\n";
}

void inspect(const InspectOptions& opts, std::ostream& out) {
  // The runtime's loader: the same manifest validation and artifact sha256
  // checks pprun applies before it runs anything.
  manifest::Manifest m = runtime::load_and_verify(opts.dir).manifest;
  out << (opts.dot ? render_dot(m) : render_text(m));
}

}  // namespace ppc::driver
