#include "runtime/stages/pt2_program.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/version.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <unordered_map>

#include "schemas/error.h"

namespace ppc::runtime {

using json = nlohmann::json;

namespace {

constexpr int64_t kSchemaMajor = 8;  // ExportedProgram schema major version read (PyTorch 2.11 writes 8.17)

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// One argument of a step, planned at load: a constant, a value of the
// environment, the training flag, or a list mixing constants and values.
struct ArgPlan {
  enum class Kind { Const, Value, Train, IntList, DoubleList, TensorList, OptTensorList };
  Kind kind = Kind::Const;
  c10::IValue constant;
  int slot = -1;
  std::vector<int64_t> ints;
  std::vector<double> doubles;
  std::vector<int> slots;  ///< per element: a value, or -1 (the constant element; None for tensors)
  bool wrap = false;       ///< a Python number where the schema wants a tensor (add.Tensor(x, 1))
};

struct OutPlan {
  bool is_list = false;
  int slot = -1;           ///< -1: not bound
  std::vector<int> slots;  ///< a Tensor[] return
};

struct Step {
  enum class Kind { Op, SymSize, SymStride, SymNumel, SymStorageOffset, Py };
  Kind kind = Kind::Op;
  std::string name, target, py;
  std::optional<c10::OperatorHandle> op;
  std::vector<ArgPlan> args;
  std::vector<OutPlan> outs;
  std::vector<int> release;  ///< values no later step reads
};

// A byte tensor over all of `storage` (on its device).
at::Tensor byte_view(const c10::Storage& storage) {
  return at::empty({0}, at::TensorOptions().dtype(at::kByte).device(storage.device())).set_(storage);
}

struct Payload {
  std::string record;  ///< "data/weights/weight_0"
  json meta;           ///< tensor_meta
};

// --- scalars of the schema (its own enums) and symbolic arithmetic ---------

c10::ScalarType scalar_type_of(int64_t v) {
  switch (v) {
    case 1: return c10::kByte;
    case 2: return c10::kChar;
    case 3: return c10::kShort;
    case 4: return c10::kInt;
    case 5: return c10::kLong;
    case 6: return c10::kHalf;
    case 7: return c10::kFloat;
    case 8: return c10::kDouble;
    case 9: return c10::kComplexHalf;
    case 10: return c10::kComplexFloat;
    case 11: return c10::kComplexDouble;
    case 12: return c10::kBool;
    case 13: return c10::kBFloat16;
#if TORCH_VERSION_MAJOR >= 2
    case 28: return c10::kUInt16;
    case 29: return c10::ScalarType::Float8_e4m3fn;
    case 30: return c10::ScalarType::Float8_e5m2;
    case 31: return c10::ScalarType::Float8_e4m3fnuz;
    case 32: return c10::ScalarType::Float8_e5m2fnuz;
#endif
    default: throw Error("unknown scalar type " + std::to_string(v) + " (the schema's ScalarType)");
  }
}

c10::Layout layout_of(int64_t v) {
  switch (v) {
    case 1: return c10::kSparse;
    case 2: return c10::kSparseCsr;
    case 6: return c10::kMkldnn;
    case 7: return c10::kStrided;
    default: throw Error("unsupported layout " + std::to_string(v) + " (the schema's Layout)");
  }
}

c10::MemoryFormat memory_format_of(int64_t v) {
  switch (v) {
    case 1: return c10::MemoryFormat::Contiguous;
    case 2: return c10::MemoryFormat::ChannelsLast;
    case 3: return c10::MemoryFormat::ChannelsLast3d;
    case 4: return c10::MemoryFormat::Preserve;
    default: throw Error("unknown memory format " + std::to_string(v) + " (the schema's MemoryFormat)");
  }
}

double sym_to_double(const c10::IValue& v) {
  if (v.isDouble()) return v.toDouble();
  if (v.isBool()) return v.toBool() ? 1.0 : 0.0;
  return static_cast<double>(v.toInt());
}

bool sym_is_int(const c10::IValue& v) { return v.isInt() || v.isBool(); }
int64_t sym_to_int(const c10::IValue& v) { return v.isBool() ? (v.toBool() ? 1 : 0) : v.toInt(); }

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// Python functions on symbolic scalars that torch.export records as nodes
// (`_operator.mul` of a sym_size by 2, ...), evaluated with Python's rules.
const std::set<std::string>& python_functions() {
  static const std::set<std::string> names = {
      "_operator.add", "_operator.sub",  "_operator.mul", "_operator.floordiv", "_operator.truediv",
      "_operator.mod", "_operator.pow",  "_operator.neg", "_operator.eq",       "_operator.ne",
      "_operator.lt",  "_operator.le",   "_operator.gt",  "_operator.ge",       "_operator.and_",
      "_operator.or_", "_operator.not_", "torch.sym_max", "torch.sym_min",      "torch.sym_float",
      "torch.sym_int", "torch.sym_not",  "math.ceil",     "math.floor",         "math.trunc"};
  return names;
}

c10::IValue eval_python(const std::string& fn, const std::vector<c10::IValue>& a) {
  std::string f = fn.substr(fn.find('.') + 1);
  auto need = [&](size_t n) {
    if (a.size() != n)
      throw Error(fn + " takes " + std::to_string(n) + " arguments, the node gives " + std::to_string(a.size()));
  };
  if (f == "neg" || f == "not_" || f == "sym_not" || f == "sym_float" || f == "sym_int" || f == "ceil" ||
      f == "floor" || f == "trunc") {
    need(1);
    const c10::IValue& x = a[0];
    if (f == "neg") return sym_is_int(x) ? c10::IValue(-sym_to_int(x)) : c10::IValue(-x.toDouble());
    if (f == "not_" || f == "sym_not") return c10::IValue(sym_to_double(x) == 0.0);
    if (f == "sym_float") return c10::IValue(sym_to_double(x));
    if (sym_is_int(x)) return c10::IValue(sym_to_int(x));
    double d = x.toDouble();
    return c10::IValue(static_cast<int64_t>(f == "ceil" ? std::ceil(d) : f == "floor" ? std::floor(d) : std::trunc(d)));
  }
  need(2);
  const c10::IValue &x = a[0], &y = a[1];
  bool ints = sym_is_int(x) && sym_is_int(y);
  double dx = sym_to_double(x), dy = sym_to_double(y);
  if (f == "eq") return c10::IValue(dx == dy);
  if (f == "ne") return c10::IValue(dx != dy);
  if (f == "lt") return c10::IValue(dx < dy);
  if (f == "le") return c10::IValue(dx <= dy);
  if (f == "gt") return c10::IValue(dx > dy);
  if (f == "ge") return c10::IValue(dx >= dy);
  if (f == "and_") return c10::IValue(dx != 0.0 && dy != 0.0);
  if (f == "or_") return c10::IValue(dx != 0.0 || dy != 0.0);
  if (f == "truediv") {
    if (dy == 0.0) throw Error("division by zero");
    return c10::IValue(dx / dy);
  }
  if (!ints) {
    if (f == "add") return c10::IValue(dx + dy);
    if (f == "sub") return c10::IValue(dx - dy);
    if (f == "mul") return c10::IValue(dx * dy);
    if (f == "pow") return c10::IValue(std::pow(dx, dy));
    if (f == "sym_max") return c10::IValue(std::max(dx, dy));
    if (f == "sym_min") return c10::IValue(std::min(dx, dy));
    if (dy == 0.0) throw Error("division by zero");
    if (f == "floordiv") return c10::IValue(std::floor(dx / dy));
    return c10::IValue(dx - dy * std::floor(dx / dy));  // mod
  }
  int64_t ix = sym_to_int(x), iy = sym_to_int(y);
  if (f == "add") return c10::IValue(ix + iy);
  if (f == "sub") return c10::IValue(ix - iy);
  if (f == "mul") return c10::IValue(ix * iy);
  if (f == "sym_max") return c10::IValue(std::max(ix, iy));
  if (f == "sym_min") return c10::IValue(std::min(ix, iy));
  if (f == "pow") {
    if (iy < 0) return c10::IValue(std::pow(dx, dy));
    int64_t r = 1;
    for (int64_t i = 0; i < iy; ++i) r *= ix;
    return c10::IValue(r);
  }
  if (iy == 0) throw Error("division by zero");
  if (f == "floordiv") return c10::IValue(floor_div(ix, iy));
  return c10::IValue(ix - iy * floor_div(ix, iy));  // mod
}

// A number given for a Tensor argument becomes what Python's argument parser
// makes of it: a 0-dim "wrapped number" tensor (type promotion treats it as a
// scalar).
c10::IValue wrapped_number(const c10::IValue& v) {
  if (!v.isInt() && !v.isDouble() && !v.isBool()) return v;
  at::Tensor t = v.isInt()      ? at::scalar_tensor(v.toInt(), at::kLong)
                 : v.isDouble() ? at::scalar_tensor(v.toDouble(), at::kDouble)
                                : at::scalar_tensor(v.toBool(), at::kBool);
  t.unsafeGetTensorImpl()->set_wrapped_number(true);
  return c10::IValue(t);
}

// A float of the serialization: JSON has no infinities, so they come as strings.
double json_float(const json& v) {
  if (v.is_string()) {
    std::string s = v.get<std::string>();
    if (s == "Infinity" || s == "inf") return std::numeric_limits<double>::infinity();
    if (s == "-Infinity" || s == "-inf") return -std::numeric_limits<double>::infinity();
    if (s == "NaN" || s == "nan") return std::numeric_limits<double>::quiet_NaN();
    throw Error("not a number: '" + s + "'");
  }
  return v.get<double>();
}

std::vector<double> json_floats(const json& v) {
  std::vector<double> out;
  for (const auto& e : v) out.push_back(json_float(e));
  return out;
}

c10::IValue materialize(const ArgPlan& a, const std::vector<c10::IValue>& env, std::optional<bool> training) {
  switch (a.kind) {
    case ArgPlan::Kind::Const: return a.constant;
    case ArgPlan::Kind::Value: return a.wrap ? wrapped_number(env[a.slot]) : env[a.slot];
    case ArgPlan::Kind::Train: return training ? c10::IValue(*training) : a.constant;
    case ArgPlan::Kind::IntList: {
      std::vector<int64_t> v = a.ints;
      for (size_t i = 0; i < v.size(); ++i)
        if (a.slots[i] >= 0) v[i] = env[a.slots[i]].toInt();
      return c10::IValue(v);
    }
    case ArgPlan::Kind::DoubleList: {
      std::vector<double> v = a.doubles;
      for (size_t i = 0; i < v.size(); ++i)
        if (a.slots[i] >= 0) v[i] = sym_to_double(env[a.slots[i]]);
      return c10::IValue(v);
    }
    case ArgPlan::Kind::TensorList: {
      c10::List<at::Tensor> l;
      for (int s : a.slots) l.push_back(env[s].toTensor());
      return c10::IValue(l);
    }
    case ArgPlan::Kind::OptTensorList: {
      c10::List<c10::optional<at::Tensor>> l;
      for (int s : a.slots) l.push_back(s < 0 ? c10::optional<at::Tensor>() : env[s].toTensor());
      return c10::IValue(l);
    }
  }
  return {};
}

// 2.x returns symbolic ints from some ops as SymInt IValues: here they are
// concrete, and the environment holds plain ints.
c10::IValue concrete(c10::IValue v) {
#if TORCH_VERSION_MAJOR >= 2
  if (v.isSymInt()) return c10::IValue(v.toSymInt().expect_int());
  if (v.isSymFloat()) return c10::IValue(v.toSymFloat().expect_float());
  if (v.isSymBool()) return c10::IValue(v.toSymBool().guard_bool(__FILE__, __LINE__));
#endif
  return v;
}

struct Record {
  std::string name;
  std::string bytes;  ///< empty for weight records (written from the live storage)
};

}  // namespace

struct Pt2Program::Impl {
  std::string path;
  Options options;
  std::optional<bool> training;

