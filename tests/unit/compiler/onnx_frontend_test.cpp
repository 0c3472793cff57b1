// The ONNX frontend's shapes: dims ONNX's inference leaves unnamed are named
// after the input symbol they follow, and only then.
#include "compiler/frontends/onnx/onnx_frontend.h"
#include "compiler/frontends/onnx/module_path.h"
#include "schemas/error.h"
#include "schemas/onnx_external_data.h"

#include "schemas/onnx_proto.h"

#include <unistd.h>

#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace ppc::onnx_frontend {
namespace {

namespace fs = std::filesystem;

onnx::NodeProto* node(onnx::GraphProto* g, const std::string& op, std::vector<std::string> ins,
                      std::vector<std::string> outs) {
  onnx::NodeProto* n = g->add_node();
  n->set_op_type(op);
  n->set_name("/" + outs[0] + "/" + op);
  for (auto& i : ins) n->add_input(i);
  for (auto& o : outs) n->add_output(o);
  return n;
}

void int_const(onnx::GraphProto* g, const std::string& name, std::vector<int64_t> v, bool scalar = false) {
  onnx::TensorProto* t = g->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::INT64);
  if (!scalar) t->add_dims(static_cast<int64_t>(v.size()));
  for (int64_t x : v) t->add_int64_data(x);
}

void value(onnx::ValueInfoProto* vi, const std::string& name, int elem, std::vector<std::string> dims) {
  vi->set_name(name);
  auto* tt = vi->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(elem);
  for (const auto& d : dims) {
    auto* dim = tt->mutable_shape()->add_dim();
    if (d.empty()) continue;  // a blank dim
    if (std::isdigit(static_cast<unsigned char>(d[0])))
      dim->set_dim_value(std::stoll(d));
    else
      dim->set_dim_param(d);
  }
}

// x: float [batch, seq]. pos = Range(0, Shape(x)[1], 1), cast to float:
// [unk] to ONNX's inference, always seq. y = x + pos: [batch, seq];
// twice = Concat(x, x, axis 1): [batch, 2 * seq], which follows no single
// symbol; z = Concat(pos, pos): [2 * seq].
std::string model_file() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  onnx::GraphProto* g = m.mutable_graph();
  g->set_name("dims");
  value(g->add_input(), "x", onnx::TensorProto::FLOAT, {"batch", "seq"});
  int_const(g, "zero", {0}, true);
  int_const(g, "one", {1}, true);
  int_const(g, "axis1", {1});
  node(g, "Shape", {"x"}, {"shape"});
  node(g, "Gather", {"shape", "one"}, {"len"});
  node(g, "Range", {"zero", "len", "one"}, {"pos_i"});
  node(g, "Cast", {"pos_i"}, {"pos"})->add_attribute()->CopyFrom([] {
    onnx::AttributeProto a;
    a.set_name("to");
    a.set_type(onnx::AttributeProto::INT);
    a.set_i(onnx::TensorProto::FLOAT);
    return a;
  }());
  node(g, "Add", {"x", "pos"}, {"y"});
  onnx::AttributeProto axis;
  axis.set_name("axis");
  axis.set_type(onnx::AttributeProto::INT);
  axis.set_i(1);
  node(g, "Concat", {"x", "x"}, {"twice"})->add_attribute()->CopyFrom(axis);
  axis.set_i(0);
  node(g, "Concat", {"pos", "pos"}, {"z"})->add_attribute()->CopyFrom(axis);
  value(g->add_output(), "y", onnx::TensorProto::FLOAT, {"", ""});
  value(g->add_output(), "twice", onnx::TensorProto::FLOAT, {"", ""});
  value(g->add_output(), "z", onnx::TensorProto::FLOAT, {""});
  fs::path p = fs::temp_directory_path() / ("ppc_dims_" + std::to_string(::getpid()) + ".onnx");
  std::ofstream(p, std::ios::binary) << m.SerializeAsString();
  return p.string();
}

