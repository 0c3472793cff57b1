// The ONNX frontend's shapes: dims ONNX's inference leaves unnamed are named
// after the input symbol they follow, and only then.
#include "compiler/frontends/onnx/onnx_frontend.h"

#include "schemas/onnx_proto.h"

#include <unistd.h>

#include <cctype>
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

}  // namespace
}  // namespace ppc::onnx_frontend