  // Values: one slot per graph value (tensors and symbolic scalars).
  std::unordered_map<std::string, int> slot_of;
  std::vector<int> root;  ///< per slot: the slot whose storage it views (itself when none)
  int num_slots = 0;
  std::vector<Step> steps;
  std::vector<std::string> input_names, output_names;
  std::vector<int> input_slots, output_slots;
  std::vector<bool> input_written;
  std::set<int> written_roots;  ///< values some op writes in place (by their root)

  // State bound to placeholders at every run.
  std::vector<std::pair<int, at::Tensor>> bound;
  std::vector<std::pair<int, c10::IValue>> bound_constants;
  std::vector<std::pair<std::string, int>> params, buffers;  // fqn -> slot (signature order)
  std::vector<std::pair<int, at::Tensor>> buffer_mutations;  // output value -> the buffer it updates
  std::vector<std::pair<std::string, at::Tensor>> param_list, buffer_list;
  std::vector<std::string> state_names;
  std::map<std::string, at::Tensor> state_tensors;  ///< fqn -> live tensor (signature's names)

  // Node timing (--profile): per step, and the moments the gradients of the
  // steps' outputs became complete in the backward running now (shared with
  // the hooks, which may outlive the program and run on autograd's threads).
  bool timing = false;
  std::vector<double> step_us, step_bw_us;
  struct BackwardLog {
    std::mutex mutex;
    std::vector<std::pair<int, std::chrono::steady_clock::time_point>> events;
  };
  std::shared_ptr<BackwardLog> bw = std::make_shared<BackwardLog>();

