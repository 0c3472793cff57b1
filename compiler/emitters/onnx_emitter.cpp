// ONNX stage emitter: a standalone sub-model per stage with exactly the
// initializers it uses, checked by the ONNX checker before it is written.
#include <onnx/checker.h>
#include <onnx/defs/schema.h>
#include <onnx/shape_inference/implementation.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string_view>
#include <unordered_set>

#include <google/protobuf/arena.h>

#include "compiler/emitters/onnx_emitter.h"
#include "compiler/frontends/onnx/onnx_source.h"
#include "schemas/error.h"
#include "schemas/onnx_external_data.h"

namespace ppc {

namespace {

namespace fs = std::filesystem;
using onnx_frontend::OnnxSource;

onnx::ValueInfoProto value_info(const OnnxSource& src, const ir::Graph& g, ir::ValueId v) {
  onnx::ValueInfoProto vi;
  const ir::Value& val = g.values[v];
  vi.set_name(val.name);
  if (val.param != ir::kNone) {
    // A transmitted parameter: its type is the stored tensor's.
    const auto& t = src.initializer(g.params[val.param].data_source);
    auto* tt = vi.mutable_type()->mutable_tensor_type();
    tt->set_elem_type(t.data_type());
    auto* sh = tt->mutable_shape();
    for (int64_t d : t.dims()) sh->add_dim()->set_dim_value(d);
    return vi;
  }
  if (const onnx::TypeProto* t = src.value_type(v)) *vi.mutable_type() = *t;
  return vi;
}

// The stage's graph: inputs, stored params, rebuilt tie members, nodes,
// outputs, and the inferred types of its intermediate values.
void build_stage_graph(const OnnxSource& src, const analysis::Partition& p, int stage, onnx::GraphProto* out) {
  const ir::Graph& g = src.graph();
  const analysis::StagePlan& sp = p.stages[stage];
  const onnx::ModelProto& in = src.model();
  out->set_name((in.graph().name().empty() ? std::string("graph") : in.graph().name()) + "_stage" +
                std::to_string(stage));

  std::unordered_set<std::string_view> io_names;  // of values in g, which outlives this
  for (const auto& inp : sp.inputs) {
    *out->add_input() = value_info(src, g, inp.value);
    io_names.insert(g.values[inp.value].name);
  }
  for (int prm : sp.params) {
    const ir::Param& param = g.params[prm];
    onnx::TensorProto* t = out->add_initializer();
    *t = src.initializer(param.data_source);
    t->set_name(param.name);
  }
  // Transmitted tie members rebuilt from their reference.
  for (const auto& d : sp.derived) {
    onnx::NodeProto* n = out->add_node();
    const std::string& target = g.params[d.param].name;
    n->set_name("ppc_tie/" + target);
    n->add_input(g.params[d.reference].name);
    n->add_output(target);
    if (d.relation == "transpose") {
      n->set_op_type("Transpose");
      auto* a = n->add_attribute();
      a->set_name("perm");
      a->set_type(onnx::AttributeProto::INTS);
      a->add_ints(1);
      a->add_ints(0);
    } else {
      n->set_op_type("Identity");
    }
  }
  out->mutable_node()->Reserve(out->node_size() + static_cast<int>(sp.nodes.size()));
  for (ir::NodeId id : sp.nodes) *out->add_node() = src.node_proto(g.nodes[id].source_index);
  for (ir::ValueId v : sp.outputs) {
    *out->add_output() = value_info(src, g, v);
    io_names.insert(g.values[v].name);
  }
  // Keep inferred types of the stage's intermediate values, in node order.
  for (ir::NodeId id : sp.nodes)
    for (ir::ValueId v : g.nodes[id].outputs) {
      const std::string& name = g.values[v].name;
      if (io_names.count(name)) continue;
      if (const onnx::TypeProto* t = src.value_type(v)) {
        auto* vi = out->add_value_info();
        vi->set_name(name);
        *vi->mutable_type() = *t;
      }
    }
}

// Strict shape inference (what Python's check_model(full_check=True) adds to
// the checker); it adds to `m`.
void infer_strictly(onnx::ModelProto& m) {
  onnx::ShapeInferenceOptions opts(/*check_type=*/true, /*error_mode=*/1, /*data_prop=*/false);
  onnx::shape_inference::InferShapes(m, onnx::OpSchemaRegistry::Instance(), opts);
}

EmittedStage emit_onnx_stage(const OnnxSource& src, const analysis::Partition& p, int stage, const std::string& path) {
  const onnx::ModelProto& in = src.model();
  // A stage is as many small messages as its nodes: built in an arena,
  // freed in one go.
  google::protobuf::Arena arena;
  onnx::ModelProto& m = *google::protobuf::Arena::CreateMessage<onnx::ModelProto>(&arena);
  m.set_ir_version(in.ir_version());
  *m.mutable_opset_import() = in.opset_import();
  m.set_producer_name(in.producer_name());
  m.set_producer_version(in.producer_version());
  m.set_domain(in.domain());
  m.set_model_version(in.model_version());
  *m.mutable_functions() = in.functions();
  *m.mutable_metadata_props() = in.metadata_props();
  auto add_meta = [&](const std::string& k, const std::string& v) {
    auto* e = m.add_metadata_props();
    e->set_key(k);
    e->set_value(v);
  };
  add_meta("ppc.stage", std::to_string(stage));
  add_meta("ppc.num_stages", std::to_string(p.num_stages));
  build_stage_graph(src, p, stage, m.mutable_graph());

  // Verify: the checker, then strict shape inference, unless the source's
  // inference was strict and passed (its final types are the stage's, and a
  // stage's nodes see no more than the whole model's did). Inference adds to
  // the model it runs on: on a copy where the weights go to a data file
  // (inference reads constant inputs from the weights), else on the stage
  // itself once it is serialized.
  const bool infer = !src.strictly_inferred();
  auto fail = [&](const std::exception& e) {
    std::string msg = e.what();
    std::replace(msg.begin(), msg.end(), '\n', ' ');
    return Error("stage " + std::to_string(stage) + " fails the ONNX checker: " + msg);
  };
  // External data where the source had it, and wherever the stage is too
  // large for one protobuf file (2 GiB). Sizing the stage (too_large) caches
  // each message's size in it, which its serialization below then reuses (the
  // checker does not change it).
  const bool external = src.had_external_data() || onnx_data::too_large(m);
  try {
    onnx::checker::check_model(m);
    if (external && infer) {
      onnx::ModelProto copy = m;
      infer_strictly(copy);
    }
  } catch (const std::exception& e) { throw fail(e); }

  EmittedStage out_files;
  if (external) {
    const fs::path artifact(path);
    out_files.data_file = artifact.filename().string() + ".data";
    out_files.data_bytes = onnx_data::externalize(m, out_files.data_file);
    if (out_files.data_bytes.empty()) {
      out_files.data_file.clear();
    } else {
      std::ofstream d(artifact.parent_path() / out_files.data_file, std::ios::binary | std::ios::trunc);
      d.write(out_files.data_bytes.data(), static_cast<std::streamsize>(out_files.data_bytes.size()));
      if (!d) throw Error(path + ".data: cannot write the stage's external data");
    }
  }
  if (external) {
    if (!m.SerializeToString(&out_files.bytes))
      throw Error("stage " + std::to_string(stage) + ": cannot serialize the ONNX model");
  } else {  // sized by too_large above, under 2 GiB
    out_files.bytes.resize(static_cast<size_t>(m.GetCachedSize()));
    m.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(out_files.bytes.data()));
  }
  if (!external && infer) {
    try {
      infer_strictly(m);
    } catch (const std::exception& e) { throw fail(e); }
  }
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(out_files.bytes.data(), static_cast<std::streamsize>(out_files.bytes.size()));
  if (!f) throw Error(path + ": cannot write stage artifact");
  return out_files;
}

}  // namespace

EmittedStage emit_onnx_stage(const SourceModel& src, const analysis::Partition& p, int stage, const std::string& path) {
  const auto* onnx_src = dynamic_cast<const OnnxSource*>(&src);
  if (!onnx_src) throw std::logic_error("emit_onnx_stage: the source is not an ONNX model");
  return emit_onnx_stage(*onnx_src, p, stage, path);
}

}  // namespace ppc
