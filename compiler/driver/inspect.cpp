#include "compiler/driver/inspect.h"

#include <sstream>

namespace ppc::driver {

namespace {

std::string join(const std::vector<int>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s;
}

std::string stages_word(const std::vector<int>& v) { return (v.size() == 1 ? "stage " : "stages ") + join(v); }

std::string tensor(const manifest::TensorInfo& t) {
  std::string s = t.name + " " + t.dtype + manifest::shape_str(t.shape);
  if (t.batch_dim) s += " batch_dim=" + std::to_string(*t.batch_dim);
  return s;
}

// Exact integer with thousands separators: deterministic and readable.
std::string grouped(int64_t x) {
  std::string d = std::to_string(x < 0 ? -x : x);
  std::string out;
  for (size_t i = 0; i < d.size(); ++i) {
    if (i && (d.size() - i) % 3 == 0) out += ',';
    out += d[i];
  }
  return (x < 0 ? "-" : "") + out;
}

// Per-mille share, printed as a percentage with one decimal.
std::string share(int64_t part, int64_t total) {
  if (total <= 0) return "-";
  int64_t pm = (part * 1000 + total / 2) / total;
  return std::to_string(pm / 10) + "." + std::to_string(pm % 10) + "%";
}

std::string dot_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o;
}

}  // namespace

std::string render_text(const manifest::Manifest& m) {
  std::ostringstream os;
  os << "source " << m.source.file << " (" << m.source.format;
  if (m.source.opset) os << ", opset " << m.source.opset;
  os << ") sha256 " << m.source.sha256 << "\n";
  os << m.stages.size() << " stages, " << m.edges.size() << " edges, " << m.ties.size() << " tie groups, "
     << grouped(m.total_flops) << " flops\n";
  if (m.default_schedule || m.default_chunks || m.default_dp) {
    os << "defaults";
    if (m.default_schedule) os << " schedule=" << *m.default_schedule;
    if (m.default_chunks) os << " chunks=" << *m.default_chunks;
    if (m.default_dp) os << " dp=" << *m.default_dp;
    os << "\n";
  }
  os << "\nmodel inputs\n";
  for (const auto& in : m.model_inputs)
    os << "  " << tensor(in) << " split=" << in.split << " -> " << stages_word(in.stages) << "\n";
  os << "model outputs\n";
  for (const auto& out : m.model_outputs) os << "  " << tensor(out) << " <- stage " << out.stage << "\n";
  int64_t max_flops = 0;
  for (const auto& s : m.stages) max_flops = std::max(max_flops, s.flops);
  for (const auto& s : m.stages) {
    os << "\nstage " << s.index << "  " << s.artifact << "  sha256 " << s.sha256 << "\n";
    os << "  nodes " << s.node_count << " (+" << s.cloned_nodes << " cloned constants)";
    if (s.node_count) os << " from " << s.first_node << " to " << s.last_node;
    os << "\n";
    os << "  modules";
    if (s.modules.empty()) os << " (root scope only)";
    for (const auto& mod : s.modules) os << " " << mod;
    os << "\n";
    os << "  cost " << grouped(s.flops) << " flops (" << share(s.flops, m.total_flops) << "), params "
       << s.params.size() << " tensors " << grouped(s.param_bytes) << " bytes\n";
    for (const auto& in : s.inputs) {
      os << "  in  " << tensor(in) << " <- ";
      if (in.source == "model_input")
        os << "model input";
      else
        os << (in.source == "tie" ? "tie from stage " : "stage ") << in.from_stage;
      os << "\n";
    }
    for (const auto& out : s.outputs) {
      os << "  out " << tensor(out) << " ->";
      if (!out.to_stages.empty()) os << " " << stages_word(out.to_stages);
      if (out.model_output) os << (out.to_stages.empty() ? "" : ",") << " model output";
      os << "\n";
    }
    for (const auto& p : s.params) {
      os << "  param " << p.name << " " << p.dtype << "[";
      for (size_t i = 0; i < p.shape.size(); ++i) os << (i ? "," : "") << p.shape[i];
      os << "]";
      if (p.original != p.name) os << " (from " << p.original << ")";
      if (!p.trainable) os << " frozen";
      os << "\n";
    }
  }
  os << "\nedges\n";
  if (m.edges.empty()) os << "  (none)\n";
  for (const auto& e : m.edges) {
    os << "  " << e.value << " " << e.dtype << manifest::shape_str(e.shape);
    if (e.batch_dim) os << " batch_dim=" << *e.batch_dim;
    os << ": stage " << e.producer << " -> " << join(e.consumers);
    if (e.kind != "activation") os << " [" << e.kind << "]";
    if (!e.differentiable) os << " [no grad]";
    os << "\n";
  }
  os << "\nties\n";
  if (m.ties.empty()) os << "  (none)\n";
  for (const auto& t : m.ties) {
    os << "  " << t.name << " " << t.policy << " owner=stage " << t.owner << " (" << t.detected_by << "):";
    for (size_t i = 0; i < t.members.size(); ++i) {
      const auto& mm = t.members[i];
      os << (i ? ";" : "") << " " << mm.param;
      if (mm.relation != "identity") os << " (" << mm.relation << ")";
      os << " in " << stages_word(mm.stages);
    }
    os << "\n";
  }
  os << "\nbalance max/mean " << [&] {
    if (m.stages.empty() || m.total_flops <= 0) return std::string("-");
    // max / mean = max * n / total, printed with two decimals.
    int64_t r = (max_flops * static_cast<int64_t>(m.stages.size()) * 100 + m.total_flops / 2) / m.total_flops;
    std::string frac = std::to_string(r % 100);
    return std::to_string(r / 100) + "." + (frac.size() < 2 ? "0" : "") + frac;
  }() << "\n";
  return os.str();
}