  // The archive, for save().
  std::vector<Record> records;
  std::map<std::string, c10::Storage> storages;  ///< record name -> the live bytes
  c10::Device device{c10::kCPU};                 ///< where the state lives (to())

  int new_slot(const std::string& name, const std::string& where);
  int use(const std::string& name, const std::string& where) const;
  [[noreturn]] void fail(const std::string& msg) const { throw Error(path + ": " + msg); }

  void read_archive(const Options& o);
  json read_json(caffe2::serialize::PyTorchStreamReader& r, const std::string& name);
  void load_state(caffe2::serialize::PyTorchStreamReader& r, const json& sig);
  at::Tensor make_tensor(caffe2::serialize::PyTorchStreamReader& r, const Payload& p, const std::string& fqn,
                         std::map<std::string, at::Tensor>& made);
  void plan_signature_inputs(const json& graph, const json& sig);
  void plan_outputs(const json& sig);
  void plan_nodes(const json& graph);
  Step plan_node(const json& node, size_t index);
  void plan_op(Step& step, const json& node, const std::string& where);
  void plan_sym_or_py(Step& step, const json& node, const std::string& where);
  ArgPlan plan_arg(const json& arg, const c10::Argument* schema_arg, const std::string& where);
  void plan_returns(Step& step, const json& node, const std::string& where);
  void plan_releases();
  void collect_state();

  void exec(const Step& s, std::vector<c10::IValue>& env) const;
  void hook_backward(const Step& s, const std::vector<c10::IValue>& env, int step) const;
};

int Pt2Program::Impl::new_slot(const std::string& name, const std::string& where) {
  if (name.empty()) fail(where + ": a value without a name");
  if (!slot_of.emplace(name, num_slots).second) fail(where + ": value '" + name + "' is defined twice");
  root.push_back(num_slots);
  return num_slots++;
}

int Pt2Program::Impl::use(const std::string& name, const std::string& where) const {
  auto it = slot_of.find(name);
  if (it == slot_of.end()) fail(where + ": uses value '" + name + "' that nothing before it defines");
  return it->second;
}

json Pt2Program::Impl::read_json(caffe2::serialize::PyTorchStreamReader& r, const std::string& name) {
  if (!r.hasRecord(name)) fail("not a torch.export archive: no record '" + name + "'");
  auto [ptr, size] = r.getRecord(name);
  std::string text(static_cast<const char*>(ptr.get()), size);
  try {
    return json::parse(text);
  } catch (const json::exception& e) { fail(name + ": " + first_line(e.what())); }
}

void Pt2Program::Impl::read_archive(const Options& o) {
  options = o;
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  try {
    reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
  } catch (const c10::Error& e) {
    fail("cannot read the .pt2 archive (truncated or not a zip archive?): " + first_line(e.what_without_backtrace()));
  }
  auto& r = *reader;
  try {
    if (r.hasRecord("archive_format")) {
      auto [ptr, size] = r.getRecord("archive_format");
      std::string format(static_cast<const char*>(ptr.get()), size);
      if (format != "pt2") fail("archive_format is '" + format + "', not 'pt2' (an AOTInductor package?)");
    }
    json model = read_json(r, "models/model.json");
    const json& version = model.at("schema_version");
    int64_t major = version.at("major").get<int64_t>();
    if (major != kSchemaMajor)
      fail("ExportedProgram schema version " + std::to_string(major) + "." + version.at("minor").dump() +
           ": pprun reads schema major version " + std::to_string(kSchemaMajor) + " (PyTorch 2.11 writes 8.17)");
    const json& gm = model.at("graph_module");
    const json& graph = gm.at("graph");
    const json& sig = gm.at("signature");
    if (!options.check_only) {
      load_state(r, sig);
      for (const auto& name : r.getAllRecords()) {
        if (storages.count(name)) {
          records.push_back({name, ""});
          continue;
        }
        auto [ptr, size] = r.getRecord(name);
        records.push_back({name, std::string(static_cast<const char*>(ptr.get()), size)});
      }
    }
    plan_signature_inputs(graph, sig);
    plan_nodes(graph);
    plan_outputs(sig);
    plan_releases();
  } catch (const json::exception& e) {
    fail("models/model.json: " + first_line(e.what()));
  } catch (const c10::Error& e) { fail("cannot read the .pt2 archive: " + first_line(e.what_without_backtrace())); }
}

// Reads every weight and constant the signature names into live tensors
// (views of one storage per weight file: names sharing a file share it).
void Pt2Program::Impl::load_state(caffe2::serialize::PyTorchStreamReader& r, const json& sig) {
  std::map<std::string, Payload> payloads;
  const std::pair<const char*, const char*> configs[] = {{"data/weights/", "model_weights_config.json"},
                                                         {"data/constants/", "model_constants_config.json"}};
  for (const auto& [dir, file] : configs) {
    std::string cfg_name = std::string(dir) + file;
    if (!r.hasRecord(cfg_name)) continue;
    json cfg = read_json(r, cfg_name);
    for (const auto& [fqn, p] : cfg.at("config").items()) {
      if (p.value("use_pickle", false))
        fail(cfg_name + ": '" + fqn + "' is pickled (a tensor subclass or custom object): not supported");
      payloads[fqn] = Payload{dir + p.at("path_name").get<std::string>(), p.at("tensor_meta")};
      state_names.push_back(fqn);
    }
  }
  std::map<std::string, at::Tensor> made;  // record + meta -> tensor (ties: one tensor)
  for (const auto& spec : sig.at("input_specs")) {
    std::string fqn;
    if (spec.contains("parameter")) fqn = spec["parameter"].at("parameter_name");
    if (spec.contains("buffer")) fqn = spec["buffer"].at("buffer_name");
    if (spec.contains("tensor_constant")) fqn = spec["tensor_constant"].at("tensor_constant_name");
    if (fqn.empty()) continue;
    auto it = payloads.find(fqn);
    if (it == payloads.end()) fail("'" + fqn + "' is in the graph signature but the archive holds no data for it");
    state_tensors[fqn] = make_tensor(r, it->second, fqn, made);
  }
}

at::Tensor Pt2Program::Impl::make_tensor(caffe2::serialize::PyTorchStreamReader& r, const Payload& p,
                                         const std::string& fqn, std::map<std::string, at::Tensor>& made) {
  std::string key = p.record + " " + p.meta.dump();
  auto hit = made.find(key);
  if (hit != made.end()) return hit->second;
  const json& m = p.meta;
  std::string where = "'" + fqn + "' (" + p.record + ")";
  if (m.value("layout", 7) != 7) fail(where + ": only strided tensors are supported");
  c10::ScalarType dtype;
  try {
    dtype = scalar_type_of(m.at("dtype").get<int64_t>());
  } catch (const Error& e) { fail(where + ": " + e.what()); }
  auto ints = [&](const json& list) {
    std::vector<int64_t> v;
    for (const auto& d : list) {
      if (!d.contains("as_int")) fail(where + ": a symbolic size in a stored tensor");
      v.push_back(d["as_int"].get<int64_t>());
    }
    return v;
  };
  std::vector<int64_t> sizes = ints(m.at("sizes")), strides = ints(m.at("strides"));
  int64_t offset = m.at("storage_offset").at("as_int").get<int64_t>();
  if (sizes.size() != strides.size()) fail(where + ": sizes and strides differ in length");
  auto st = storages.find(p.record);
  if (st == storages.end()) {
    if (!r.hasRecord(p.record)) fail(where + ": no record " + p.record + " in the archive");
    auto [ptr, size] = r.getRecord(p.record);
    c10::Storage storage(c10::Storage::use_byte_size_t(), static_cast<int64_t>(size), std::move(ptr), nullptr, false);
    st = storages.emplace(p.record, std::move(storage)).first;
  }
  int64_t extent = offset + 1;  // one past the last element (empty tensors need none)
  bool empty = false;
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] < 0 || strides[i] < 0) fail(where + ": negative size or stride");
    if (sizes[i] == 0) empty = true;
    extent += (sizes[i] - 1) * strides[i];
  }
  int64_t item = static_cast<int64_t>(c10::elementSize(dtype));
  if (!empty && extent * item > static_cast<int64_t>(st->second.nbytes()))
    fail(where + ": the weight file holds " + std::to_string(st->second.nbytes()) + " bytes, the tensor needs " +
         std::to_string(extent * item));
  at::Tensor t = at::empty({0}, at::TensorOptions().dtype(dtype)).set_(st->second, offset, sizes, strides);
  made.emplace(key, t);
  return t;
}

