#include "compiler/frontends/torchscript/torchscript_frontend.h"

#include <torch/csrc/jit/frontend/error_report.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/csrc/jit/passes/lower_tuples.h>
#include <torch/script.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <unordered_map>

#include "compiler/frontends/torchscript/torchscript_source.h"
#include "schemas/error.h"

namespace ppc::torchscript_frontend {

namespace {

using torch::jit::Node;
using torch::jit::Value;

std::string first_line(const std::string& s) {
  size_t nl = s.find('\n');
  std::string line = nl == std::string::npos ? s : s.substr(0, nl);
  while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
  return line;
}

ir::DType dtype_of(c10::ScalarType t) {
  switch (t) {
    case c10::ScalarType::Float: return ir::DType::Float32;
    case c10::ScalarType::Double: return ir::DType::Float64;
    case c10::ScalarType::Half: return ir::DType::Float16;
    case c10::ScalarType::BFloat16: return ir::DType::BFloat16;
    case c10::ScalarType::Long: return ir::DType::Int64;
    case c10::ScalarType::Int: return ir::DType::Int32;
    case c10::ScalarType::Short: return ir::DType::Int16;
    case c10::ScalarType::Char: return ir::DType::Int8;
    case c10::ScalarType::Byte: return ir::DType::UInt8;
    case c10::ScalarType::Bool: return ir::DType::Bool;
    default: return ir::DType::Other;
  }
}

// dtype/shape of a JIT value from its (possibly partial) TensorType; non-tensor
// values (ints, lists, tuples, bools, ...) are Other.
void type_of(const Value* v, ir::DType& dt, ir::Shape& sh) {
  sh = ir::Shape::unranked();
  auto tt = v->type()->cast<c10::TensorType>();
  if (!tt) {
    dt = ir::DType::Other;
    return;
  }
  dt = tt->scalarType() ? dtype_of(*tt->scalarType()) : ir::DType::Undefined;
  if (auto sizes = tt->sizes().concrete_sizes()) {
    sh = ir::Shape::of({});
    for (int64_t d : *sizes) sh.dims.push_back(ir::Dim::known(d));
  }
}

// int/float/bool values cross stages as 0-d tensors: give them that type.
void mark_scalar(ir::Value& val, const Value* v) {
  switch (v->type()->kind()) {
    case c10::TypeKind::IntType: val.dtype = ir::DType::Int64; break;
    case c10::TypeKind::FloatType: val.dtype = ir::DType::Float64; break;
    case c10::TypeKind::BoolType: val.dtype = ir::DType::Bool; break;
    default: return;
  }
  val.shape = ir::Shape::of({});
  val.scalar = true;
}

bool is_random_op(const std::string& kind) {
  static const std::set<std::string> kRandom = {"aten::dropout",
                                                "aten::dropout_",
                                                "aten::feature_dropout",
                                                "aten::feature_dropout_",
                                                "aten::alpha_dropout",
                                                "aten::alpha_dropout_",
                                                "aten::feature_alpha_dropout",
                                                "aten::feature_alpha_dropout_",
                                                "aten::rand",
                                                "aten::rand_like",
                                                "aten::randn",
                                                "aten::randn_like",
                                                "aten::randint",
                                                "aten::randint_like",
                                                "aten::randperm",
                                                "aten::bernoulli",
                                                "aten::bernoulli_",
                                                "aten::multinomial",
                                                "aten::normal",
                                                "aten::normal_",
                                                "aten::uniform_",
                                                "aten::exponential_",
                                                "aten::geometric_",
                                                "aten::cauchy_",
                                                "aten::log_normal_",
                                                "aten::random_",
                                                "aten::rrelu",
                                                "aten::rrelu_with_noise",
                                                "aten::native_dropout",
                                                "aten::poisson"};
  return kRandom.count(kind) > 0;
}

// In-place aten ops ("aten::add_"): they mutate their first input, so they must
// run exactly once, where the source put them.
bool is_inplace(const std::string& kind) {
  if (kind.rfind("aten::", 0) != 0 || kind.size() < 8) return false;
  if (kind.back() != '_') return false;
  return !(kind.size() >= 2 && kind[kind.size() - 2] == '_');  // not a dunder ("aten::__and__")
}

// True when `v` is defined inside `n` (by a node of one of its blocks, or as
// a block parameter), at any depth.
bool defined_inside(const Value* v, const Node* n) {
  const Node* p = v->node();
  while (p) {
    if (p == n) return true;
    const torch::jit::Block* b = p->owningBlock();
    if (!b) return false;
    p = b->owningNode();
  }
  return false;
}

void collect_outer_uses(Node* n, torch::jit::Block* b, std::vector<Value*>& out) {
  auto visit = [&](Value* v) {
    if (!defined_inside(v, n) && std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
  };
  for (Node* inner : b->nodes()) {
    for (Value* v : inner->inputs()) visit(v);
    for (torch::jit::Block* sub : inner->blocks()) collect_outer_uses(n, sub, out);
  }
  for (Value* v : b->return_node()->inputs()) visit(v);
}

void collect_getattrs(torch::jit::Block* b, std::vector<Node*>& out) {
  for (Node* n : b->nodes()) {
    if (n->kind() == c10::prim::GetAttr) out.push_back(n);
    for (torch::jit::Block* sub : n->blocks()) collect_getattrs(sub, out);
  }
}

std::string join(const std::string& a, const std::string& b) { return a.empty() ? b : a + "." + b; }

const c10::Symbol kParamKind = c10::Symbol::fromQualString("ppc::param");

// Maps inlined call stacks to module paths. An entry's instance name is the
// attribute the method was called on ("lin", but also "0" for `self.h[0]` or
// `for blk in self.h`, where the container itself is never called), so a name
// that is not a direct child is looked up among the descendants of the current
// module with the entry's class type.
class ModulePaths {
 public:
  explicit ModulePaths(const torch::jit::Module& root) {
    for (const auto& m : root.named_modules()) modules_.emplace_back(m.name, m.value.type());
  }

  std::string path_of(const Node* n) {
    auto cs = n->callstack();
    if (!cs) return "";
    std::string path;
    for (const auto& entry : (*cs)->vec()) {
      const auto& info = std::get<2>(entry);
      if (!info) continue;
      const std::string name = info->instance_name();
      if (name == "SELF" || name == "INSTANCE_NAME_UNKNOWN") continue;
      path = resolve(path, name, info->class_type().get());
    }
    return path;
  }

 private:
  std::string resolve(const std::string& parent, const std::string& name, const c10::ClassType* type) {
    auto key = std::make_tuple(parent, name, type);
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
    const std::string direct = join(parent, name);
    std::string best;
    size_t best_depth = SIZE_MAX;
    for (const auto& [path, t] : modules_) {
      if (path == direct) {
        best = path;
        break;
      }
      if (!parent.empty() && path.rfind(parent + ".", 0) != 0) continue;
      if (path.size() < name.size() + 1 ||
          path.compare(path.size() - name.size() - 1, std::string::npos, "." + name) != 0)
        continue;
      if (t.get() != type) continue;
      size_t depth = static_cast<size_t>(std::count(path.begin(), path.end(), '.'));
      if (depth < best_depth) {
        best = path;
        best_depth = depth;
      }
    }
    if (best.empty()) best = direct;  // not found: keep the name the call stack gives
    cache_[key] = best;
    return best;
  }

  std::vector<std::pair<std::string, c10::ClassTypePtr>> modules_;
  std::map<std::tuple<std::string, std::string, const c10::ClassType*>, std::string> cache_;
};

bool holds_tensors(const c10::TypePtr& t) {
  if (t->isSubtypeOf(*c10::TensorType::get())) return true;
  if (auto o = t->cast<c10::OptionalType>()) return holds_tensors(o->getElementType());
  if (auto l = t->cast<c10::ListType>()) return holds_tensors(l->getElementType());
  return false;
}

bool returns_bool(const std::string& op) {
  static const std::set<std::string> kBool = {
      "aten::eq",      "aten::ne",          "aten::lt",         "aten::le",          "aten::gt",
      "aten::ge",      "aten::logical_and", "aten::logical_or", "aten::logical_not", "aten::logical_xor",
      "aten::isnan",   "aten::isinf",       "aten::isfinite",   "aten::__and__",     "aten::__or__",
      "aten::__xor__", "aten::__not__",     "aten::eq_",        "aten::ne_"};
  return kBool.count(op) > 0;
}

bool returns_index(const std::string& op) {
  static const std::set<std::string> kIndex = {"aten::argmax",      "aten::argmin",  "aten::argsort", "aten::nonzero",
                                               "aten::multinomial", "aten::randint", "aten::randperm"};
  return kIndex.count(op) > 0;
}

// Element type of a node's tensor outputs when the source does not record it
// (graphs loaded from an archive carry plain `Tensor` types): an explicit
// constant `dtype` argument, else op rules, else the first floating input
// (params always know theirs), else the common dtype of the known inputs.
ir::DType infer_dtype(Node* n, const std::unordered_map<const Value*, ir::DType>& known) {
  const std::string op = n->kind().toQualString();
  if (returns_bool(op)) return ir::DType::Bool;
  if (returns_index(op)) return ir::DType::Int64;
  if (const c10::FunctionSchema* schema = n->maybeSchema()) {
    auto idx = schema->argumentIndexWithName("dtype");
    if (idx && static_cast<size_t>(*idx) < n->inputs().size()) {
      auto iv = torch::jit::toIValue(n->input(static_cast<size_t>(*idx)));
      if (iv && iv->isInt()) return dtype_of(static_cast<c10::ScalarType>(iv->toInt()));
    }
  }
  if (op == "aten::embedding") {
    auto it = known.find(n->input(0));
    return it == known.end() ? ir::DType::Undefined : it->second;
  }
  if (op == "aten::type_as" && n->inputs().size() > 1) {
    auto it = known.find(n->input(1));
    return it == known.end() ? ir::DType::Undefined : it->second;
  }
  if (op.rfind("aten::", 0) != 0 && op != "prim::ListUnpack" && op != "prim::ListConstruct" &&
      op != "prim::TupleUnpack")
    return ir::DType::Undefined;
  ir::DType common = ir::DType::Undefined;
  bool mixed = false;
  for (const Value* v : n->inputs()) {
    auto it = known.find(v);
    if (it == known.end() || it->second == ir::DType::Undefined) continue;
    if (ir::dtype_is_float(it->second)) return it->second;
    if (common == ir::DType::Undefined)
      common = it->second;
    else if (common != it->second)
      mixed = true;
  }
  return mixed ? ir::DType::Undefined : common;
}

const ir::Param* param_of(const ir::Graph& g, ir::ValueId v) {
  if (v == ir::kNone || g.values[v].param == ir::kNone) return nullptr;
  return &g.params[g.values[v].param];
}

// Forward FLOPs: from the weight's shape (always known) and the activation's
// shape where the source recorded it; unknown dims count as 1.
double estimate_flops(const ir::Graph& g, const ir::Node& n) {
  const ir::Shape* out = n.outputs.empty() ? nullptr : &g.values[n.outputs[0]].shape;
  double out_elems = out && out->rank_known ? out->numel(1.0) : 1.0;
  auto in_shape = [&](size_t i) -> const ir::Shape* {
    return i < n.inputs.size() && n.inputs[i] != ir::kNone ? &g.values[n.inputs[i]].shape : nullptr;
  };
  if (n.op == "aten::linear") {
    const ir::Shape* w = in_shape(1);
    if (w && w->rank_known && w->dims.size() == 2) {
      double rows = 1.0;
      const ir::Shape* x = in_shape(0);
      if (x && x->rank_known && !x->dims.empty())
        rows = x->numel(1.0) / std::max<double>(1.0, w->dims[1].is_known() ? w->dims[1].value : 1);
      return 2.0 * rows * w->numel(1.0);
    }
    return out_elems;
  }
  if (n.op == "aten::conv1d" || n.op == "aten::conv2d" || n.op == "aten::conv3d" || n.op == "aten::_convolution" ||
      n.op == "aten::convolution") {
    const ir::Shape* w = in_shape(1);
    if (w && w->rank_known) {
      double k = w->numel(1.0);  // out_ch * in_ch/groups * kernel
      double spatial = 1.0;
      if (out && out->rank_known && out->dims.size() > 2)
        spatial = out->numel(1.0) / std::max<double>(1.0, out->dims[1].is_known() ? out->dims[1].value : 1);
      return 2.0 * k * spatial;
    }
    return out_elems;
  }
  if (n.op == "aten::matmul" || n.op == "aten::mm" || n.op == "aten::bmm" || n.op == "aten::addmm") {
    const ir::Shape* a = in_shape(n.op == "aten::addmm" ? 1 : 0);
    if (a && a->rank_known && !a->dims.empty() && a->dims.back().is_known())
      return 2.0 * out_elems * a->dims.back().value;
    return out_elems;
  }
  if (n.flags & ir::kNodeConstantSource) return 0.0;
  if (n.op.rfind("prim::", 0) == 0) return 0.0;
  return out_elems;
}

}  // namespace

class TorchScriptLowering {
 public:
  TorchScriptLowering(TorchScriptSource& src, std::string display) : src_(src), display_(std::move(display)) {}

