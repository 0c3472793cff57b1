// `ppc split` as a pipeline of passes (passes.h), and `ppc inspect`.
#include "compiler/driver/driver.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <thread>

#include "compiler/analysis/constants.h"
#include "compiler/analysis/split_points.h"
#include "compiler/driver/inspect.h"
#include "compiler/driver/passes.h"
#include "compiler/emitters/manifest_builder.h"
#include "compiler/emitters/stage_emitter.h"
#include "compiler/frontends/onnx/onnx_frontend.h"
#include "compiler/frontends/pt2/pt2_frontend.h"
#include "compiler/frontends/torchscript/plugin.h"
#include "compiler/ir/text.h"
#include "schemas/error.h"
#include "schemas/manifest_dir.h"
#include "schemas/sha256.h"

namespace fs = std::filesystem;

namespace ppc::driver {

namespace {

// --- load ----------------------------------------------------------------
std::unique_ptr<SourceModel> load_model(const std::string& path, std::vector<std::string>* notes,
                                        const std::map<std::string, int64_t>& dims = {}) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(path + ": no such model file");
  if (fs::is_directory(path, ec)) throw Error(path + ": is a directory, not a model file");
  std::string ext = fs::path(path).extension().string();
  if (ext == ".onnx") return onnx_frontend::load_onnx(path, path, notes, dims);
  if (!dims.empty() && notes)
    notes->push_back("--dim: ignored for " + path +
                     " (TorchScript and torch.export record the traced sizes; symbolic dims count as 1)");
  if (ext == ".pt2") return pt2_frontend::load_pt2(path, path, notes);
  if (ext == ".pt" || ext == ".pth" || ext == ".torchscript")
    return torchscript_frontend::plugin().load(path, path, notes);
  throw Error(path + ": unknown model format '" + ext + "' (expected .onnx, .pt or .pt2)");
}

// --- declare inputs --------------------------------------------------------
std::string dim_str(const spec::DimSpec& d) { return d.value ? std::to_string(*d.value) : "'" + d.symbol + "'"; }

std::string dim_str(const ir::Dim& d) {
  return d.is_known() ? std::to_string(d.value) : d.is_symbolic() ? "'" + d.symbol + "'" : "?";
}

// Renames symbolic dim `from` to `to` in every value's shape.
void rename_symbol(ir::Graph& g, const std::string& from, const std::string& to) {
  for (ir::Value& v : g.values)
    for (ir::Dim& d : v.shape.dims)
      if (d.is_symbolic() && d.symbol == from) d.symbol = to;
}

// Types the spec declares for model inputs: fill in what the source does not
// record (TorchScript archives carry no dtypes or shapes) and reject what
// contradicts what it does. With `generated_symbols` (torch.export names its
// symbols itself: "s77"), a symbol the spec names otherwise is renamed.
void apply_declared_inputs(ir::Graph& g, const spec::SplitSpec& spec, const JsonDocument* doc, bool generated_symbols) {
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
        throw fail(is.pointer + "/dtype",
                   "input '" + is.name + "' is " + ir::dtype_name(val.dtype) + " in the model, not " + *is.dtype);
      val.dtype = want;
    }
    if (is.shape) {
      const auto& dims = *is.shape;
      if (val.shape.rank_known && val.shape.dims.size() != dims.size())
        throw fail(is.pointer + "/shape", "input '" + is.name + "' has rank " + std::to_string(val.shape.dims.size()) +
                                              " in the model " + val.shape.str() + ", not " +
                                              std::to_string(dims.size()));
      ir::Shape merged = ir::Shape::of({});
      for (size_t i = 0; i < dims.size(); ++i) {
        ir::Dim declared = dims[i].value ? ir::Dim::known(*dims[i].value) : ir::Dim::symbolic(dims[i].symbol);
        if (val.shape.rank_known) {
          const ir::Dim& have = val.shape.dims[i];
          if (generated_symbols && have.is_symbolic() && declared.is_symbolic() && !(have == declared))
            rename_symbol(g, ir::Dim(have).symbol, declared.symbol);
          else if ((have.is_known() || have.is_symbolic()) && !(have == declared))
            throw fail(is.pointer + "/shape/" + std::to_string(i), "dim " + std::to_string(i) + " of input '" +
                                                                       is.name + "' is " + dim_str(have) +
                                                                       " in the model, not " + dim_str(dims[i]));
        }
        merged.dims.push_back(declared);
      }
      val.shape = merged;
    }
  }
}