// Placeholders: parameters, buffers and constants bound to the live state,
// user inputs to the run's inputs.
void Pt2Program::Impl::plan_signature_inputs(const json& graph, const json& sig) {
  std::set<at::TensorImpl*> trainable;
  for (const auto& spec : sig.at("input_specs")) {
    if (spec.contains("user_input")) {
      const json& arg = spec["user_input"].at("arg");
      if (!arg.contains("as_tensor"))
        fail("user input " + arg.dump() + ": only tensor inputs are supported (a stage's inputs are tensors)");
      std::string name = arg["as_tensor"].at("name");
      input_names.push_back(name);
      input_slots.push_back(new_slot(name, "user input"));
      continue;
    }
    if (spec.contains("constant_input")) {
      const json& c = spec["constant_input"];
      const json& v = c.at("value");
      c10::IValue iv;
      if (v.contains("as_int")) iv = v["as_int"].get<int64_t>();
      if (v.contains("as_float")) iv = json_float(v["as_float"]);
      if (v.contains("as_bool")) iv = v["as_bool"].get<bool>();
      if (v.contains("as_string")) iv = v["as_string"].get<std::string>();
      bound_constants.emplace_back(new_slot(c.at("name"), "constant input"), iv);
      continue;
    }
    std::string kind, fqn, name;
    for (const char* k : {"parameter", "buffer", "tensor_constant"}) {
      if (!spec.contains(k)) continue;
      kind = k;
      const json& s = spec[k];
      name = s.at("arg").at("name");
      fqn = s.at(kind == "parameter" ? "parameter_name" : kind == "buffer" ? "buffer_name" : "tensor_constant_name");
    }
    if (kind.empty())
      fail("graph signature: unsupported input kind " + spec.begin().key() + " (custom objects, tokens)");
    int slot = new_slot(name, "placeholder");
    if (kind == "parameter") params.emplace_back(fqn, slot);
    if (kind == "buffer" || kind == "tensor_constant") buffers.emplace_back(fqn, slot);  // state the manifest lists
    if (options.check_only) continue;
    at::Tensor t = state_tensors.at(fqn);
    if (kind == "parameter" && !options.frozen.count(fqn)) t.set_requires_grad(true);
    bound.emplace_back(slot, t);
  }
  size_t placeholders = graph.at("inputs").size();
  if (placeholders != static_cast<size_t>(num_slots))
    fail("the graph has " + std::to_string(placeholders) + " inputs, its signature " + std::to_string(num_slots));
}

void Pt2Program::Impl::plan_outputs(const json& sig) {
  for (const auto& spec : sig.at("output_specs")) {
    std::string kind = spec.begin().key();
    const json& s = spec.begin().value();
    const json& arg = s.at("arg");
    if (kind == "user_output" || kind == "loss_output") {
      std::string name = arg.contains("as_tensor") ? arg["as_tensor"].at("name").get<std::string>()
                         : arg.contains("name")    ? arg["name"].get<std::string>()
                                                   : "";
      if (name.empty()) fail("graph output " + arg.dump() + ": only tensor outputs are supported");
      output_names.push_back(name);
      output_slots.push_back(use(name, "graph output"));
    } else if (kind == "buffer_mutation" || kind == "parameter_mutation") {
      std::string fqn = s.at(kind == "buffer_mutation" ? "buffer_name" : "parameter_name");
      int slot = use(arg.at("name"), "graph output");
      if (!options.check_only) buffer_mutations.emplace_back(slot, state_tensors.at(fqn));
    } else if (kind != "user_input_mutation") {
      // A user input written in place was cloned by run(); its new value is
      // not passed on (a stage's inputs are not its outputs).
      fail("graph signature: unsupported output kind " + kind + " (gradients, tokens)");
    }
  }
}