  void run() {
    torch::jit::Module& m = src_.module_;
    auto method = m.find_method("forward");
    if (!method) throw Error(display_ + ": the TorchScript module has no 'forward' method");
    src_.training_ = m.is_training();
    src_.jit_graph_ = method->graph()->copy();
    torch::jit::Graph& graph = *src_.jit_graph_;
    torch::jit::Inline(graph);
    // Tuples built by one inlined call and unpacked by its caller would
    // otherwise cross a cut as one opaque value; this removes such pairs.
    // (No optimizer passes: they fuse nodes across module boundaries.)
    torch::jit::LowerSimpleTuples(src_.jit_graph_);
    if (graph.inputs().empty()) throw Error(display_ + ": 'forward' has no 'self' argument");

    collect_params();
    resolve_attributes();
    lower(method->function().getSchema());
  }

 private:
  // One entry per distinct tensor, named by its first name.
  void collect_params() {
    auto add = [&](const std::string& name, const at::Tensor& t, bool buffer) {
      if (!t.defined()) return;
      const void* impl = t.unsafeGetTensorImpl();
      auto it = by_impl_.find(impl);
      if (it != by_impl_.end()) {
        auto& aliases = src_.params_[it->second].aliases;
        if (name != src_.params_[it->second].name && std::find(aliases.begin(), aliases.end(), name) == aliases.end())
          aliases.push_back(name);
        return;
      }
      by_impl_[impl] = static_cast<int>(src_.params_.size());
      src_.params_.push_back(SourceParam{name, {}, t, buffer});
    };
    for (const auto& p : src_.module_.named_parameters(/*recurse=*/true)) add(p.name, p.value, false);
    for (const auto& b : src_.module_.named_buffers(/*recurse=*/true)) add(b.name, b.value, true);
  }

