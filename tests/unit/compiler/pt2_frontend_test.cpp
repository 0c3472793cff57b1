// The .pt2 frontend on small archives built here, in the layout
// torch.export.save writes (the end-to-end tests use real exports).
#include "compiler/frontends/pt2/pt2_frontend.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "compiler/frontends/pt2/pt2_source.h"
#include "schemas/error.h"
#include "schemas/zip_archive.h"

namespace ppc::pt2_frontend {
namespace {

using nlohmann::json;

json meta(json sizes, bool grad = false) {
  return json{{"dtype", 7}, {"sizes", sizes}, {"requires_grad", grad}, {"layout", 7}};
}
json sz(int64_t v) { return json{{"as_int", v}}; }
json sym(const std::string& s) {
  return json{{"as_expr", {{"expr_str", "Symbol('" + s + "', positive=True, integer=True)"}, {"hint", sz(2)}}}};
}
json targ(const std::string& name, const std::string& t) {
  return json{{"name", name}, {"arg", {{"as_tensor", {{"name", t}}}}}, {"kind", 1}};
}
json node(const std::string& name, const std::string& target, json inputs, const std::string& module) {
  std::string stack = "L__self__,,M";
  if (!module.empty()) stack += ";L__self__" + module + "," + module + ",torch.nn.Linear";
  return json{{"name", name},
              {"target", target},
              {"inputs", inputs},
              {"outputs", json::array({{{"as_tensor", {{"name", name}}}}})},
              {"metadata", {{"nn_module_stack", stack}}}};
}

// x[s,4] -> fc (linear with fc.weight[4,4]) -> view(s, 4) -> relu
json program() {
  json nodes = json::array();
  nodes.push_back(json{{"name", "sym_size_int"},
                       {"target", "torch.ops.aten.sym_size.int"},
                       {"inputs", json::array({targ("self", "x"), {{"name", "dim"}, {"arg", sz(0)}, {"kind", 1}}})},
                       {"outputs", json::array({{{"as_sym_int", {{"as_name", "sym_size_int"}}}}})},
                       {"metadata", json::object()}});
  nodes.push_back(node("linear", "torch.ops.aten.linear.default",
                       json::array({targ("input", "x"), targ("weight", "p_fc_weight")}), "fc"));
  json view_size = {{"as_sym_ints", json::array({{{"as_name", "sym_size_int"}}, sz(4)})}};
  nodes.push_back(node("view", "torch.ops.aten.view.default",
                       json::array({targ("self", "linear"), {{"name", "size"}, {"arg", view_size}, {"kind", 1}}}), ""));
  nodes.push_back(json{{"name", "check"},
                       {"target", "torch.ops.aten._assert_tensor_metadata.default"},
                       {"inputs", json::array({targ("a", "view")})},
                       {"outputs", json::array()},
                       {"metadata", json::object()}});
  nodes.push_back(node("relu", "torch.ops.aten.relu.default", json::array({targ("self", "view")}), ""));
  json tv = {{"x", meta({sym("s7"), sz(4)})},
             {"p_fc_weight", meta({sz(4), sz(4)}, true)},
             {"linear", meta({sym("s7"), sz(4)})},
             {"view", meta({sym("s7"), sz(4)})},
             {"relu", meta({sym("s7"), sz(4)})}};
  json graph = {{"inputs", json::array({{{"as_tensor", {{"name", "p_fc_weight"}}}}, {{"as_tensor", {{"name", "x"}}}}})},
                {"outputs", json::array({{{"as_tensor", {{"name", "relu"}}}}})},
                {"nodes", nodes},
                {"tensor_values", tv},
                {"sym_int_values", json::object()}};
  json sig = {{"input_specs",
               json::array({{{"parameter", {{"arg", {{"name", "p_fc_weight"}}}, {"parameter_name", "fc.weight"}}}},
                            {{"user_input", {{"arg", {{"as_tensor", {{"name", "x"}}}}}}}}})},
              {"output_specs", json::array({{{"user_output", {{"arg", {{"as_tensor", {{"name", "relu"}}}}}}}}})}};
  return json{{"schema_version", {{"major", 8}, {"minor", 17}}},
              {"graph_module", {{"graph", graph}, {"signature", sig}, {"module_call_graph", json::array()}}}};
}

std::string write_archive(const std::string& name, const json& prog, const std::string& format = "pt2") {
  zip::Writer w;
  json weight = {
      {"path_name", "weight_0"}, {"is_param", true}, {"use_pickle", false}, {"tensor_meta", meta({sz(4), sz(4)})}};
  w.add("m/data/weights/weight_0", std::string(64, '\0'));
  w.add("m/data/weights/model_weights_config.json", json{{"config", {{"fc.weight", weight}}}}.dump());
  w.add("m/data/constants/model_constants_config.json", R"({"config": {}})");
  w.add("m/models/model.json", prog.dump());
  w.add("m/archive_format", format);
  const auto path = std::filesystem::temp_directory_path() / ("ppc_pt2_test_" + name + ".pt2");
  std::ofstream(path, std::ios::binary) << w.finish();
  return path.string();
}

std::string error_of(const std::string& path) {
  try {
    load_pt2(path, path, nullptr);
  } catch (const Error& e) { return e.what(); }
  return "";
}

TEST(Pt2Frontend, LowersNodesParamsAndSymbolicSizes) {
  std::vector<std::string> notes;
  auto src = load_pt2(write_archive("ok", program()), "m.pt2", &notes);
  const ir::Graph& g = src->graph();
  ASSERT_EQ(g.nodes.size(), 3u);  // sym_size and the assertion are not IR nodes
  EXPECT_EQ(g.nodes[0].op, "aten.linear.default");
  EXPECT_EQ(g.nodes[0].module, "fc");
  EXPECT_EQ(g.nodes[1].module, "");
  EXPECT_EQ(g.nodes[2].name, "relu");
  // linear: 2 * out elements (batch counted as 1) * in features
  EXPECT_DOUBLE_EQ(g.nodes[0].flops, 2.0 * 4 * 4);
  ASSERT_EQ(g.params.size(), 1u);
  EXPECT_EQ(g.params[0].name, "fc.weight");
  EXPECT_EQ(g.params[0].bytes, 64);
  EXPECT_TRUE(g.params[0].is_float);
  ASSERT_EQ(g.inputs.size(), 1u);
  EXPECT_EQ(g.values[g.inputs[0]].shape.str(), "[s7,4]");
  ASSERT_EQ(g.outputs.size(), 1u);
  EXPECT_EQ(g.values[g.outputs[0]].name, "relu");
  const auto& pt2 = dynamic_cast<const Pt2Source&>(*src);
  EXPECT_EQ(pt2.sym_defs().at("sym_size_int"), 0);
  EXPECT_TRUE(pt2.dim_is_symbol("linear", 0, "s7"));
  EXPECT_FALSE(pt2.dim_is_symbol("linear", 1, "s7"));
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("1 assertion node(s)"), std::string::npos);
}

TEST(Pt2Frontend, BadProgramsAreOneLineErrors) {
  json old = program();
  old["schema_version"]["major"] = 7;
  EXPECT_NE(error_of(write_archive("v7", old)).find("schema version 7.17; ppc reads schema 8.x"), std::string::npos);

  EXPECT_NE(error_of(write_archive("fmt", program(), "aoti")).find("archive_format is 'aoti'"), std::string::npos);

  json hop = program();
  hop["graph_module"]["graph"]["nodes"][4]["inputs"].push_back(
      json{{"name", "body"}, {"arg", {{"as_graph", {{"name", "true_graph_0"}}}}}, {"kind", 1}});
  EXPECT_NE(error_of(write_archive("hop", hop))
                .find("node 'relu' (torch.ops.aten.relu.default): arguments of kind "
                      "'as_graph'"),
            std::string::npos);

  json mut = program();
  mut["graph_module"]["signature"]["output_specs"].push_back(
      json{{"buffer_mutation", {{"arg", {{"as_tensor", {{"name", "relu"}}}}}, {"buffer_name", "bn.running_mean"}}}});
  EXPECT_NE(error_of(write_archive("mut", mut)).find("graph output of kind 'buffer_mutation'"), std::string::npos);

  json dangling = program();
  dangling["graph_module"]["graph"]["nodes"][4]["inputs"][0] = targ("self", "nowhere");
  EXPECT_NE(error_of(write_archive("dangling", dangling)).find("reads tensor 'nowhere'"), std::string::npos);

  // Malformed JSON inside a well-formed archive (found by fuzzing: missing
  // keys and empty unions were assertions or undefined behaviour).
  json no_outputs = program();
  no_outputs["graph_module"]["graph"]["nodes"][4].erase("outputs");
  EXPECT_NE(error_of(write_archive("no_outputs", no_outputs)).find("malformed exported program"), std::string::npos);
  json empty_union = program();
  empty_union["graph_module"]["graph"]["nodes"][4]["inputs"][0]["arg"] = json::object();
  EXPECT_NE(error_of(write_archive("empty_union", empty_union)).find("expected a union"), std::string::npos);
  json float_size = program();
  for (auto& [name, meta] : float_size["graph_module"]["graph"]["tensor_values"].items())
    for (auto& d : meta["sizes"])
      if (d.contains("as_int")) d["as_int"] = 1e30;
  EXPECT_NE(error_of(write_archive("float_size", float_size)).find("expected an integer"), std::string::npos);

  const auto not_zip = std::filesystem::temp_directory_path() / "ppc_pt2_test_notzip.pt2";
  std::ofstream(not_zip) << "not a zip";
  EXPECT_NE(error_of(not_zip.string()).find("not a zip archive"), std::string::npos);
}

}  // namespace
}  // namespace ppc::pt2_frontend