ir::Shape shape_of(const ir::Graph& g, const std::string& name) {
  for (const auto& v : g.values)
    if (v.name == name) return v.shape;
  ADD_FAILURE() << "no value " << name;
  return {};
}

TEST(OnnxFrontend, NamesDimsThatFollowOneInputSymbol) {
  std::string path = model_file();
  std::vector<std::string> notes;
  auto src = load_onnx(path, "dims.onnx", &notes);
  fs::remove(path);
  const ir::Graph& g = src->graph();
  EXPECT_EQ(shape_of(g, "pos").str(), "[seq]");
  EXPECT_EQ(shape_of(g, "y").str(), "[batch,seq]");
  // 2 * seq follows no single symbol: left as inference had it (not seq).
  ir::Shape twice = shape_of(g, "twice"), z = shape_of(g, "z");
  ASSERT_TRUE(twice.rank_known);
  ASSERT_EQ(twice.dims.size(), 2u);
  EXPECT_EQ(twice.dims[0].symbol, "batch");
  EXPECT_NE(twice.dims[1].symbol, "seq");
  EXPECT_NE(twice.dims[1].symbol, "batch");
  EXPECT_FALSE(twice.dims[1].is_known());
  ASSERT_TRUE(z.rank_known);
  ASSERT_EQ(z.dims.size(), 1u);
  EXPECT_NE(z.dims[0].symbol, "seq");
  EXPECT_FALSE(z.dims[0].is_known());
}

TEST(OnnxFrontend, ParsesPythonListsOfStrings) {
  using V = std::vector<std::string>;
  EXPECT_EQ(parse_python_str_list("['', 'layer0', 'layer0.lin', 'linear']"), V({"", "layer0", "layer0.lin", "linear"}));
  EXPECT_EQ(parse_python_str_list("[]"), V());
  EXPECT_EQ(parse_python_str_list(" [ 'a' ,\"it's\" ] "), V({"a", "it's"}));
  EXPECT_EQ(parse_python_str_list("['a\\'b', 'c\\\\d']"), V({"a'b", "c\\d"}));
  for (const char* bad : {"", "['a'", "['a',]x", "['a' 'b']", "[a]", "'a'", "['a'] ['b']", "['a]"})
    EXPECT_FALSE(parse_python_str_list(bad).has_value()) << bad;
}

TEST(OnnxFrontend, ModulePathFromDynamoNameScopes) {
  // The element before the last is the innermost module; the last is the
  // node's own FX name; a repeated call's "@N" is dropped.
  EXPECT_EQ(module_from_name_scopes({"", "layer0", "layer0.lin", "linear"}), "layer0.lin");
  EXPECT_EQ(module_from_name_scopes({"", "output_proj", "linear_3"}), "output_proj");
  EXPECT_EQ(module_from_name_scopes({"", "add"}), "");
  EXPECT_EQ(module_from_name_scopes({"", "transformer.wte@1", "embedding_1"}), "transformer.wte");
  EXPECT_EQ(module_from_name_scopes({"", "a@b", "x"}), "a@b");
  EXPECT_EQ(module_from_name_scopes({}), "");
  EXPECT_EQ(module_from_name_scopes({"_empty_nn_module_stack_from_metadata_hook", "sym_size_int_10"}), "");
}