  // Replaces every GetAttr chain from self: tensors -> one hoisted
  // ppc::param node per tensor at the top of the graph (so blocks read it from
  // the outer scope), `training` -> one hoisted GetAttr on self, anything else
  // -> a constant in place. Module-valued GetAttrs then die.
  void resolve_attributes() {
    torch::jit::Graph& graph = *src_.jit_graph_;
    Value* self = graph.inputs()[0];
    std::vector<Node*> getattrs;
    collect_getattrs(graph.block(), getattrs);
    std::unordered_map<Value*, std::pair<std::string, c10::IValue>> objects;
    objects[self] = {"", src_.module_._ivalue()};
    std::vector<Node*> param_nodes;
    for (Node* n : getattrs) {
      auto parent = objects.find(n->input(0));
      if (parent == objects.end()) continue;  // GetAttr on an object the code built itself
      const std::string name = n->s(c10::attr::name);
      const std::string path = join(parent->second.first, name);
      if (!parent->second.second.isObject())
        throw Error(display_ + ": attribute '" + path + "' is read from a non-object");
      c10::IValue iv = parent->second.second.toObject()->getAttr(name);
      if (iv.isObject()) {
        objects[n->output()] = {path, iv};
        continue;
      }
      if (iv.isTensor()) {
        const at::Tensor& t = iv.toTensor();
        const void* impl = t.unsafeGetTensorImpl();
        auto it = by_impl_.find(impl);
        int index;
        if (it == by_impl_.end()) {  // a plain tensor attribute: stored like a buffer
          index = static_cast<int>(src_.params_.size());
          by_impl_[impl] = index;
          src_.params_.push_back(SourceParam{path, {}, t, true});
        } else {
          index = it->second;
          auto& sp = src_.params_[index];
          if (path != sp.name && std::find(sp.aliases.begin(), sp.aliases.end(), path) == sp.aliases.end())
            sp.aliases.push_back(path);
        }
        if (static_cast<size_t>(index) >= param_nodes.size()) param_nodes.resize(index + 1, nullptr);
        if (!param_nodes[index]) {
          Node* p = graph.create(kParamKind, 1);
          p->i_(c10::Symbol::attr("index"), index);
          p->output()->setType(c10::TensorType::get());
          graph.prependNode(p);
          param_nodes[index] = p;
        }
        n->output()->replaceAllUsesWith(param_nodes[index]->output());
        continue;
      }
      if (name == "training" && iv.isBool()) {
        if (!training_node_) {
          training_node_ = graph.createGetAttr(self, "training");
          training_node_->output()->setType(c10::BoolType::get());
          graph.prependNode(training_node_);
        }
        n->output()->replaceAllUsesWith(training_node_->output());
        continue;
      }
      torch::jit::WithInsertPoint guard(n);
      auto c = torch::jit::tryInsertConstant(graph, iv);
      if (!c) {
        throw Error(display_ + ": module attribute '" + path + "' of type " + iv.type()->repr_str() +
                    " cannot be baked into a stage as a constant");
      }
      (*c)->copyMetadata(n->output());
      n->output()->replaceAllUsesWith(*c);
    }
    for (auto it = getattrs.rbegin(); it != getattrs.rend(); ++it) {
      Node* n = *it;
      if (!objects.count(n->input(0))) continue;
      if (n->output()->hasUses()) {
        auto obj = objects.find(n->output());
        std::string path = obj != objects.end() ? obj->second.first : n->s(c10::attr::name);
        throw Error(display_ + ": 'forward' uses the module object '" + path + "' as a value (passed to " +
                    n->output()->uses()[0].user->kind().toQualString() + "), which ppc cannot split");
      }
      n->destroy();
    }
    for (const auto& use : self->uses())
      if (use.user != training_node_)
        throw Error(display_ + ": 'forward' uses 'self' directly (in " + std::string(use.user->kind().toQualString()) +
                    "), which ppc cannot split");
    // Hoisted nodes in param order at the very top: deterministic JIT graph.
    for (auto it = param_nodes.rbegin(); it != param_nodes.rend(); ++it)
      if (*it && *it != graph.nodes().front()) (*it)->moveBefore(graph.nodes().front());
    if (training_node_ && training_node_ != graph.nodes().front()) training_node_->moveBefore(graph.nodes().front());
  }