void Pt2Program::Impl::plan_nodes(const json& graph) {
  const json& nodes = graph.at("nodes");
  for (size_t i = 0; i < nodes.size(); ++i) steps.push_back(plan_node(nodes[i], i));
  for (int s : input_slots) input_written.push_back(written_roots.count(s) > 0);
}

Step Pt2Program::Impl::plan_node(const json& node, size_t index) {
  Step step;
  step.target = node.at("target").get<std::string>();
  const json& n = node.contains("name") && node["name"].is_string() ? node["name"] : json();
  step.name = n.is_string() ? n.get<std::string>() : "#" + std::to_string(index);
  std::string where = "node '" + step.name + "' (" + step.target + ")";
  const std::string prefix = "torch.ops.";
  if (python_functions().count(step.target)) {
    step.kind = Step::Kind::Py;
    step.py = step.target;
    plan_sym_or_py(step, node, where);
  } else if (step.target == "torch.ops.aten.sym_size.int" || step.target == "torch.ops.aten.sym_stride.int" ||
             step.target == "torch.ops.aten.sym_numel.default" ||
             step.target == "torch.ops.aten.sym_storage_offset.default") {
    step.kind = step.target.find("sym_size") != std::string::npos     ? Step::Kind::SymSize
                : step.target.find("sym_stride") != std::string::npos ? Step::Kind::SymStride
                : step.target.find("sym_numel") != std::string::npos  ? Step::Kind::SymNumel
                                                                      : Step::Kind::SymStorageOffset;
    plan_sym_or_py(step, node, where);
  } else if (step.target.rfind(prefix, 0) == 0 && step.target.compare(0, 23, "torch.ops.higher_order.") != 0) {
    plan_op(step, node, where);
  } else {
    fail(where + ": unsupported op: " +
         (step.target.compare(0, 23, "torch.ops.higher_order.") == 0
              ? std::string("higher-order ops (control flow, wrapped regions) are not run by pprun")
              : std::string("not an operator (only ATen-style operators and symbolic int arithmetic are run)")));
  }
  return step;
}

void Pt2Program::Impl::plan_sym_or_py(Step& step, const json& node, const std::string& where) {
  for (const auto& in : node.at("inputs")) step.args.push_back(plan_arg(in.at("arg"), nullptr, where));
  if (step.kind != Step::Kind::Py && step.kind != Step::Kind::SymNumel && step.kind != Step::Kind::SymStorageOffset &&
      step.args.size() != 2)
    fail(where + ": expected 2 arguments (self, dim)");
  const json& outs = node.at("outputs");
  if (outs.size() != 1) fail(where + ": expected one output");
  const json& o = outs[0];
  std::string name;
  for (const char* k : {"as_sym_int", "as_sym_float", "as_sym_bool"})
    if (o.contains(k) && o[k].contains("as_name")) name = o[k]["as_name"];
  if (name.empty()) fail(where + ": expected a symbolic output, found " + o.dump());
  OutPlan out;
  out.slot = new_slot(name, where);
  step.outs.push_back(out);
}

namespace {

c10::TypePtr base_type(const c10::Argument& a) {
  c10::TypePtr t = a.type();
  if (auto o = t->cast<c10::OptionalType>()) t = o->getElementType();
  return t;
}

bool list_of(const c10::TypePtr& t, c10::TypeKind kind, bool optional_elements = false) {
  auto l = t ? t->cast<c10::ListType>() : nullptr;
  if (!l) return false;
  c10::TypePtr e = l->getElementType();
  if (optional_elements) return e->kind() == c10::TypeKind::OptionalType;
  return e->kind() == kind;
}

}  // namespace

void Pt2Program::Impl::plan_op(Step& step, const json& node, const std::string& where) {
  std::string rest = step.target.substr(10);  // "aten.linear.default"
  size_t a = rest.find('.'), b = rest.rfind('.');
  if (a == std::string::npos || a == b) fail(where + ": cannot read the operator name");
  std::string qual = rest.substr(0, a) + "::" + rest.substr(a + 1, b - a - 1), overload = rest.substr(b + 1);
  if (overload == "default") overload.clear();
  auto handle = c10::Dispatcher::singleton().findSchema({qual, overload});
  if (!handle)
    fail(where + ": unsupported op: this LibTorch (" + std::string(TORCH_VERSION) + ") has no operator " + qual +
         (overload.empty() ? "" : "." + overload));
  step.op = *handle;
  const c10::FunctionSchema& schema = handle->schema();
  std::map<std::string, const json*> given;
  for (const auto& in : node.at("inputs")) {
    std::string n = in.at("name");
    bool known = false;
    for (const auto& sa : schema.arguments()) known = known || sa.name() == n;
    if (!known) fail(where + ": argument '" + n + "' is not in the operator's schema " + c10::toString(schema));
    given[n] = &in.at("arg");
  }
  for (const auto& sa : schema.arguments()) {
    auto it = given.find(sa.name());
    ArgPlan p;
    if (it != given.end()) {
      p = plan_arg(*it->second, &sa, where);
    } else if (sa.default_value()) {
      p.constant = *sa.default_value();
    } else if (sa.type()->kind() != c10::TypeKind::OptionalType) {
      fail(where + ": argument '" + sa.name() + "' is missing and has no default");
    }
    bool flag =
        (sa.name() == "train" || sa.name() == "training") && p.kind == ArgPlan::Kind::Const && p.constant.isBool();
    if (flag) p.kind = ArgPlan::Kind::Train;  // the constant stays: the mode as exported
    if (sa.alias_info() && sa.alias_info()->isWrite()) {
      if (p.kind == ArgPlan::Kind::Value) written_roots.insert(root[p.slot]);
      for (int s : p.slots)
        if (s >= 0) written_roots.insert(root[s]);
    }
    step.args.push_back(std::move(p));
  }
  plan_returns(step, node, where);
}