std::string render_dot(const manifest::Manifest& m) {
  std::ostringstream os;
  os << "digraph pipeline {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n"
     << "  edge [fontname=\"Helvetica\", fontsize=10];\n";
  for (size_t i = 0; i < m.model_inputs.size(); ++i)
    os << "  in" << i << " [label=\"" << dot_escape(m.model_inputs[i].name) << "\\n"
       << dot_escape(m.model_inputs[i].dtype + manifest::shape_str(m.model_inputs[i].shape)) << "\", shape=ellipse];\n";
  for (size_t i = 0; i < m.model_outputs.size(); ++i)
    os << "  out" << i << " [label=\"" << dot_escape(m.model_outputs[i].name) << "\\n"
       << dot_escape(m.model_outputs[i].dtype + manifest::shape_str(m.model_outputs[i].shape))
       << "\", shape=ellipse];\n";
  for (const auto& s : m.stages) {
    os << "  subgraph cluster_stage" << s.index << " {\n    label=\"stage " << s.index << " (" << dot_escape(s.artifact)
       << ")\";\n    style=rounded;\n";
    std::string mods;
    for (const auto& mod : s.modules) mods += (mods.empty() ? "" : "\\n") + dot_escape(mod);
    os << "    s" << s.index << " [label=\"" << (mods.empty() ? "(root)" : mods) << "\\n"
       << s.node_count << " nodes\\n"
       << s.params.size() << " params\"];\n  }\n";
  }
  for (size_t i = 0; i < m.model_inputs.size(); ++i)
    for (int s : m.model_inputs[i].stages) os << "  in" << i << " -> s" << s << ";\n";
  for (size_t i = 0; i < m.model_outputs.size(); ++i)
    os << "  s" << m.model_outputs[i].stage << " -> out" << i << ";\n";
  for (const auto& e : m.edges)
    for (int c : e.consumers)
      os << "  s" << e.producer << " -> s" << c << " [label=\"" << dot_escape(e.value) << "\\n"
         << dot_escape(e.dtype + manifest::shape_str(e.shape)) << "\"" << (e.kind == "param" ? ", style=dashed" : "")
         << (e.differentiable ? "" : ", color=gray") << "];\n";
  os << "}\n";
  return os.str();
}

}  // namespace ppc::driver