  std::string unique_name(std::string base) {
    if (base.empty()) base = "v";
    std::string name = base;
    for (int k = 1; used_names_.count(name); ++k) name = base + "_" + std::to_string(k);
    used_names_.insert(name);
    return name;
  }

  void lower(const c10::FunctionSchema& schema) {
    ir::Graph& g = src_.graph_;
    g.name = src_.module_.type()->name() ? src_.module_.type()->name()->name() : "module";
    lower_params();
    lower_inputs(schema);
    Node* tuple = nullptr;
    const std::vector<Value*> outputs = model_outputs(tuple);
    lower_nodes(tuple, output_names(outputs));
    for (const ir::Node& node : g.nodes) g.nested_modules.erase(node.module);
    for (Value* o : outputs) {
      auto it = ids_.find(o);
      if (it == ids_.end()) throw Error(display_ + ": a model output is not produced by 'forward'");
      g.mark_output(it->second);
    }
    try {
      g.sort_topologically();
    } catch (const std::exception& e) { throw Error(display_ + ": " + e.what()); }
    for (size_t i = 0; i < g.nodes.size(); ++i)
      if (g.nodes[i].source_index != static_cast<int>(i))
        throw std::logic_error("torchscript: node order changed by sorting");
    std::string problem = g.verify();
    if (!problem.empty()) throw Error(display_ + ": malformed graph: " + problem);
    (void)param_of;
  }

