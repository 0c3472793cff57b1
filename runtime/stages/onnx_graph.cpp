// The plan: every value of the graph gets a slot index at load time; a step
// is a prebuilt kernel with the slots it reads and writes and the slots to
// release after it (values die after their last use). Running the graph is a
// loop over steps: no name lookups, no maps, no per-node allocation beyond
// what the ATen calls themselves do.
#include "runtime/stages/onnx_graph.h"

#include <ATen/ATen.h>
#include <onnx/checker.h>
#include "schemas/onnx_proto.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <unordered_map>

#include "runtime/stages/onnx_fusion.h"
#include "runtime/stages/onnx_ops.h"
#include "schemas/error.h"
#include "schemas/onnx_external_data.h"

namespace ppc::runtime {

namespace {

struct Step {
  onnx_ops::Kernel kernel;
  std::vector<int> in, out, release;
  int node = 0;          // index into the graph's nodes, for error messages
  uint32_t host_in = 0;  // inputs the kernel reads on the host (onnx_ops::host_inputs)
  bool fused = false;    // a fused kernel (onnx_fusion), node is its pattern's last
};

struct Initializer {
  std::string name;
  int slot = 0;
  int proto_index = 0;
  bool trainable = false;
};

std::string first_line(const std::string& s) {
  std::string l = s.substr(0, s.find('\n'));
  while (!l.empty() && (l.back() == ' ' || l.back() == '\r')) l.pop_back();
  return l;
}

bool float_elem(int t) {
  return t == onnx::TensorProto::FLOAT || t == onnx::TensorProto::DOUBLE || t == onnx::TensorProto::FLOAT16 ||
         t == onnx::TensorProto::BFLOAT16;
}

// Whether a gradient flows through the node (a Cast only to a float type).
bool differentiable(const onnx::NodeProto& node) {
  bool diff = !onnx_ops::is_nondifferentiable(node.op_type());
  if (node.op_type() == "Cast")
    for (const auto& a : node.attribute())
      if (a.name() == "to") diff = float_elem(static_cast<int>(a.i()));
  return diff;
}

// Reads the model at `path` with its external data; returns the opset of the
// default domain.
int read_model(const std::string& path, onnx::ModelProto& model, bool& external) {
  {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error(path + ": cannot open the ONNX stage");
    if (!model.ParseFromIstream(&f)) throw Error(path + ": not a valid ONNX model (protobuf parse failed)");
  }
  external = onnx_data::internalize(model, std::filesystem::path(path).parent_path().string(), path);
  int opset = 0;
  for (const auto& op : model.opset_import())
    if (op.domain().empty() || op.domain() == "ai.onnx") opset = static_cast<int>(op.version());
  if (opset == 0) throw Error(path + ": the model imports no opset of the default ONNX domain");
  return opset;
}

}  // namespace

struct OnnxGraph::Impl {
  std::string path;
  onnx::ModelProto model;  // initializer payloads cleared after loading; save() refills them
  int opset = 0;
  bool external_data = false;  // read with external data: saved with it too
  std::vector<at::Tensor> slots;
  std::vector<char> persistent;  // initializers and load-time constants: never released
  std::vector<Step> steps;
  std::vector<int> input_slots, output_slots;
  std::vector<std::string> input_names, output_names;
  std::vector<Initializer> inits;
  // On a device (to()): per slot, the slot of its device copy when it is a
  // host constant that a node combined with device tensors (-1: none yet);
  // and the slots that hold a step's host inputs moved for that step only.
  c10::Device device = c10::kCPU;
  std::vector<int> device_copy;
  std::vector<int> spare;
  bool training = false;
  bool timing = false;
  std::vector<double> step_us, step_bw_us;  // per step, while timing
  // (step, time) when the gradient of a step's output became complete, in
  // the backward running now. Shared with the hooks, which may outlive the
  // graph on tensors kept elsewhere, and may run on autograd's threads.
  struct BackwardLog {
    std::mutex mutex;
    std::vector<std::pair<int, std::chrono::steady_clock::time_point>> events;
  };
  std::shared_ptr<BackwardLog> bw = std::make_shared<BackwardLog>();
  struct Loader;  // OnnxGraph::load's planning, below