void Pt2Program::Impl::plan_returns(Step& step, const json& node, const std::string& where) {
  const c10::FunctionSchema& schema = step.op->schema();
  const auto& rets = schema.returns();
  const json& outs = node.at("outputs");
  if (outs.size() != rets.size())
    fail(where + ": " + std::to_string(outs.size()) + " outputs, the operator returns " + std::to_string(rets.size()));
  int aliased = -1;  // the value a view / in-place result aliases: its first aliasing tensor argument
  for (size_t i = 0; i < schema.arguments().size() && aliased < 0; ++i)
    if (schema.arguments()[i].alias_info() && step.args[i].kind == ArgPlan::Kind::Value) aliased = step.args[i].slot;
  for (size_t i = 0; i < outs.size(); ++i) {
    const json& o = outs[i];
    if (!o.is_object() || o.size() != 1) fail(where + ": malformed output " + o.dump());
    std::string k = o.begin().key();
    const json& v = o.begin().value();
    OutPlan out;
    if (k == "as_tensor") {
      out.slot = new_slot(v.at("name"), where);
    } else if (k == "as_tensors") {
      out.is_list = true;
      for (const auto& t : v) out.slots.push_back(new_slot(t.at("name"), where));
    } else if (k == "as_sym_int" || k == "as_sym_float" || k == "as_sym_bool") {
      if (v.contains("as_name")) out.slot = new_slot(v["as_name"], where);
    } else if (k != "as_none") {
      fail(where + ": unsupported output kind " + k);
    }
    if (rets[i].alias_info() && aliased >= 0) {
      if (out.slot >= 0) root[out.slot] = root[aliased];
      for (int s : out.slots) root[s] = root[aliased];
    }
    step.outs.push_back(std::move(out));
  }
}

// One serialized argument -> its plan; `sa` (the schema's argument) decides
// the IValue type where the serialization leaves it open (an int given for a
// float, a tensor list for Tensor?[]). nullptr for Python functions.
ArgPlan Pt2Program::Impl::plan_arg(const json& arg, const c10::Argument* sa, const std::string& where) {
  if (!arg.is_object() || arg.size() != 1) fail(where + ": malformed argument " + arg.dump());
  const std::string k = arg.begin().key();
  const json& v = arg.begin().value();
  c10::TypePtr t = sa ? base_type(*sa) : nullptr;
  bool want_float = t && t->kind() == c10::TypeKind::FloatType;
  ArgPlan p;
  auto value = [&](const std::string& name) {
    p.kind = ArgPlan::Kind::Value;
    p.slot = use(name, where);
  };
  auto sym_list = [&](ArgPlan::Kind kind, const char* constant_key) {
    p.kind = kind;
    for (const auto& e : v) {
      bool named = e.contains("as_name");
      p.slots.push_back(named ? use(e["as_name"], where) : -1);
      p.ints.push_back(!named && kind == ArgPlan::Kind::IntList ? e.at(constant_key).get<int64_t>() : 0);
      p.doubles.push_back(!named && kind == ArgPlan::Kind::DoubleList ? json_float(e.at(constant_key)) : 0.0);
    }
  };
  try {
    if (k == "as_none") {
    } else if (k == "as_tensor") {
      value(v.at("name"));
    } else if (k == "as_tensors" || k == "as_optional_tensors") {
      p.kind = k == "as_optional_tensors" || list_of(t, c10::TypeKind::TensorType, true) ? ArgPlan::Kind::OptTensorList
                                                                                         : ArgPlan::Kind::TensorList;
      for (const auto& e : v) {
        const json& te = e.contains("as_tensor") ? e["as_tensor"] : e;
        p.slots.push_back(e.contains("as_none") ? -1 : use(te.at("name"), where));
      }
    } else if (k == "as_optional_tensor") {
      if (v.contains("as_tensor")) value(v["as_tensor"].at("name"));
    } else if (k == "as_int") {
      p.constant = want_float ? c10::IValue(static_cast<double>(v.get<int64_t>())) : c10::IValue(v.get<int64_t>());
    } else if (k == "as_ints") {
      if (list_of(t, c10::TypeKind::FloatType))
        p.constant = c10::IValue(v.get<std::vector<double>>());
      else
        p.constant = c10::IValue(v.get<std::vector<int64_t>>());
    } else if (k == "as_float") {
      p.constant = c10::IValue(json_float(v));
    } else if (k == "as_floats") {
      p.constant = c10::IValue(json_floats(v));
    } else if (k == "as_bool") {
      p.constant = c10::IValue(v.get<bool>());
    } else if (k == "as_bools") {
      c10::List<bool> l;
      for (const auto& e : v) l.push_back(e.get<bool>());
      p.constant = c10::IValue(l);
    } else if (k == "as_string") {
      p.constant = c10::IValue(v.get<std::string>());
    } else if (k == "as_strings") {
      c10::List<std::string> l;
      for (const auto& e : v) l.push_back(e.get<std::string>());
      p.constant = c10::IValue(l);
    } else if (k == "as_scalar_type") {
      p.constant = c10::IValue(static_cast<int64_t>(scalar_type_of(v.get<int64_t>())));
    } else if (k == "as_layout") {
      p.constant = c10::IValue(static_cast<int64_t>(layout_of(v.get<int64_t>())));
    } else if (k == "as_memory_format") {
      p.constant = c10::IValue(static_cast<int64_t>(memory_format_of(v.get<int64_t>())));
    } else if (k == "as_device") {
      p.constant = c10::IValue(c10::Device(c10::kCPU));  // the state's device, whatever the export used (to())
    } else if (k == "as_complex") {
      p.constant = c10::IValue(c10::complex<double>(v.at("real").get<double>(), v.at("imag").get<double>()));
    } else if (k == "as_sym_int" || k == "as_sym_float" || k == "as_sym_bool") {
      if (v.contains("as_name")) {
        value(v["as_name"]);
      } else if (v.contains("as_int")) {
        p.constant = want_float ? c10::IValue(static_cast<double>(v["as_int"].get<int64_t>()))
                                : c10::IValue(v["as_int"].get<int64_t>());
      } else if (v.contains("as_float")) {
        p.constant = c10::IValue(json_float(v["as_float"]));
      } else {
        p.constant = c10::IValue(v.at("as_bool").get<bool>());
      }
    } else if (k == "as_sym_ints") {
      sym_list(ArgPlan::Kind::IntList, "as_int");
    } else if (k == "as_sym_floats") {
      sym_list(ArgPlan::Kind::DoubleList, "as_float");
    } else {
      fail(where + ": unsupported op: argument kind '" + k +
           "' (subgraphs, custom objects, operators, nested lists) is not run by pprun");
    }
  } catch (const json::exception& e) {
    fail(where + ": malformed argument " + arg.dump().substr(0, 200) + ": " + first_line(e.what()));
  } catch (const Error& e) {
    std::string what = e.what();
    if (what.rfind(path + ": ", 0) == 0) throw;
    fail(where + ": " + what);
  }
  if (t && t->kind() == c10::TypeKind::TensorType) {
    p.wrap = true;
    if (p.kind == ArgPlan::Kind::Const) p.constant = wrapped_number(p.constant);
  }
  return p;
}