  // The IR value of a JIT value; src_.values_ maps back.
  void note_value(const Value* v, ir::ValueId id) {
    ids_[v] = id;
    if (src_.values_.size() <= static_cast<size_t>(id)) src_.values_.resize(id + 1, nullptr);
    src_.values_[id] = const_cast<Value*>(v);
  }

  // Params, in module order (their ppc::param nodes are at the top).
  void lower_params() {
    ir::Graph& g = src_.graph_;
    std::vector<Value*> param_value(src_.params_.size(), nullptr);
    for (Node* n : src_.jit_graph_->nodes())
      if (n->kind() == kParamKind) param_value[n->i(c10::Symbol::attr("index"))] = n->output();
    for (size_t i = 0; i < src_.params_.size(); ++i) {
      const SourceParam& sp = src_.params_[i];
      const at::Tensor& t = sp.tensor;
      ir::Shape sh = ir::Shape::of({});
      for (int64_t d : t.sizes()) sh.dims.push_back(ir::Dim::known(d));
      ir::DType dt = dtype_of(t.scalar_type());
      used_names_.insert(sp.name);
      ir::ValueId v =
          g.add_param(sp.name, dt, sh, static_cast<int64_t>(t.numel()) * static_cast<int64_t>(t.element_size()));
      ir::Param& p = g.params[g.values[v].param];
      p.is_float = ir::dtype_is_float(dt) && !sp.is_buffer;
      p.aliases = sp.aliases;
      if (param_value[i]) {
        note_value(param_value[i], v);
        dtypes_[param_value[i]] = dt;
      } else
        src_.values_.resize(std::max(src_.values_.size(), static_cast<size_t>(v) + 1), nullptr);
    }
  }

