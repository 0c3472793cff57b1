// TorchScript stage emitter: a new module per stage whose forward graph is
// built by cloning the stage's nodes from the inlined source graph.
#include <torch/script.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>

#include "compiler/emitters/torchscript_emitter.h"
#include "compiler/frontends/torchscript/torchscript_source.h"
#include "schemas/error.h"

namespace ppc {

namespace {

using torch::jit::Node;
using torch::jit::Value;
using torchscript_frontend::TorchScriptSource;

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o;
}

bool is_tensor(const Value* v) { return v->type()->isSubtypeOf(*c10::TensorType::get()); }

// int, float and bool scalars: sent between stages as 0-d tensors.
bool is_scalar(const Value* v) {
  auto k = v->type()->kind();
  return k == c10::TypeKind::IntType || k == c10::TypeKind::FloatType || k == c10::TypeKind::BoolType;
}

// Scalar -> 0-d tensor (producer side).
Value* scalar_to_tensor(torch::jit::Graph& g, Value* v) {
  if (v->type()->kind() == c10::TypeKind::BoolType) v = g.insert(c10::aten::Int, {v});
  return g.insert(c10::prim::NumToTensor, {v});
}

// 0-d tensor -> the scalar type `like` has (consumer side).
Value* tensor_to_scalar(torch::jit::Graph& g, Value* t, const Value* like) {
  switch (like->type()->kind()) {
    case c10::TypeKind::IntType: return g.insert(c10::aten::Int, {t});
    case c10::TypeKind::FloatType: return g.insert(c10::aten::Float, {t});
    default: return g.insert(c10::aten::Bool, {t});
  }
}

// Values crossing a stage boundary travel as tensors. Python scalars (an
// int from size(), a float, a bool) go as 0-d tensors and are converted
// back on arrival; anything else (lists, tuples, objects) cannot cross:
// name the value and where it goes so the cut can be moved.
void check_crossable(const TorchScriptSource& src, const analysis::Partition& p, const std::string& where,
                     ir::ValueId v, const std::string& role) {
  const ir::Graph& g = src.graph();
  const Value* jv = src.jit_value(v);
  if (!jv || is_tensor(jv) || is_scalar(jv)) return;
  const ir::Value& val = g.values[v];
  std::string from = "the model";
  if (val.producer != ir::kNone) {
    int s = p.stage_of_node[val.producer];
    from = "node '" + g.nodes[val.producer].name + "' in stage " + std::to_string(s);
  }
  throw Error(where + ": " + role + " '" + val.name + "' of type " + jv->type()->repr_str() + " (from " + from +
              ") cannot cross a stage boundary (only tensors and int/float/bool scalars can); "
              "move the split point so that '" +
              val.name + "' is produced and used in one stage");
}

// The stage's params stored in `mod` under their flat names (copies: the
// source keeps its own); returns param index -> attribute name.
std::map<int, std::string> register_params(const TorchScriptSource& src, const analysis::StagePlan& sp,
                                           torch::jit::Module& mod) {
  std::map<int, std::string> flat_of;
  for (int prm : sp.params) {
    const auto& info = src.params().at(static_cast<size_t>(prm));
    std::string flat = src.artifact_param_name(prm);
    flat_of[prm] = flat;
    at::Tensor t = info.tensor.detach().clone();
    if (info.is_buffer) {
      mod.register_buffer(flat, t);
    } else {
      t.set_requires_grad(info.tensor.requires_grad());
      mod.register_parameter(flat, t, /*is_buffer=*/false);
    }
  }
  return flat_of;
}

// Source value -> its value in the stage graph: the forward's arguments
// (scalars arrive as 0-d tensors and are converted back), the params read
// from `self`, and the params derived from them (ties).
std::unordered_map<const Value*, Value*> bind_stage_values(const TorchScriptSource& src, const analysis::StagePlan& sp,
                                                           const std::map<int, std::string>& flat_of,
                                                           const std::string& where, torch::jit::Graph& graph,
                                                           Value* self) {
  const ir::Graph& g = src.graph();
  std::unordered_map<const Value*, Value*> env;
  env[src.self()] = self;
  std::set<std::string> arg_names{"self"};
  for (const auto& in : sp.inputs) {
    const Value* jv = src.jit_value(in.value);
    std::string name = torchscript_frontend::unique_identifier(g.values[in.value].name, "v", arg_names);
    Value* v = graph.addInput(name);
    if (jv && is_scalar(jv)) {
      v->setType(c10::TensorType::get());
      env[jv] = tensor_to_scalar(graph, v, jv);
      continue;
    }
    v->setType(jv ? jv->type() : c10::TensorType::get());
    if (jv) env[jv] = v;
  }
  for (const auto& [prm, flat] : flat_of) {
    const Value* jv = src.jit_value(g.params[prm].value);
    Value* v = graph.insertGetAttr(self, flat);
    v->setDebugName(flat);
    if (jv) env[jv] = v;
  }
  for (const auto& d : sp.derived) {
    const Value* ref = src.jit_value(g.params[d.reference].value);
    const Value* target = src.jit_value(g.params[d.param].value);
    if (!ref || !target || !env.count(ref)) throw std::logic_error(where + ": derived param without its reference");
    Value* v = env.at(ref);
    if (d.relation == "transpose")
      v = graph.insert(c10::aten::t, {v});
    else if (d.relation != "identity")
      throw Error(where + ": tie relation '" + d.relation + "' is not supported for TorchScript");
    env[target] = v;
  }
  return env;
}

// The stage's forward graph: its nodes cloned from the source graph, its
// outputs returned (a tuple when more than one; scalars as 0-d tensors).
std::shared_ptr<torch::jit::Graph> build_forward(const TorchScriptSource& src, const analysis::StagePlan& sp,
                                                 const std::map<int, std::string>& flat_of, const std::string& where,
                                                 const c10::ClassTypePtr& cls) {
  const ir::Graph& g = src.graph();
  auto graph = std::make_shared<torch::jit::Graph>();
  Value* self = graph->addInput("self")->setType(cls);
  std::unordered_map<const Value*, Value*> env = bind_stage_values(src, sp, flat_of, where, *graph, self);
  auto lookup = [&](Value* v) -> Value* {
    auto it = env.find(v);
    if (it == env.end())
      throw std::logic_error("torchscript emitter: " + where + " reads %" + v->debugName() +
                             ", which it does not define");
    return it->second;
  };
  for (ir::NodeId id : sp.nodes) {
    Node* n = src.jit_node(g.nodes[id].source_index);
    Node* c = graph->insertNode(graph->createClone(n, lookup));
    for (size_t i = 0; i < n->outputs().size(); ++i) env[n->outputs()[i]] = c->outputs()[i];
  }
  std::vector<Value*> outs;
  for (ir::ValueId v : sp.outputs) {
    Value* jv = src.jit_value(v);
    outs.push_back(is_scalar(jv) ? scalar_to_tensor(*graph, lookup(jv)) : lookup(jv));
  }
  if (outs.size() == 1) {
    graph->registerOutput(outs[0]);
  } else {
    graph->registerOutput(graph->insertNode(graph->createTuple(outs))->output());
  }
  return graph;
}

// ppc_stage.json: flat name -> source name, and the source's other names for
// the tensor.
std::string stage_names_json(const TorchScriptSource& src, int stage, const std::map<int, std::string>& flat_of) {
  const ir::Graph& g = src.graph();
  std::ostringstream names_json;
  bool first = true;
  names_json << "{\n  \"stage\": " << stage << ",\n  \"params\": {";
  for (const auto& [prm, flat] : flat_of) {
    names_json << (first ? "\n" : ",\n") << "    \"" << json_escape(flat) << "\": \"" << json_escape(g.params[prm].name)
               << "\"";
    first = false;
  }
  names_json << (first ? "}" : "\n  }") << ",\n  \"aliases\": {";
  first = true;
  for (const auto& [prm, flat] : flat_of) {
    const auto& aliases = src.params().at(static_cast<size_t>(prm)).aliases;
    if (aliases.empty()) continue;
    names_json << (first ? "\n" : ",\n") << "    \"" << json_escape(flat) << "\": [";
    for (size_t i = 0; i < aliases.size(); ++i)
      names_json << (i ? ", " : "") << "\"" << json_escape(aliases[i]) << "\"";
    names_json << "]";
    first = false;
  }
  names_json << (first ? "}" : "\n  }") << "\n}\n";
  return names_json.str();
}

// Writes the stage archive, checks that it loads back, and returns its bytes.
std::string save_stage(torch::jit::Module& mod, const std::string& names_json, const std::string& where,
                       const std::string& path) {
  try {
    torch::jit::ExtraFilesMap extra{{"ppc_stage.json", names_json}};
    mod.save(path, extra);
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    msg = msg.substr(0, msg.find('\n'));
    throw Error(where + ": cannot save the TorchScript stage: " + msg);
  }
  // Verify: the archive loads back in LibTorch (Python's torch.jit.load uses
  // the same reader).
  try {
    torch::jit::load(path);
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    throw Error(where + ": the written TorchScript stage does not load back: " + msg.substr(0, msg.find('\n')));
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path + ": cannot read back the stage artifact");
  std::ostringstream bytes;
  bytes << f.rdbuf();
  return bytes.str();
}

std::string emit(const TorchScriptSource& src, const analysis::Partition& p, int stage, const std::string& path) {
  const analysis::StagePlan& sp = p.stages[stage];
  const std::string where = "stage " + std::to_string(stage);
  for (const auto& in : sp.inputs)
    if (in.source != analysis::InputSource::ModelInput) check_crossable(src, p, where, in.value, "input");
  for (ir::ValueId v : sp.outputs) check_crossable(src, p, where, v, "output");

  // The module: params stored here under flat names, plus `training`.
  auto cu = std::make_shared<torch::jit::CompilationUnit>();
  auto cls = c10::ClassType::create(c10::QualifiedName("__torch__.ppc.Stage" + std::to_string(stage)), cu,
                                    /*is_module=*/true);
  cu->register_type(cls);
  torch::jit::Module mod(cu, cls);
  const std::map<int, std::string> flat_of = register_params(src, sp, mod);
  if (!cls->hasAttribute("training")) mod.register_attribute("training", c10::BoolType::get(), src.training());

  auto graph = build_forward(src, sp, flat_of, where, cls);
  auto* fn = cu->create_function(c10::QualifiedName(*cls->name(), "forward"), graph);
  cls->addMethod(fn);
  return save_stage(mod, stage_names_json(src, stage, flat_of), where, path);
}

}  // namespace

std::string emit_torchscript_stage(const SourceModel& src, const analysis::Partition& p, int stage,
                                   const std::string& path) {
  const auto* ts = dynamic_cast<const TorchScriptSource*>(&src);
  if (!ts) throw std::logic_error("emit_torchscript_stage: the source is not a TorchScript model");
  try {
    return emit(*ts, p, stage, path);
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    throw Error("stage " + std::to_string(stage) +
                ": cannot build the TorchScript stage: " + msg.substr(0, msg.find('\n')));
  }
}

}  // namespace ppc