  std::string node_name(int node) const {
    const auto& n = model.graph().node(node);
    return n.name().empty() ? n.output_size() ? n.output(0) : std::string("?") : n.name();
  }

  const std::vector<int>& device_inputs(const Step& st, std::vector<int>& remapped);
  template <bool kDevice>
  void run_steps(size_t& k);

  std::string node_place(int node) const {
    const auto& n = model.graph().node(node);
    return path + ": node '" + node_name(node) + "' (" + n.op_type() + ", opset " + std::to_string(opset) + ")";
  }
};

OnnxGraph::OnnxGraph(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
OnnxGraph::~OnnxGraph() = default;

// Planning a graph at load time, one member function per phase. Besides the
// Impl it fills, it keeps per-slot facts that only planning needs, and a
// record of every node (executed or folded) for the trainability pass.
struct OnnxGraph::Impl::Loader {
  struct Planned {
    int step;             // index into steps, or -1 when folded
    std::vector<int> in;  // for differentiability
    std::vector<int> out;
    bool diff;
  };

  Impl& im;
  const Options& options;
  onnx::GraphProto* graph;
  std::unordered_map<std::string, int> slot_of;
  std::vector<char> is_const;    // known at load time (Constant nodes and what folds from them)
  std::vector<char> carries;     // may carry a gradient (float initializers, inputs, and what flows from them)
  std::vector<char> float_init;  // slot of a float initializer
  std::vector<char> bn_stat;     // read as a BatchNormalization running statistic (never trained)
  std::vector<Planned> planned;

  Loader(Impl& impl, const Options& opts) : im(impl), options(opts), graph(impl.model.mutable_graph()) {}

  int new_slot(const std::string& name, bool persistent) {
    int s = static_cast<int>(im.slots.size());
    im.slots.emplace_back();
    im.persistent.push_back(persistent);
    if (!name.empty() && !slot_of.emplace(name, s).second)
      throw Error(im.path + ": value '" + name + "' is defined twice");
    return s;
  }

  void add_initializers() {
    for (int i = 0; i < graph->initializer_size(); ++i) {
      auto* t = graph->mutable_initializer(i);
      int s = new_slot(t->name(), true);
      if (!options.check_only) {
        try {
          im.slots[s] = onnx_ops::tensor_from_proto(*t, "initializer '" + t->name() + "'");
        } catch (const std::exception& e) { throw Error(im.path + ": " + e.what()); }
        // The live value is the tensor now; save() writes it back.
        t->clear_raw_data();
        t->clear_float_data();
        t->clear_double_data();
        t->clear_int32_data();
        t->clear_int64_data();
        t->clear_uint64_data();
      }
      im.inits.push_back({t->name(), s, i, false});
    }
    is_const.assign(im.slots.size(), 0);
    float_init.assign(im.slots.size(), 0);
    carries.assign(im.slots.size(), 0);
    for (const auto& in : im.inits) {
      bool fl = float_elem(graph->initializer(in.proto_index).data_type());
      float_init[in.slot] = fl;
      carries[in.slot] = fl;
    }
  }

  void add_inputs() {
    for (const auto& vi : graph->input()) {
      if (slot_of.count(vi.name())) continue;  // an initializer listed as input (IR < 4)
      int s = new_slot(vi.name(), false);
      im.input_slots.push_back(s);
      im.input_names.push_back(vi.name());
      is_const.push_back(0);
      float_init.push_back(0);
      carries.push_back(1);
    }
  }

  // Nodes: build kernels; fold constant subgraphs; record the plan.
  void plan_nodes() {
    bn_stat.assign(im.slots.size(), 0);
    onnx_fusion::Fusions fusions;
    if (!options.check_only) {
      // Frozen float scalars are the exporter's constants: patterns may use their values.
      std::map<std::string, double> constants;
      for (const auto& in : im.inits) {
        const at::Tensor& t = im.slots[in.slot];
        if (float_init[in.slot] && options.frozen.count(in.name) && t.defined() && t.numel() == 1)
          constants[in.name] = t.item<double>();
      }
      fusions = onnx_fusion::find_fusions(*graph, constants);
    }
    for (int ni = 0; ni < graph->node_size(); ++ni) {
      const auto& node = graph->node(ni);
      if (!node.domain().empty() && node.domain() != "ai.onnx")
        throw Error(im.node_place(ni) + ": unsupported op domain '" + node.domain() + "'");
      if (!fusions.absorbed.empty() && fusions.absorbed[ni]) continue;  // computed by a fused step below
      if (auto fit = fusions.at.find(ni); fit != fusions.at.end())
        plan_fused(ni, fit->second);
      else
        plan_node(ni);
    }
  }

  // The pattern's last node: one fused kernel reading the pattern's inputs.
  void plan_fused(int ni, onnx_fusion::Fused& fused) {
    Step st;
    st.node = ni;
    for (const auto& name : fused.inputs) {
      auto it = slot_of.find(name);
      if (it == slot_of.end())
        throw Error(im.node_place(ni) + ": input '" + name + "' is not defined before this node");
      st.in.push_back(it->second);
    }
    st.out.push_back(new_slot(graph->node(ni).output(0), false));
    is_const.push_back(0);
    float_init.push_back(0);
    bn_stat.push_back(0);
    bool any = false;
    for (int s : st.in) any |= carries[s] != 0;
    carries.push_back(any);
    st.kernel = std::move(fused.kernel);
    st.fused = true;
    planned.push_back({static_cast<int>(im.steps.size()), st.in, st.out, true});
    im.steps.push_back(std::move(st));
  }

  void plan_node(int ni) {
    const auto& node = graph->node(ni);
    Step st;
    st.node = ni;
    bool all_const = node.op_type() != "Dropout";
    std::vector<const at::Tensor*> consts = bind_inputs(ni, st.in, all_const);
    onnx_ops::Kernel kernel;
    try {
      onnx_ops::NodeCtx ctx(node, im.opset, consts);
      kernel = onnx_ops::build_kernel(ctx);
    } catch (const onnx_ops::Unsupported& e) { throw Error(im.node_place(ni) + ": " + e.what()); }
    for (const auto& name : node.output()) {
      if (name.empty()) {
        st.out.push_back(-1);
        continue;
      }
      st.out.push_back(new_slot(name, false));
      is_const.push_back(0);
      float_init.push_back(0);
      carries.push_back(0);
      bn_stat.push_back(0);
    }
    if (node.op_type() == "BatchNormalization")
      for (int i = 3; i < 5 && i < static_cast<int>(st.in.size()); ++i)
        if (st.in[i] >= 0) bn_stat[st.in[i]] = 1;
    const bool diff = differentiable(node);
    bool any = false;
    for (int s : st.in) any |= s >= 0 && carries[s];
    for (int s : st.out)
      if (s >= 0) carries[s] = diff && any;

    if (all_const && !options.check_only) {
      fold(ni, kernel, st);
      planned.push_back({-1, st.in, st.out, diff});
      return;
    }
    st.kernel = std::move(kernel);
    st.host_in = onnx_ops::host_inputs(node.op_type());
    planned.push_back({static_cast<int>(im.steps.size()), st.in, st.out, diff});
    im.steps.push_back(std::move(st));
  }

  // The slots of a node's inputs (-1 for an absent optional one) into `in`;
  // returns the values of those known at load time (null for the others), and
  // clears `all_const` when one is not known.
  std::vector<const at::Tensor*> bind_inputs(int ni, std::vector<int>& in, bool& all_const) {
    std::vector<const at::Tensor*> consts;
    for (const auto& name : graph->node(ni).input()) {
      if (name.empty()) {
        in.push_back(-1);
        consts.push_back(nullptr);
        continue;
      }
      auto it = slot_of.find(name);
      if (it == slot_of.end())
        throw Error(im.node_place(ni) + ": input '" + name + "' is not defined before this node");
      in.push_back(it->second);
      bool c = is_const[it->second] != 0;
      all_const &= c;
      consts.push_back(c ? &im.slots[it->second] : nullptr);
    }
    return consts;
  }

  // Evaluated once now: its outputs are constants of the plan.
  void fold(int ni, const onnx_ops::Kernel& kernel, const Step& st) {
    try {
      at::NoGradGuard no_grad;
      onnx_ops::KernelIO io{im.slots, st.in, st.out, false};
      kernel(io);
    } catch (const c10::Error& e) {
      throw Error(im.node_place(ni) + ": " + first_line(e.what_without_backtrace()));
    } catch (const std::runtime_error& e) { throw Error(im.node_place(ni) + ": " + first_line(e.what())); }
    for (int s : st.out)
      if (s >= 0) {
        is_const[s] = 1;
        im.persistent[s] = 1;
        carries[s] = 0;
      }
  }

  // The graph outputs' slots; returns per slot whether it is one.
  std::vector<char> bind_outputs() {
    std::vector<char> is_output(im.slots.size(), 0);
    for (const auto& vi : graph->output()) {
      auto it = slot_of.find(vi.name());
      if (it == slot_of.end()) throw Error(im.path + ": graph output '" + vi.name() + "' is not computed by any node");
      im.output_slots.push_back(it->second);
      im.output_names.push_back(vi.name());
      is_output[it->second] = 1;
    }
    return is_output;
  }

  // Lifetimes: release a value after the last step reading it (or right
  // after its producer when nothing reads it).
  void plan_releases(const std::vector<char>& is_output) {
    std::vector<int> last(im.slots.size(), -1);
    for (size_t k = 0; k < im.steps.size(); ++k) {
      for (int s : im.steps[k].in)
        if (s >= 0) last[s] = static_cast<int>(k);
      for (int s : im.steps[k].out)
        if (s >= 0 && last[s] < 0) last[s] = static_cast<int>(k);
    }
    for (size_t s = 0; s < im.slots.size(); ++s)
      if (!im.persistent[s] && !is_output[s] && last[s] >= 0) im.steps[last[s]].release.push_back(static_cast<int>(s));
  }

  // Trainable initializers: float ones from which a differentiable path
  // reaches a graph output (a mask only compared with Equal is not one).
  void mark_trainable() {
    std::vector<char> needed(im.slots.size(), 0);
    for (int s : im.output_slots) needed[s] = 1;
    for (size_t k = planned.size(); k-- > 0;) {
      const auto& p = planned[k];
      if (!p.diff) continue;
      bool out_needed = false;
      for (int s : p.out) out_needed |= s >= 0 && needed[s];
      if (!out_needed) continue;
      for (int s : p.in)
        if (s >= 0 && carries[s]) needed[s] = 1;
    }
    for (auto& in : im.inits) {
      in.trainable = float_init[in.slot] && needed[in.slot] && !bn_stat[in.slot] && !options.frozen.count(in.name);
      if (in.trainable && !options.check_only) im.slots[in.slot].requires_grad_(true);
    }
  }
};

std::unique_ptr<OnnxGraph> OnnxGraph::load(const std::string& path, const Options& options) {
  auto im = std::make_unique<Impl>();
  im->path = path;
  im->opset = read_model(path, im->model, im->external_data);
  Impl::Loader loader(*im, options);
  loader.add_initializers();
  loader.add_inputs();
  loader.plan_nodes();
  loader.plan_releases(loader.bind_outputs());
  loader.mark_trainable();
  return std::unique_ptr<OnnxGraph>(new OnnxGraph(std::move(im)));
}

const std::vector<std::string>& OnnxGraph::input_names() const { return impl_->input_names; }
const std::vector<std::string>& OnnxGraph::output_names() const { return impl_->output_names; }
int OnnxGraph::opset() const { return impl_->opset; }
size_t OnnxGraph::num_steps() const { return impl_->steps.size(); }
void OnnxGraph::set_training(bool training) { impl_->training = training; }
void OnnxGraph::set_timing(bool on) {
  impl_->timing = on;
  impl_->step_us.assign(impl_->steps.size(), 0.0);
  impl_->step_bw_us.assign(impl_->steps.size(), 0.0);
  std::lock_guard<std::mutex> lock(impl_->bw->mutex);
  impl_->bw->events.clear();
}
void OnnxGraph::end_backward() {
  Impl& im = *impl_;
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(im.bw->mutex);
  auto& ev = im.bw->events;
  std::stable_sort(ev.begin(), ev.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
  for (size_t i = 0; i < ev.size(); ++i) {
    const auto until = i + 1 < ev.size() ? ev[i + 1].second : now;
    if (static_cast<size_t>(ev[i].first) < im.step_bw_us.size())
      im.step_bw_us[static_cast<size_t>(ev[i].first)] +=
          std::chrono::duration<double, std::micro>(until - ev[i].second).count();
  }
  ev.clear();
}
std::vector<NodeTime> OnnxGraph::node_times_us() const {
  std::vector<NodeTime> out;
  for (size_t k = 0; k < impl_->steps.size() && k < impl_->step_us.size(); ++k)
    out.push_back({impl_->node_name(impl_->steps[k].node), impl_->step_us[k],
                   k < impl_->step_bw_us.size() ? impl_->step_bw_us[k] : 0.0});
  return out;
}
bool OnnxGraph::training() const { return impl_->training; }

// The slots a step reads on a device: its own, except that a host tensor
// (not a 0-dim one, which ATen takes as a scalar) among the inputs it does
// not read on the host is replaced by a device copy when some of those inputs
// are on the device: a constant's kept (made at its first use), a computed
// one's in a spare slot for this step only. Shape arithmetic, all on the
// host, is left there.
const std::vector<int>& OnnxGraph::Impl::device_inputs(const Step& st, std::vector<int>& remapped) {
  bool on_device = false;
  for (size_t i = 0; i < st.in.size() && !on_device; ++i) {
    const int s = st.in[i];
    on_device = s >= 0 && !(st.host_in >> i & 1) && slots[s].defined() && !slots[s].is_cpu();
  }
  if (!on_device) return st.in;
  const std::vector<int>* in = &st.in;
  for (size_t i = 0; i < st.in.size(); ++i) {
    const int s = st.in[i];
    if (s < 0 || (st.host_in >> i & 1) || !slots[s].defined() || !slots[s].is_cpu() || slots[s].dim() == 0) continue;
    if (in == &st.in) {
      remapped = st.in;
      in = &remapped;
    }
    if (persistent[s]) {
      if (device_copy[s] < 0) {
        device_copy[s] = static_cast<int>(slots.size());
        at::Tensor copy = slots[s].to(device);
        slots.push_back(std::move(copy));
        persistent.push_back(1);
        device_copy.push_back(-1);
      }
      remapped[i] = device_copy[s];
    } else {
      slots[spare[i]] = slots[s].to(device);
      remapped[i] = spare[i];
    }
  }
  return *in;
}

template <bool kDevice>
void OnnxGraph::Impl::run_steps(size_t& k) {
  std::vector<int> remapped;
  auto run_step = [&](const Step& st) {
    if constexpr (kDevice) {
      const std::vector<int>& in = device_inputs(st, remapped);
      st.kernel(onnx_ops::KernelIO{slots, in, st.out, training});
      if (&in != &st.in)
        for (size_t i = 0; i < in.size(); ++i)
          if (in[i] == spare[i]) slots[spare[i]].reset();
    } else {
      st.kernel(onnx_ops::KernelIO{slots, st.in, st.out, training});
    }
    for (int r : st.release) slots[r].reset();
  };
  if (timing) {
    // CPU kernels are synchronous: a step's wall time is its cost.
    for (; k < steps.size(); ++k) {
      const Step& st = steps[k];
      auto t0 = std::chrono::steady_clock::now();
      run_step(st);
      step_us[k] += std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
      // The first output with a gradient function marks when this step's
      // backward starts (its other outputs' gradients are complete by then).
      for (int o : st.out) {
        const at::Tensor& t = slots[o];
        if (!t.defined() || !t.requires_grad() || !t.grad_fn()) continue;
        const int step = static_cast<int>(k);
        at::Tensor(t).register_hook([log = bw, step](const at::Tensor&) {
          std::lock_guard<std::mutex> lock(log->mutex);
          log->events.emplace_back(step, std::chrono::steady_clock::now());
        });
        break;
      }
    }
  }
  for (; k < steps.size(); ++k) run_step(steps[k]);
}

std::vector<at::Tensor> OnnxGraph::run(const std::vector<at::Tensor>& inputs) {
  Impl& im = *impl_;
  if (inputs.size() != im.input_slots.size())
    throw Error(im.path + ": got " + std::to_string(inputs.size()) + " inputs, the graph has " +
                std::to_string(im.input_slots.size()));
  auto clear = [&] {
    for (size_t s = 0; s < im.slots.size(); ++s)
      if (!im.persistent[s]) im.slots[s].reset();
  };
  for (size_t i = 0; i < inputs.size(); ++i) im.slots[im.input_slots[i]] = inputs[i];
  size_t k = 0;
  try {
    if (im.device.is_cpu())
      im.run_steps<false>(k);
    else
      im.run_steps<true>(k);
  } catch (const c10::Error& e) {
    clear();
    throw Error(im.node_place(im.steps[k].node) + ": " + first_line(e.what_without_backtrace()));
  } catch (const Error&) {
    clear();
    throw;
  } catch (const std::runtime_error& e) {
    clear();
    throw Error(im.node_place(im.steps[k].node) + ": " + first_line(e.what()));
  }
  std::vector<at::Tensor> out;
  out.reserve(im.output_slots.size());
  for (int s : im.output_slots) out.push_back(im.slots[s]);
  if (!im.device.is_cpu())  // a float made on the host (ConstantOfShape): on the device like the rest
    for (at::Tensor& t : out)
      if (t.defined() && t.is_cpu() && t.is_floating_point()) t = t.to(im.device);
  clear();
  return out;
}

// Device placement. Floating-point constants (initializers, folded values)
// move; integer and bool ones stay on the host: they are sizes, indices and
// masks, read on the host by shape arithmetic, and copied to the device at
// their first use with device tensors (device_inputs). A float constant that
// a kernel reads on the host (Clip's bounds, Pad's value, Dropout's ratio)
// keeps a host copy for those reads. A float constant that only a kernel's
// host reads use and that is no initializer nor output is not moved.
void OnnxGraph::to(const c10::Device& device) {
  Impl& im = *impl_;
  const size_t n = im.slots.size();
  std::vector<char> data_use(n, 0), is_init(n, 0);
  for (const Step& st : im.steps)
    for (size_t i = 0; i < st.in.size(); ++i)
      if (st.in[i] >= 0 && !(st.host_in >> i & 1)) data_use[st.in[i]] = 1;
  for (int s : im.output_slots) data_use[s] = 1;
  for (const auto& in : im.inits) is_init[in.slot] = 1;
  auto moves = [&](size_t s) {
    const at::Tensor& t = im.slots[s];
    return im.persistent[s] && t.defined() && t.is_floating_point() && t.device() != device &&
           (is_init[s] || data_use[s]);
  };
  std::vector<int> host_copy(n, -1);
  for (Step& st : im.steps)
    for (size_t i = 0; i < st.in.size(); ++i) {
      const int s = st.in[i];
      if (s < 0 || !(st.host_in >> i & 1) || !moves(static_cast<size_t>(s))) continue;
      if (host_copy[s] < 0) {
        host_copy[s] = static_cast<int>(im.slots.size());
        const at::Tensor t = im.slots[s].detach();
        im.slots.push_back(t.is_cpu() ? t : t.to(at::kCPU));
        im.persistent.push_back(1);
      }
      st.in[i] = host_copy[s];
    }
  for (size_t s = 0; s < n; ++s) {
    if (!moves(s)) continue;
    const at::Tensor& t = im.slots[s];
    at::Tensor moved = t.detach().to(device);
    if (t.requires_grad()) moved.requires_grad_(true);
    im.slots[s] = std::move(moved);
  }
  // Device copies of host constants: made anew on the new device.
  for (size_t s = 0; s < im.device_copy.size(); ++s)
    if (im.device_copy[s] >= 0) im.slots[im.device_copy[s]].reset();
  im.device_copy.assign(im.slots.size(), -1);
  size_t most = 0;
  for (const Step& st : im.steps) most = std::max(most, st.in.size());
  while (im.spare.size() < most) {
    im.spare.push_back(static_cast<int>(im.slots.size()));
    im.slots.emplace_back();
    im.persistent.push_back(0);
    im.device_copy.push_back(-1);
  }
  im.device = device;
}

const c10::Device& OnnxGraph::device() const { return impl_->device; }

// Shape arithmetic: a graph input whose every use is read on the host, or
// feeds arithmetic whose results are only used so (Concat -> Reshape's
// shape), found by one pass over the steps backwards.
std::vector<char> OnnxGraph::inputs_read_on_host() const {
  static const std::set<std::string> arithmetic = {"Add",      "Cast",    "Concat", "Div",       "Equal", "Gather",
                                                   "Identity", "Max",     "Min",    "Mul",       "Neg",   "Reshape",
                                                   "Slice",    "Squeeze", "Sub",    "Unsqueeze", "Where"};
  const Impl& im = *impl_;
  std::vector<char> used(im.slots.size(), 0), other(im.slots.size(), 0);
  for (int s : im.output_slots) other[s] = 1;
  auto on_host = [&](int s) { return used[s] && !other[s]; };
  for (size_t k = im.steps.size(); k-- > 0;) {
    const Step& st = im.steps[k];
    bool host_op = !st.fused && arithmetic.count(im.model.graph().node(st.node).op_type()) != 0;
    for (int o : st.out) host_op &= o < 0 || on_host(o);
    for (size_t i = 0; i < st.in.size(); ++i) {
      if (st.in[i] < 0) continue;
      used[st.in[i]] = 1;
      if (!(st.host_in >> i & 1) && !host_op) other[st.in[i]] = 1;
    }
  }
  std::vector<char> out;
  for (int s : im.input_slots) out.push_back(on_host(s));
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> OnnxGraph::parameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& in : impl_->inits)
    if (in.trainable) out.emplace_back(in.name, impl_->slots[in.slot]);
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> OnnxGraph::buffers() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& in : impl_->inits)
    if (!in.trainable) out.emplace_back(in.name, impl_->slots[in.slot]);
  return out;
}

void OnnxGraph::save(const std::string& path) const {
  const Impl& im = *impl_;
  onnx::ModelProto m = im.model;  // cheap: initializer payloads are not kept here
  for (const auto& in : im.inits) {
    if (!im.slots[in.slot].defined()) throw Error(path + ": cannot save a graph loaded for checking only");
    onnx_ops::tensor_to_proto(im.slots[in.slot], *m.mutable_graph()->mutable_initializer(in.proto_index));
  }
  try {
    onnx::checker::check_model(m);
  } catch (const std::exception& e) {
    std::string msg = e.what();
    std::replace(msg.begin(), msg.end(), '\n', ' ');
    throw Error(path + ": the trained stage fails the ONNX checker: " + msg);
  }
  // External data (PATH.data beside it) as the stage was read, or where it
  // is too large for one protobuf file.
  if (im.external_data || onnx_data::too_large(m)) {
    const std::filesystem::path artifact(path);
    const std::string data = onnx_data::externalize(m, artifact.filename().string() + ".data");
    if (!data.empty()) {
      std::ofstream d(path + ".data", std::ios::binary | std::ios::trunc);
      d.write(data.data(), static_cast<std::streamsize>(data.size()));
      if (!d) throw Error(path + ".data: cannot write the stage's external data");
    }
  }
  std::string bytes;
  if (!m.SerializeToString(&bytes)) throw Error(path + ": cannot serialize the ONNX model");
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw Error(path + ": cannot write the ONNX stage");
}

}  // namespace ppc::runtime