  // Model inputs: forward's arguments after self, named as the user wrote them.
  void lower_inputs(const c10::FunctionSchema& schema) {
    torch::jit::Graph& graph = *src_.jit_graph_;
    for (size_t i = 1; i < graph.inputs().size(); ++i) {
      Value* in = graph.inputs()[i];
      std::string name = i < schema.arguments().size() ? schema.arguments()[i].name() : in->debugNameBase();
      ir::DType dt;
      ir::Shape sh;
      type_of(in, dt, sh);
      note_value(in, src_.graph_.add_input(unique_name(name), dt, sh));
      if (dt != ir::DType::Undefined && dt != ir::DType::Other) dtypes_[in] = dt;
    }
  }

  // Outputs: a returned tuple becomes one model output per element (`tuple`
  // is then its TupleConstruct, which is not lowered).
  std::vector<Value*> model_outputs(Node*& tuple) const {
    torch::jit::Graph& graph = *src_.jit_graph_;
    Value* ret = graph.outputs().at(0);
    std::vector<Value*> outputs{ret};
    if (graph.outputs().size() == 1 && ret->node()->kind() == c10::prim::TupleConstruct &&
        ret->node()->owningBlock() == graph.block() && ret->uses().size() == 1) {
      tuple = ret->node();
      outputs.assign(tuple->inputs().begin(), tuple->inputs().end());
    } else if (graph.outputs().size() > 1) {
      outputs.assign(graph.outputs().begin(), graph.outputs().end());
    }
    return outputs;
  }