void Pt2Program::Impl::plan_releases() {
  std::vector<int> last(num_slots, -1);
  auto note = [&](int s, int i) {
    if (s >= 0) last[s] = i;
  };
  for (size_t i = 0; i < steps.size(); ++i)
    for (const auto& a : steps[i].args) {
      if (a.kind == ArgPlan::Kind::Value) note(a.slot, static_cast<int>(i));
      for (int s : a.slots) note(s, static_cast<int>(i));
    }
  for (int s : output_slots) last[s] = -1;
  for (const auto& [s, buf] : buffer_mutations) last[s] = -1;
  for (int s = 0; s < num_slots; ++s)
    if (last[s] >= 0) steps[last[s]].release.push_back(s);
}

// parameters() and buffers(): each tensor once, tied names merged under the
// preferred (manifest's) name where one is given.
void Pt2Program::Impl::collect_state() {
  if (options.check_only) return;
  std::map<at::TensorImpl*, std::pair<bool, size_t>> at_index;  // tensor -> (is parameter, index)
  auto add = [&](const std::string& fqn, bool param) {
    at::Tensor t = state_tensors.at(fqn);
    auto& list = param ? param_list : buffer_list;
    auto it = at_index.find(t.unsafeGetTensorImpl());
    if (it == at_index.end()) {
      at_index[t.unsafeGetTensorImpl()] = {param, list.size()};
      list.emplace_back(fqn, t);
    } else if (options.preferred.count(fqn)) {
      auto& entry = (it->second.first ? param_list : buffer_list)[it->second.second];
      if (!options.preferred.count(entry.first)) entry.first = fqn;
    }
  };
  for (const auto& [fqn, slot] : params) add(fqn, !options.frozen.count(fqn));
  for (const auto& [fqn, slot] : buffers) add(fqn, false);
}

// The first output with a gradient function marks when this step's backward
// starts (its other outputs' gradients are complete by then).
void Pt2Program::Impl::hook_backward(const Step& s, const std::vector<c10::IValue>& env, int step) const {
  for (const auto& o : s.outs) {
    std::vector<int> slots = o.slots;
    if (o.slot >= 0) slots.push_back(o.slot);
    for (int slot : slots) {
      if (!env[slot].isTensor()) continue;
      const at::Tensor& t = env[slot].toTensor();
      if (!t.defined() || !t.requires_grad() || !t.grad_fn()) continue;
      at::Tensor(t).register_hook([log = bw, step](const at::Tensor&) {
        std::lock_guard<std::mutex> lock(log->mutex);
        log->events.emplace_back(step, std::chrono::steady_clock::now());
      });
      return;
    }
  }
}

void Pt2Program::Impl::exec(const Step& s, std::vector<c10::IValue>& env) const {
  switch (s.kind) {
    case Step::Kind::Py: {
      std::vector<c10::IValue> a;
      for (const auto& arg : s.args) a.push_back(materialize(arg, env, training));
      env[s.outs[0].slot] = eval_python(s.py, a);
      break;
    }
    case Step::Kind::SymSize:
    case Step::Kind::SymStride:
    case Step::Kind::SymNumel:
    case Step::Kind::SymStorageOffset: {
      const c10::IValue& self = materialize(s.args.at(0), env, training);
      if (!self.isTensor()) throw Error("expected a tensor argument");
      const at::Tensor& t = self.toTensor();
      int64_t r = 0;
      if (s.kind == Step::Kind::SymNumel) r = t.numel();
      if (s.kind == Step::Kind::SymStorageOffset) r = t.storage_offset();
      if (s.kind == Step::Kind::SymSize) r = t.size(materialize(s.args.at(1), env, training).toInt());
      if (s.kind == Step::Kind::SymStride) r = t.stride(materialize(s.args.at(1), env, training).toInt());
      env[s.outs[0].slot] = c10::IValue(r);
      break;
    }
    case Step::Kind::Op: {
      std::vector<c10::IValue> stack;
      stack.reserve(s.args.size());
      for (const auto& arg : s.args) stack.push_back(materialize(arg, env, training));
      s.op->callBoxed(&stack);
      if (stack.size() != s.outs.size())
        throw Error("the operator returned " + std::to_string(stack.size()) + " values, the node binds " +
                    std::to_string(s.outs.size()));
      for (size_t i = 0; i < s.outs.size(); ++i) {
        const OutPlan& o = s.outs[i];
        if (o.is_list) {
          c10::List<at::Tensor> l = stack[i].toTensorList();
          if (l.size() != o.slots.size())
            throw Error("the operator returned " + std::to_string(l.size()) + " tensors, the node binds " +
                        std::to_string(o.slots.size()) + " (a size other than the export's?)");
          for (size_t j = 0; j < l.size(); ++j) env[o.slots[j]] = l.get(j);
        } else if (o.slot >= 0) {
          env[o.slot] = concrete(std::move(stack[i]));
        }
      }
      break;
    }
  }
}

// --- the public interface ----------------------------------------------------

Pt2Program::Pt2Program(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Pt2Program::~Pt2Program() = default;

std::unique_ptr<Pt2Program> Pt2Program::load(const std::string& path, const Options& options) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->read_archive(options);
  impl->collect_state();
  return std::unique_ptr<Pt2Program>(new Pt2Program(std::move(impl)));
}

const std::vector<std::string>& Pt2Program::input_names() const { return impl_->input_names; }
const std::vector<std::string>& Pt2Program::output_names() const { return impl_->output_names; }
size_t Pt2Program::num_nodes() const { return impl_->steps.size(); }
void Pt2Program::set_training(bool training) { impl_->training = training; }

void Pt2Program::set_timing(bool on) {
  Impl& m = *impl_;
  m.timing = on;
  m.step_us.assign(m.steps.size(), 0.0);
  m.step_bw_us.assign(m.steps.size(), 0.0);
  std::lock_guard<std::mutex> lock(m.bw->mutex);
  m.bw->events.clear();
}