// A Gemm whose node carries the dynamo exporter's metadata (and a name with
// no scopes): its module is the metadata's; weights as external data.
TEST(OnnxFrontend, DynamoMetadataAndExternalData) {
  onnx::ModelProto m;
  m.set_ir_version(10);
  m.add_opset_import()->set_version(20);
  onnx::GraphProto* g = m.mutable_graph();
  g->set_name("dyn");
  value(g->add_input(), "x", onnx::TensorProto::FLOAT, {"batch", "4"});
  std::string blob;
  for (const char* name : {"layer0.lin.weight", "layer0.lin.bias"}) {
    onnx::TensorProto* t = g->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    const int n = std::string(name).find("weight") != std::string::npos ? 16 : 4;
    if (n == 16) t->add_dims(4);
    t->add_dims(4);
    std::string bytes(static_cast<size_t>(n) * 4, '\0');
    for (int i = 0; i < n; ++i) {
      float f = 0.25f * static_cast<float>(i + (n == 4 ? 100 : 0));
      std::memcpy(&bytes[static_cast<size_t>(i) * 4], &f, 4);
    }
    t->set_data_location(onnx::TensorProto::EXTERNAL);
    for (auto [k, v] : {std::pair<std::string, std::string>{"location", "w.data"},
                        {"offset", std::to_string(blob.size())},
                        {"length", std::to_string(bytes.size())}}) {
      auto* e = t->add_external_data();
      e->set_key(k);
      e->set_value(v);
    }
    blob += bytes;
  }
  onnx::NodeProto* gemm = node(g, "Gemm", {"x", "layer0.lin.weight", "layer0.lin.bias"}, {"linear"});
  gemm->set_name("node_linear");
  auto* meta = gemm->add_metadata_props();
  meta->set_key("pkg.torch.onnx.name_scopes");
  meta->set_value("['', 'layer0', 'layer0.lin', 'linear']");
  value(g->add_output(), "linear", onnx::TensorProto::FLOAT, {"batch", "4"});
  const fs::path dir = fs::temp_directory_path() / ("ppc_dyn_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "m.onnx", std::ios::binary) << m.SerializeAsString();

  // The data file is missing: one line naming the model, tensor and file.
  try {
    load_onnx((dir / "m.onnx").string(), "m.onnx", nullptr);
    ADD_FAILURE() << "loaded without its data file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("m.onnx: initializer 'layer0.lin.weight': cannot read external data file"),
              std::string::npos)
        << e.what();
  }
  std::ofstream(dir / "w.data", std::ios::binary) << blob;
  auto src = load_onnx((dir / "m.onnx").string(), "m.onnx", nullptr);
  const ir::Graph& gr = src->graph();
  ASSERT_EQ(gr.nodes.size(), 1u);
  EXPECT_EQ(gr.nodes[0].module, "layer0.lin");
  ASSERT_EQ(gr.params.size(), 2u);
  EXPECT_EQ(gr.params[0].bytes, 64);

  // Round trip: externalize moves the >= 1 KiB tensors only, and
  // internalize restores the same bytes.
  onnx::ModelProto copy = m;
  ASSERT_TRUE(onnx_data::internalize(copy, dir.string(), "m.onnx"));
  EXPECT_EQ(copy.graph().initializer(0).raw_data(), blob.substr(0, 64));
  EXPECT_EQ(copy.graph().initializer(1).raw_data(), blob.substr(64));
  EXPECT_TRUE(onnx_data::externalize(copy, "s.data").empty());  // both under 1 KiB
  std::string moved = onnx_data::externalize(copy, "s.data", 32);
  EXPECT_EQ(moved, blob.substr(0, 64));
  EXPECT_EQ(copy.graph().initializer(0).data_location(), onnx::TensorProto::EXTERNAL);
  EXPECT_FALSE(copy.graph().initializer(1).has_data_location());
  std::ofstream(dir / "s.data", std::ios::binary) << moved;
  ASSERT_TRUE(onnx_data::internalize(copy, dir.string(), "s.onnx"));
  EXPECT_EQ(copy.graph().initializer(0).raw_data(), blob.substr(0, 64));

  // A location outside the model's folder, and a range past the file's end.
  onnx::ModelProto bad = m;
  bad.mutable_graph()->mutable_initializer(0)->mutable_external_data(0)->set_value("../w.data");
  EXPECT_THROW(onnx_data::internalize(bad, dir.string(), "m.onnx"), Error);
  bad = m;
  bad.mutable_graph()->mutable_initializer(1)->mutable_external_data(2)->set_value("4096");
  try {
    onnx_data::internalize(bad, dir.string(), "m.onnx");
    ADD_FAILURE() << "read past the end";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("past the end of 'w.data' (80 bytes)"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ppc::onnx_frontend