  std::unordered_map<const Value*, std::string> output_names(const std::vector<Value*>& outputs) {
    std::unordered_map<const Value*, std::string> output_name;
    for (size_t k = 0; k < outputs.size(); ++k) {
      if (output_name.count(outputs[k])) continue;
      output_name[outputs[k]] = unique_name(outputs.size() == 1 ? "output" : "output." + std::to_string(k));
    }
    return output_name;
  }

  // One IR node per top-level JIT node (except the param nodes and the
  // returned tuple), in graph order.
  void lower_nodes(const Node* tuple, const std::unordered_map<const Value*, std::string>& output_name) {
    ir::Graph& g = src_.graph_;
    std::map<std::string, int> node_name_count;
    ModulePaths paths(src_.module_);
    int index = 0;
    for (Node* n : src_.jit_graph_->nodes()) {
      if (n->kind() == kParamKind || n == tuple) continue;
      ir::Node node;
      node.op = n->kind().toQualString();
      node.module = paths.path_of(n);
      std::string base = (node.module.empty() ? "" : node.module + "/") + node.op;
      int count = node_name_count[base]++;
      node.name = count == 0 ? base : base + "_" + std::to_string(count);
      node.source_index = index++;
      src_.nodes_.push_back(n);
      if (n->kind() == c10::prim::Constant || n == training_node_) node.flags |= ir::kNodeConstantSource;
      if (is_random_op(node.op) || is_inplace(node.op) || (n->hasSideEffects() && n->blocks().empty()))
        node.flags |= ir::kNodeNondeterministic;
      if (!n->blocks().empty()) node.flags |= ir::kNodeHasSubgraph;
      lower_node_inputs(n, node);
      lower_node_outputs(n, output_name, node);
      ir::NodeId id = g.add_node(std::move(node));
      g.nodes[id].flops = estimate_flops(g, g.nodes[id]);
      if (!n->blocks().empty()) record_nested_modules(n, paths, id);
    }
  }

  // A node's inputs, plus the outer values its blocks read.
  void lower_node_inputs(Node* n, ir::Node& node) const {
    std::vector<Value*> inputs;
    for (Value* v : n->inputs())
      if (n != training_node_) inputs.push_back(v);
    if (!n->blocks().empty()) {
      std::vector<Value*> outer;
      for (torch::jit::Block* b : n->blocks()) collect_outer_uses(n, b, outer);
      for (Value* v : outer)
        if (std::find(inputs.begin(), inputs.end(), v) == inputs.end()) inputs.push_back(v);
    }
    for (Value* v : inputs) {
      auto it = ids_.find(v);
      if (it == ids_.end())
        throw Error(display_ + ": node " + node.name + " reads value '%" + v->debugName() +
                    "', which is not defined before it");
      node.inputs.push_back(it->second);
    }
  }