// A profile taken on another model would price this one wrongly; one taken
// on an oversubscribed host is usable, with a note on how it is read.
void check_profile_source(const analysis::MeasuredCosts& measured, const std::string& model_path,
                          std::vector<std::string>& notes) {
  const auto& prof = measured.profile;
  if (!prof.source_sha256.empty() && prof.source_sha256 != sha256_file_hex(model_path))
    throw Error(prof.file + ": measured on a different model (source sha256 " + prof.source_sha256.substr(0, 12) +
                "...), not " + model_path);
  if (prof.host.oversubscribed())
    notes.push_back(prof.file + ": measured with " + prof.host.summary() +
                    (prof.has_work_times()
                         ? ": its stage times are taken as their CPU time, without the waits for a core"
                         : ": its times include waiting for a core, and the predicted step gives each "
                           "rank a core (no CPU times: more than one thread per rank)"));
}

// --- split points ------------------------------------------------------------
Cuts choose_cuts(const ir::Graph& g, const std::vector<bool>& const_like, const SplitRequest& r) {
  Cuts c;
  auto& ap = c.ap;
  if (r.spec.auto_split) {
    const auto& a = *r.spec.auto_split;
    try {
      ap = r.predict ? analysis::auto_partition_by_step(g, const_like, a.stages, r.cost_opts, r.step)
                     : analysis::auto_partition(g, const_like, a.stages, r.cost_opts);
    } catch (const Error& e) {
      if (r.doc && !a.pointer.empty()) throw Error(r.doc->where(a.pointer + "/stages", e.what()));
      throw;
    }
    c.cuts = ap.cuts;
    return c;
  }
  c.cuts = analysis::resolve_split_points(g, const_like, r.spec, r.doc.get());
  ap.model = analysis::build_cost_model(g, const_like, r.cost_opts, static_cast<int>(c.cuts.size()) + 1);
  for (const auto& cut : c.cuts) {
    const auto& items = ap.model.items;
    ap.starts.push_back(static_cast<int>(std::lower_bound(items.begin(), items.end(), cut.position) - items.begin()));
  }
  ap.eval = analysis::evaluate(ap.model, ap.starts);
  if (r.predict) ap.predicted_step_ms = analysis::predict_step_ms(ap.model, ap.starts, r.step, &ap.predicted_schedule);
  return c;
}

// --- partition + ties ----------------------------------------------------------
analysis::Partition partition_stages(const ir::Graph& g, const std::vector<bool>& const_like, const Cuts& c,
                                     const SplitRequest& r) {
  analysis::TieOptions tie_opts;
  tie_opts.detect_folded = r.spec.ties.detect_folded;
  tie_opts.default_policy = r.spec.ties.policy;
  tie_opts.groups = r.spec.ties.groups;
  tie_opts.doc = r.doc.get();
  analysis::Partition p = analysis::partition(g, const_like, c.cuts, tie_opts);
  std::string problem = analysis::verify_partition(g, const_like, p);
  if (!problem.empty()) throw std::logic_error("partition verifier: " + problem);
  if (r.cost_opts.typed_cuts_only) analysis::require_ranked_edges(g, p, c.cuts, r.doc.get());
  return p;
}

// --- manifest + costs --------------------------------------------------------
manifest::Manifest make_manifest(const SourceModel& src, const analysis::Partition& p, const Cuts& c,
                                 const SplitRequest& r, const std::string& model_path) {
  auto batch_dims = model_input_batch_dims(src.graph(), r.spec, r.doc.get());
  manifest::Manifest m = build_manifest(src, p, r.spec, batch_dims);
  m.source.file = fs::path(model_path).filename().string();
  m.source.sha256 = sha256_file_hex(model_path);
  for (auto& s : m.stages) s.artifact = "stage" + std::to_string(s.index) + src.artifact_extension();
  record_costs(m, c.ap, r.spec.auto_split.has_value(), r.measured.get());
  return m;
}