void Pt2Program::end_backward() {
  Impl& m = *impl_;
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(m.bw->mutex);
  auto& ev = m.bw->events;
  std::stable_sort(ev.begin(), ev.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
  for (size_t i = 0; i < ev.size(); ++i) {
    const auto until = i + 1 < ev.size() ? ev[i + 1].second : now;
    if (static_cast<size_t>(ev[i].first) < m.step_bw_us.size())
      m.step_bw_us[static_cast<size_t>(ev[i].first)] +=
          std::chrono::duration<double, std::micro>(until - ev[i].second).count();
  }
  ev.clear();
}

std::vector<NodeTime> Pt2Program::node_times_us() const {
  const Impl& m = *impl_;
  std::vector<NodeTime> out;
  for (size_t k = 0; k < m.steps.size() && k < m.step_us.size(); ++k)
    out.push_back({m.steps[k].name, m.step_us[k], k < m.step_bw_us.size() ? m.step_bw_us[k] : 0.0});
  return out;
}
// Every weight file's bytes move once, and each state tensor becomes the same
// view of the moved bytes: tensors sharing a file (ties, views) still share
// it. A tensor listed in several places (bound to a placeholder, a parameter,
// a mutated buffer) stays one tensor, so gradients reach the engine's.
void Pt2Program::to(const c10::Device& device) {
  Impl& m = *impl_;
  if (m.options.check_only || device == m.device) return;
  std::map<const c10::StorageImpl*, c10::Storage> moved;
  for (auto& [name, st] : m.storages) {
    c10::Storage dev = byte_view(st).to(device).storage();
    moved[st.unsafeGetStorageImpl()] = dev;
    st = dev;
  }
  std::map<const c10::TensorImpl*, at::Tensor> done;
  auto move = [&](at::Tensor& t) {
    if (!t.defined()) return;
    auto d = done.find(t.unsafeGetTensorImpl());
    if (d != done.end()) {
      t = d->second;
      return;
    }
    auto it = t.has_storage() ? moved.find(t.storage().unsafeGetStorageImpl()) : moved.end();
    at::Tensor n =
        it == moved.end()
            ? t.detach().to(device)
            : at::empty({0}, t.options().device(device)).set_(it->second, t.storage_offset(), t.sizes(), t.strides());
    n.requires_grad_(t.requires_grad());
    done[t.unsafeGetTensorImpl()] = n;
    t = n;
  };
  for (auto& [slot, t] : m.bound) move(t);
  for (auto& [name, t] : m.param_list) move(t);
  for (auto& [name, t] : m.buffer_list) move(t);
  for (auto& [name, t] : m.state_tensors) move(t);
  for (auto& [slot, t] : m.buffer_mutations) move(t);
  // Factory operators' device arguments (the export's device) name this one.
  for (auto& step : m.steps)
    for (auto& a : step.args)
      if (a.constant.isDevice()) a.constant = c10::IValue(device);
  m.device = device;
}

std::vector<std::pair<std::string, at::Tensor>> Pt2Program::parameters() const { return impl_->param_list; }
std::vector<std::pair<std::string, at::Tensor>> Pt2Program::buffers() const { return impl_->buffer_list; }
std::vector<std::string> Pt2Program::state_names() const { return impl_->state_names; }

std::vector<at::Tensor> Pt2Program::run(const std::vector<at::Tensor>& inputs) {
  Impl& m = *impl_;
  if (m.options.check_only) throw std::logic_error("Pt2Program::run on a program loaded with check_only");
  if (inputs.size() != m.input_slots.size())
    throw Error(m.path + ": the program takes " + std::to_string(m.input_slots.size()) + " inputs, given " +
                std::to_string(inputs.size()));
  std::vector<c10::IValue> env(m.num_slots);
  for (const auto& [slot, t] : m.bound) env[slot] = t;
  for (const auto& [slot, v] : m.bound_constants) env[slot] = v;
  for (size_t i = 0; i < inputs.size(); ++i)
    env[m.input_slots[i]] = m.input_written[i] && inputs[i].defined() ? inputs[i].clone() : inputs[i];
  for (size_t k = 0; k < m.steps.size(); ++k) {
    const Step& s = m.steps[k];
    try {
      if (m.timing) {
        // CPU kernels are synchronous: a step's wall time is its cost.
        auto t0 = std::chrono::steady_clock::now();
        m.exec(s, env);
        m.step_us[k] += std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
        m.hook_backward(s, env, static_cast<int>(k));
      } else {
        m.exec(s, env);
      }
    } catch (const c10::Error& e) {
      throw Error(m.path + ": node '" + s.name + "' (" + s.target + "): " + first_line(e.what_without_backtrace()));
    } catch (const Error& e) { throw Error(m.path + ": node '" + s.name + "' (" + s.target + "): " + e.what()); }
    for (int r : s.release) env[r] = c10::IValue();  // after the timing hook: it needs the outputs
  }
  if (!m.buffer_mutations.empty()) {
    at::NoGradGuard no_grad;
    for (const auto& [slot, buf] : m.buffer_mutations) {
      const at::Tensor& v = env[slot].toTensor();
      if (!v.is_same(buf)) buf.copy_(v);
    }
  }
  std::vector<at::Tensor> out;
  out.reserve(m.output_slots.size());
  for (int s : m.output_slots) out.push_back(env[s].toTensor());
  return out;
}

void Pt2Program::save(const std::string& path) const {
  const Impl& m = *impl_;
  if (m.options.check_only) throw std::logic_error("Pt2Program::save on a program loaded with check_only");
  try {
    caffe2::serialize::PyTorchStreamWriter writer(path);
    for (const auto& rec : m.records) {
      // The writer writes the archive's version and serialization id itself.
      if (rec.name == ".data/version" || rec.name == ".data/serialization_id" || rec.name == "version") continue;
      auto st = m.storages.find(rec.name);
      if (st != m.storages.end() && st->second.device().is_cpu()) {
        writer.writeRecord(rec.name, st->second.data(), st->second.nbytes());
      } else if (st != m.storages.end()) {  // a host copy of the device's bytes
        at::Tensor host = byte_view(st->second).cpu();
        writer.writeRecord(rec.name, host.data_ptr(), st->second.nbytes());
      } else
        writer.writeRecord(rec.name, rec.bytes.data(), rec.bytes.size());
    }
    writer.writeEndOfFile();
  } catch (const c10::Error& e) {
    throw Error(path + ": cannot write the .pt2 stage: " + first_line(e.what_without_backtrace()));
  }
}

}  // namespace ppc::runtime