  // A node's outputs as new IR values, typed from the JIT types, else from
  // the element types of its inputs.
  void lower_node_outputs(Node* n, const std::unordered_map<const Value*, std::string>& output_name, ir::Node& node) {
    ir::Graph& g = src_.graph_;
    ir::DType inferred = n->blocks().empty() ? infer_dtype(n, dtypes_) : ir::DType::Undefined;
    for (Value* v : n->outputs()) {
      ir::DType dt;
      ir::Shape sh;
      type_of(v, dt, sh);
      if (dt == ir::DType::Undefined && holds_tensors(v->type())) {
        dt = v->type()->isSubtypeOf(*c10::TensorType::get()) ? inferred : ir::DType::Other;
        if (inferred != ir::DType::Undefined) dtypes_[v] = inferred;
      } else if (dt != ir::DType::Other) {
        dtypes_[v] = dt;
      }
      auto on = output_name.find(v);
      std::string name = on != output_name.end() ? on->second : unique_name(v->debugName());
      ir::ValueId id = g.add_value(name, dt, sh);
      mark_scalar(g.values[id], v);
      note_value(v, id);
      node.outputs.push_back(id);
    }
  }

  // Module paths of the nodes inside this node's blocks (any depth): a
  // module called only there cannot be cut at (see nested_modules).
  void record_nested_modules(Node* n, ModulePaths& paths, ir::NodeId id) {
    std::vector<torch::jit::Block*> pending(n->blocks().begin(), n->blocks().end());
    while (!pending.empty()) {
      torch::jit::Block* b = pending.back();
      pending.pop_back();
      for (Node* inner : b->nodes()) {
        std::string path = paths.path_of(inner);
        if (!path.empty()) src_.graph_.nested_modules.emplace(path, id);
        for (torch::jit::Block* sub : inner->blocks()) pending.push_back(sub);
      }
    }
  }

  TorchScriptSource& src_;
  std::string display_;
  std::unordered_map<const void*, int> by_impl_;
  Node* training_node_ = nullptr;
  std::set<std::string> used_names_;
  // While lowering: the IR value of each JIT value, and the element types
  // known or inferred.
  std::unordered_map<const Value*, ir::ValueId> ids_;
  std::unordered_map<const Value*, ir::DType> dtypes_;
};

std::unique_ptr<SourceModel> load_torchscript(const std::string& path, const std::string& display_name,
                                              std::vector<std::string>* notes) {
  auto src = std::make_unique<TorchScriptSource>();
  try {
    src->module_ = torch::jit::load(path);
  } catch (const torch::jit::ErrorReport&) {
    // The archive's code does not compile. LibTorch's what() of this error
    // highlights that code's source range, which a damaged archive's debug
    // records make throw again, inside a noexcept function: an abort. So its
    // text is not read.
    throw Error(display_name + ": cannot load TorchScript: the archive's code does not compile");
  } catch (const c10::Error& e) {
    throw Error(display_name + ": cannot load TorchScript: " + first_line(e.what_without_backtrace()));
  } catch (const std::exception& e) {
    throw Error(display_name + ": cannot load TorchScript: " + first_line(e.what()));
  }
  try {
    TorchScriptLowering(*src, display_name).run();
  } catch (const c10::Error& e) {
    throw Error(display_name + ": cannot lower TorchScript: " + first_line(e.what_without_backtrace()));
  }
  // Attribute names of params in stage modules: dots become '_', made
  // unique over the whole model (so every stage and the manifest agree).
  std::set<std::string> taken{"training", "forward"};
  for (const auto& p : src->params()) src->flat_names_.push_back(unique_identifier(p.name, "p_", taken));
  for (const auto& p : src->params())
    if (!p.aliases.empty() && notes) {
      std::string line = display_name + ": '" + p.name + "' is also reachable as";
      for (size_t i = 0; i < p.aliases.size(); ++i) line += (i ? ", '" : " '") + p.aliases[i] + "'";
      line += " (one tensor, one param)";
      notes->push_back(line);
    }
  return src;
}

}  // namespace ppc::torchscript_frontend