// --- emit ------------------------------------------------------------------------
void write_file(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << text;
  if (!f) throw Error(p.string() + ": cannot write");
}

// Every stage artifact, then the manifest with their sha256s, into `dir`.
// ONNX stages are independent (each reads the source, writes its own files):
// they are built on as many threads as there are cores, and their results
// taken in stage order, the first failing stage's error first.
void emit_all(const SourceModel& src, const analysis::Partition& p, manifest::Manifest& m, const fs::path& dir) {
  const size_t n = m.stages.size();
  std::vector<std::exception_ptr> failed(n);
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t k; (k = next++) < n;) try {
        manifest::Stage& s = m.stages[k];  // each worker writes only the stages it takes
        EmittedStage files = emit_stage(src, p, s.index, (dir / s.artifact).string());
        s.sha256 = sha256_hex(files.bytes);
        s.data_file = files.data_file;
        if (!files.data_file.empty()) s.data_sha256 = sha256_hex(files.data_bytes);
      } catch (...) { failed[k] = std::current_exception(); }
  };
  const bool parallel = std::string(src.format()) == "onnx";  // TorchScript emission stays on one thread
  const size_t workers = parallel ? std::min<size_t>(n, std::max(1u, std::thread::hardware_concurrency())) : 1;
  std::vector<std::thread> pool;
  for (size_t w = 1; w < workers; ++w) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  for (size_t k = 0; k < n; ++k)
    if (failed[k]) std::rethrow_exception(failed[k]);
  write_file(dir / "manifest.json", manifest::to_json_text(m));
}

void print_notes(const std::vector<std::string>& notes, std::ostream& err) {
  for (const auto& n : notes) err << "note: " << n << "\n";
}

}  // namespace

void split(const SplitOptions& opts, std::ostream& out, std::ostream& err) {
  std::vector<std::string> notes;
  SplitRequest r = read_request(opts);
  auto src = load_model(opts.model_path, &notes, opts.dims);
  apply_declared_inputs(src->mutable_graph(), r.spec, r.doc.get(), std::string(src->format()) == "pt2");
  const ir::Graph& g = src->graph();
  if (opts.emit == "ir") {
    print_notes(notes, err);
    out << ir::print_graph(g);
    return;
  }

  if (r.measured) check_profile_source(*r.measured, opts.model_path, notes);
  auto const_like = analysis::constant_like_nodes(g);
  r.cost_opts.typed_cuts_only = std::string(src->artifact_extension()) == ".onnx";
  Cuts cuts = choose_cuts(g, const_like, r);
  if (opts.emit == "balance") {
    print_notes(notes, err);
    out << balance_report(g, cuts.ap, r.spec.auto_split->stages);
    return;
  }

  analysis::Partition p = partition_stages(g, const_like, cuts, r);
  notes.insert(notes.end(), p.notes.begin(), p.notes.end());
  if (opts.emit == "partition") {
    print_notes(notes, err);
    for (size_t i = 0; i < g.nodes.size(); ++i)
      out << (p.stage_of_node[i] < 0 ? std::string("const") : std::to_string(p.stage_of_node[i])) << " "
          << g.nodes[i].name << "\n";
    return;
  }

  manifest::Manifest m = make_manifest(*src, p, cuts, r, opts.model_path);
  for (auto& line : tie_notes(m)) notes.push_back(std::move(line));
  if (opts.emit == "manifest") {
    print_notes(notes, err);
    out << manifest::to_json_text(m);
    return;
  }

  write_atomically(opts.out_dir, [&](const std::string& tmp) { emit_all(*src, p, m, tmp); });
  print_notes(notes, err);
  print_summary(m, opts.out_dir, out);
  if (opts.exit_after) {
    // Still reachable through a global (no leak), freed by the exit.
    static std::vector<std::unique_ptr<SourceModel>>* kept = new std::vector<std::unique_ptr<SourceModel>>;
    kept->push_back(std::move(src));
  }
}

void inspect(const InspectOptions& opts, std::ostream& out) {
  // The same manifest validation and artifact sha256 checks pprun applies
  // before it runs anything.
  manifest::Manifest m = manifest::load_and_verify(opts.dir).manifest;
  out << (opts.dot ? render_dot(m) : render_text(m));
}

}  // namespace ppc::driver
