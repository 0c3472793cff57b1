#include "schemas/manifest.h"

#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "schemas/error.h"

namespace ppc::manifest {
namespace {

using Strings = std::vector<std::string>;

Dim known(int64_t v) { return Dim{v, ""}; }
Dim sym(const std::string& s) { return Dim{std::nullopt, s}; }
Dim unknown() { return Dim{}; }

// A manifest using every field: 3 stages, a skip edge, an int64 edge, a
// transmitted tie and a replicated one, an unranked tensor, defaults.
Manifest full_manifest() {
  Manifest m;
  m.source = Source{"onnx", "model.onnx", std::string(64, 'a'), 17};

  ModelInput x;
  x.name = "x";
  x.dtype = "float32";
  x.shape = std::vector<Dim>{sym("batch"), known(4)};
  x.batch_dim = 0;
  x.split = "batch";
  x.stages = {0};
  ModelInput mask;
  mask.name = "mask";
  mask.dtype = "bool";
  mask.shape = std::nullopt;
  mask.split = "replicate";
  mask.stages = {1, 2};
  m.model_inputs = {x, mask};

  ModelOutput y;
  y.name = "y";
  y.dtype = "float32";
  y.shape = std::vector<Dim>{sym("batch"), unknown()};
  y.batch_dim = 0;
  y.stage = 2;
  m.model_outputs = {y};

  for (int s = 0; s < 3; ++s) {
    Stage st;
    st.index = s;
    st.artifact = "stage" + std::to_string(s) + ".onnx";
    st.sha256 = std::string(64, static_cast<char>('0' + s));
    st.node_count = 10 + s;
    st.cloned_nodes = s;
    st.first_node = "/layer" + std::to_string(s) + "/MatMul";
    st.last_node = "/layer" + std::to_string(s) + "/Relu";
    st.modules = {"layer" + std::to_string(s)};
    st.flops = 1000 * (s + 1);
    st.param_bytes = 64 * s;
    m.stages.push_back(st);
  }
  StageInput in0;
  in0.name = "x";
  in0.dtype = "float32";
  in0.shape = std::vector<Dim>{sym("batch"), known(4)};
  in0.batch_dim = 0;
  in0.source = "model_input";
  m.stages[0].inputs = {in0};
  StageOutput h0;
  h0.name = "h0";
  h0.dtype = "float32";
  h0.shape = std::vector<Dim>{sym("batch"), known(8)};
  h0.batch_dim = 0;
  h0.to_stages = {1, 2};
  StageOutput w;
  w.name = "w";
  w.dtype = "float32";
  w.shape = std::vector<Dim>{known(8), known(8)};
  w.to_stages = {2};
  m.stages[0].outputs = {h0, w};
  StageParam pw;
  pw.name = "w";
  pw.original = "layer0.weight";
  pw.dtype = "float32";
  pw.shape = {8, 8};
  pw.bytes = 256;
  StageParam pk;
  pk.name = "k";
  pk.original = "k";
  pk.dtype = "int64";
  pk.shape = {};
  pk.bytes = 8;
  pk.trainable = false;
  m.stages[0].params = {pw, pk};

  StageInput in1;
  in1.name = "h0";
  in1.dtype = "float32";
  in1.shape = h0.shape;
  in1.batch_dim = 0;
  in1.source = "edge";
  in1.from_stage = 0;
  StageInput in1m;
  in1m.name = "mask";
  in1m.dtype = "bool";
  in1m.source = "model_input";
  m.stages[1].inputs = {in1m, in1};
  StageOutput idx;
  idx.name = "idx";
  idx.dtype = "int64";
  idx.shape = std::vector<Dim>{sym("batch")};
  idx.batch_dim = 0;
  idx.to_stages = {2};
  m.stages[1].outputs = {idx};

  StageInput tie;
  tie.name = "w";
  tie.dtype = "float32";
  tie.shape = w.shape;
  tie.source = "tie";
  tie.from_stage = 0;
  m.stages[2].inputs = {in1m, tie, in1};
  StageOutput out;
  out.name = "y";
  out.dtype = "float32";
  out.shape = y.shape;
  out.batch_dim = 0;
  out.model_output = true;
  m.stages[2].outputs = {out};

  Edge e0;
  e0.value = "h0";
  e0.dtype = "float32";
  e0.shape = h0.shape;
  e0.batch_dim = 0;
  e0.producer = 0;
  e0.consumers = {1, 2};
  Edge e1;
  e1.value = "idx";
  e1.dtype = "int64";
  e1.shape = idx.shape;
  e1.batch_dim = 0;
  e1.producer = 1;
  e1.consumers = {2};
  e1.differentiable = false;
  Edge e2;
  e2.value = "w";
  e2.dtype = "float32";
  e2.shape = w.shape;
  e2.producer = 0;
  e2.consumers = {2};
  e2.kind = "param";
  m.edges = {e0, e1, e2};

  TieGroup t0;
  t0.name = "tie0";
  t0.policy = "transmit";
  t0.owner = 0;
  t0.detected_by = "shared";
  t0.members = {TieMember{"w", "identity", {0, 2}}};
  TieGroup t1;
  t1.name = "tie1";
  t1.policy = "replicate";
  t1.owner = 1;
  t1.detected_by = "content";
  t1.members = {TieMember{"emb", "identity", {1}}, TieMember{"emb_t", "transpose", {2}}};
  m.ties = {t0, t1};

  m.default_schedule = "1f1b";
  m.default_chunks = 4;
  m.default_dp = 2;
  m.total_flops = 6000;
  return m;
}

Strings keys_of(const nlohmann::ordered_json& j) {
  Strings out;
  for (auto it = j.begin(); it != j.end(); ++it) out.push_back(it.key());
  return out;
}

std::string manifest_error(const std::string& text) {
  try {
    parse_manifest(text, "m.json");
  } catch (const Error& e) { return e.what(); }
  ADD_FAILURE() << "expected an error for:\n" << text;
  return "";
}

// Base text for error tests; line numbers are referred to below.
const std::string kBase =
    "{\"version\": 1,\n"                                                                   // 1
    " \"source\": {\"format\": \"onnx\", \"file\": \"m.onnx\"},\n"                         // 2
    " \"stages\": [\n"                                                                     // 3
    "  {\"index\": 0, \"artifact\": \"stage0.onnx\", \"inputs\": [], \"outputs\": []},\n"  // 4
    "  {\"index\": 1, \"artifact\": \"stage1.onnx\", \"inputs\": [], \"outputs\": []}\n"   // 5
    " ],\n"                                                                                // 6
    " \"edges\": [\n"                                                                      // 7
    "  {\"value\": \"h\", \"dtype\": \"float32\", \"producer\": 0, \"consumers\": [1]}\n"  // 8
    " ],\n"                                                                                // 9
    " \"model_inputs\": [],\n"                                                             // 10
    " \"model_outputs\": [{\"name\": \"y\", \"dtype\": \"float32\", \"stage\": 1}]\n"      // 11
    "}\n";

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  auto pos = text.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  if (pos != std::string::npos) text.replace(pos, from.size(), to);
  return text;
}

// ------------------------------------------------------------------ tests

// The manifest's text is written straight from the structs: character for
// character what the JSON tree (to_json) dumps, with every optional field set,
// strings that need escapes or are not ASCII, and doubles of every kind.
TEST(Manifest, TextIsTheJsonTreesDump) {
  Manifest m = full_manifest();
  EXPECT_EQ(to_json_text(m), to_json(m).dump(2) + "\n");
  Stage& s = m.stages[1];
  s.data_file = "stage1.onnx.data";
  s.data_sha256 = std::string(64, 'd');
  s.model_cost = 0.1;
  s.model_compute = 2.0;
  s.model_memory = 1e21;
  s.modules = {"a\"b", "back\\slash", "tab\there", "\x01", "caf\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac", ""};
  s.first_node = "/a/\"quoted\"/node";
  StageParam p;
  p.name = "w\nnewline";
  p.original = "\x7f";
  p.dtype = "float16";
  p.shape = {0, 3, -1, 1LL << 40};
  p.bytes = -5;
  p.trainable = false;
  p.state = false;
  p.aliases = {"x", "y\xc3\xbc"};
  s.params.push_back(p);
  s.params.push_back(StageParam{});
  m.edges[0].batch_dim = std::nullopt;
  m.edges[0].shape = std::nullopt;
  m.stages[0].inputs[0].shape = std::vector<Dim>{};
  Manifest::CostModel c;
  c.balance = "time";
  c.unit = "ms";
  c.partition = "auto";
  c.bottleneck = 1.0 / 3.0;
  c.imbalance = 1.0;
  c.lower_bound = 1e-7;
  c.forward_fraction = -0.0;
  c.message_ms = 123456789.125;
  c.message_bytes_per_second = 2.5e9;
  c.message_cpu_ms = std::numeric_limits<double>::quiet_NaN();
  c.message_cpu_bytes_per_second = std::numeric_limits<double>::infinity();
  c.message_bytes = {{0, 1, 1024.0, 0.5}, {1, 2, 0.0, 3e-300}};
  c.step_overhead_ms = 0.02;
  c.predicted_step_ms = 17.75;
  c.predicted_schedule = "interleaved-1f1b";
  c.predicted_cores = 2.0;
  m.cost_model = c;
  m.total_flops = std::numeric_limits<int64_t>::max();
  m.default_schedule.reset();
  EXPECT_EQ(to_json_text(m), to_json(m).dump(2) + "\n");
  m.default_chunks.reset();
  m.default_dp.reset();
  m.ties.clear();
  m.stages.clear();
  EXPECT_EQ(to_json_text(m), to_json(m).dump(2) + "\n");
  // Bytes that are not UTF-8 are refused as the tree's dump refuses them.
  m.producer = "\xff";
  EXPECT_THROW(to_json_text(m), nlohmann::json::exception);
}

TEST(Manifest, RoundTripIsByteIdentical) {
  Manifest m = full_manifest();
  std::string text = to_json_text(m);
  Manifest back = parse_manifest(text, "manifest.json");
  EXPECT_EQ(to_json_text(back), text);
  // And the fields really came back (not just re-serialized defaults).
  ASSERT_EQ(back.stages.size(), 3u);
  EXPECT_EQ(back.source.opset, 17);
  EXPECT_EQ(back.stages[2].inputs[1].source, "tie");
  EXPECT_EQ(back.stages[2].inputs[1].from_stage, 0);
  EXPECT_EQ(back.stages[1].inputs[0].from_stage, -1);
  EXPECT_FALSE(back.model_inputs[1].shape.has_value());
  EXPECT_FALSE(back.model_inputs[1].batch_dim.has_value());
  ASSERT_TRUE(back.model_outputs[0].shape.has_value());
  EXPECT_EQ((*back.model_outputs[0].shape)[1], unknown());
  EXPECT_EQ((*back.model_outputs[0].shape)[0], sym("batch"));
  EXPECT_EQ(back.edges[0].consumers, (std::vector<int>{1, 2}));
  EXPECT_FALSE(back.edges[1].differentiable);
  EXPECT_EQ(back.edges[2].kind, "param");
  EXPECT_EQ(back.ties[1].members[1].relation, "transpose");
  EXPECT_EQ(back.stages[0].params[1].trainable, false);
  EXPECT_TRUE(back.stages[0].params[1].shape.empty());
  EXPECT_EQ(back.stages[0].params[0].original, "layer0.weight");
  EXPECT_EQ(back.stages[1].first_node, "/layer1/MatMul");
  EXPECT_EQ(back.default_chunks, std::optional<int>(4));
  EXPECT_EQ(back.default_dp, std::optional<int>(2));
  EXPECT_EQ(back.total_flops, 6000);
}

TEST(Manifest, RoundTripWithoutOptionalParts) {
  Manifest m;
  m.source.format = "torchscript";
  m.source.file = "m.pt";
  Stage s;
  s.artifact = "stage0.pt";
  m.stages.push_back(s);
  std::string text = to_json_text(m);
  EXPECT_EQ(to_json_text(parse_manifest(text, "m.json")), text);
  EXPECT_NE(text.find("\"defaults\": {}"), std::string::npos) << text;
}

TEST(Manifest, CanonicalKeyOrder) {
  nlohmann::ordered_json j = to_json(full_manifest());
  EXPECT_EQ(keys_of(j), (Strings{"version", "producer", "source", "model_inputs", "model_outputs", "stages", "edges",
                                 "ties", "defaults", "cost"}));
  EXPECT_EQ(keys_of(j["source"]), (Strings{"format", "file", "sha256", "opset"}));
  EXPECT_EQ(keys_of(j["model_inputs"][0]), (Strings{"name", "dtype", "shape", "batch_dim", "split", "stages"}));
  EXPECT_EQ(keys_of(j["model_outputs"][0]), (Strings{"name", "dtype", "shape", "batch_dim", "stage"}));
  EXPECT_EQ(keys_of(j["stages"][0]),
            (Strings{"index", "artifact", "sha256", "inputs", "outputs", "params", "nodes", "modules", "cost"}));
  EXPECT_EQ(keys_of(j["stages"][0]["inputs"][0]),
            (Strings{"name", "dtype", "shape", "batch_dim", "source", "from_stage"}));
  EXPECT_EQ(keys_of(j["stages"][0]["outputs"][0]),
            (Strings{"name", "dtype", "shape", "batch_dim", "to_stages", "model_output"}));
  EXPECT_EQ(keys_of(j["stages"][0]["params"][0]),
            (Strings{"name", "original", "dtype", "shape", "bytes", "trainable"}));
  EXPECT_EQ(keys_of(j["stages"][0]["nodes"]), (Strings{"count", "cloned", "first", "last"}));
  EXPECT_EQ(keys_of(j["stages"][0]["cost"]), (Strings{"flops", "param_bytes"}));
  EXPECT_EQ(keys_of(j["edges"][0]),
            (Strings{"value", "dtype", "shape", "batch_dim", "producer", "consumers", "differentiable", "kind"}));
  EXPECT_EQ(keys_of(j["ties"][0]), (Strings{"name", "policy", "owner", "detected_by", "members"}));
  EXPECT_EQ(keys_of(j["ties"][0]["members"][0]), (Strings{"param", "relation", "stages"}));
  EXPECT_EQ(keys_of(j["defaults"]), (Strings{"schedule", "chunks", "dp"}));

  std::string text = to_json_text(full_manifest());
  EXPECT_EQ(text.rfind("{\n  \"version\": 1,\n  \"producer\": \"ppc\",\n  \"source\": {\n    \"format\": \"onnx\",", 0),
            0u)
      << text.substr(0, 200);
  EXPECT_EQ(text.back(), '\n');
  EXPECT_NE(text.find("\"from_stage\": null"), std::string::npos);
  EXPECT_NE(text.find("\"shape\": null"), std::string::npos);  // the unranked mask
}

TEST(Manifest, ExactTextOfASmallManifest) {
  Manifest m;
  m.source = Source{"onnx", "m.onnx", "ab", 17};
  ModelInput x;
  x.name = "x";
  x.dtype = "float32";
  x.shape = std::vector<Dim>{sym("batch"), unknown()};
  x.batch_dim = 0;
  x.stages = {0};
  m.model_inputs = {x};
  Stage s;
  s.artifact = "stage0.onnx";
  s.sha256 = "cd";
  s.node_count = 1;
  s.first_node = s.last_node = "n";
  m.stages = {s};
  const std::string expected = R"({
  "version": 1,
  "producer": "ppc",
  "source": {
    "format": "onnx",
    "file": "m.onnx",
    "sha256": "ab",
    "opset": 17
  },
  "model_inputs": [
    {
      "name": "x",
      "dtype": "float32",
      "shape": [
        "batch",
        null
      ],
      "batch_dim": 0,
      "split": "batch",
      "stages": [
        0
      ]
    }
  ],
  "model_outputs": [],
  "stages": [
    {
      "index": 0,
      "artifact": "stage0.onnx",
      "sha256": "cd",
      "inputs": [],
      "outputs": [],
      "params": [],
      "nodes": {
        "count": 1,
        "cloned": 0,
        "first": "n",
        "last": "n"
      },
      "modules": [],
      "cost": {
        "flops": 0,
        "param_bytes": 0
      }
    }
  ],
  "edges": [],
  "ties": [],
  "defaults": {},
  "cost": {
    "total_flops": 0
  }
}
)";
  EXPECT_EQ(to_json_text(m), expected);
}

TEST(Manifest, ParsesMinimalTextWithDefaults) {
  Manifest m = parse_manifest(kBase, "m.json");
  EXPECT_EQ(m.version, 1);
  EXPECT_EQ(m.producer, "ppc");
  EXPECT_EQ(m.source.format, "onnx");
  EXPECT_EQ(m.source.sha256, "");
  EXPECT_EQ(m.source.opset, 0);
  ASSERT_EQ(m.stages.size(), 2u);
  EXPECT_EQ(m.stages[1].artifact, "stage1.onnx");
  ASSERT_EQ(m.edges.size(), 1u);
  EXPECT_TRUE(m.edges[0].differentiable);
  EXPECT_EQ(m.edges[0].kind, "activation");
  EXPECT_FALSE(m.edges[0].shape.has_value());
  EXPECT_EQ(m.model_outputs[0].stage, 1);
  EXPECT_FALSE(m.default_schedule.has_value());
}

TEST(Manifest, UnknownKeysAreIgnored) {
  Manifest m =
      parse_manifest(replaced(kBase, "{\"version\": 1,", "{\"version\": 1, \"future_field\": {\"x\": [1]},"), "m.json");
  EXPECT_EQ(m.stages.size(), 2u);
}

TEST(ManifestErrors, UnsupportedVersion) {
  EXPECT_EQ(manifest_error(replaced(kBase, "\"version\": 1", "\"version\": 2")),
            "m.json:1:13: unsupported manifest version 2 (this build reads version 1)");
  EXPECT_EQ(manifest_error(replaced(kBase, "{\"version\": 1,", "{")), "m.json:1:1: missing required key 'version'");
}

TEST(ManifestErrors, StageIndexOutOfOrder) {
  EXPECT_EQ(manifest_error(replaced(kBase, "{\"index\": 1", "{\"index\": 2")),
            "m.json:5:13: stage index 2 out of order (expected 1)");
  EXPECT_EQ(manifest_error(replaced(kBase, "{\"index\": 0", "{\"index\": 1")),
            "m.json:4:13: stage index 1 out of order (expected 0)");
}

TEST(ManifestErrors, EdgeFlowsBackwards) {
  EXPECT_EQ(manifest_error(replaced(kBase, "\"consumers\": [1]", "\"consumers\": [0]")),
            "m.json:8:66: edge 'h' flows backwards (stage 0 -> 0)");
  EXPECT_EQ(manifest_error(replaced(replaced(kBase, "\"producer\": 0", "\"producer\": 1"), "\"consumers\": [1]",
                                    "\"consumers\": [1]")),
            "m.json:8:66: edge 'h' flows backwards (stage 1 -> 1)");
}

TEST(ManifestErrors, ArtifactMustBeAPlainFileName) {
  for (const char* bad : {"../stage0.onnx", "sub/stage0.onnx", "/abs.onnx", "a\\\\b.onnx", "", "..", "."}) {
    EXPECT_EQ(manifest_error(replaced(kBase, "\"stage0.onnx\"", std::string("\"") + bad + "\"")),
              "m.json:4:28: 'artifact' must be a plain file name next to the manifest")
        << bad;
  }
}

TEST(ManifestErrors, UnknownStageReferences) {
  EXPECT_EQ(manifest_error(replaced(kBase, "\"stage\": 1", "\"stage\": 5")),
            "m.json:11:63: stage 5 does not exist (the manifest has 2 stages)");
  EXPECT_EQ(manifest_error(replaced(kBase, "\"consumers\": [1]", "\"consumers\": [7]")),
            "m.json:8:66: stage 7 does not exist (the manifest has 2 stages)");
  EXPECT_EQ(manifest_error(replaced(kBase, "\"producer\": 0", "\"producer\": 9")),
            "m.json:8:50: stage 9 does not exist (the manifest has 2 stages)");
  EXPECT_EQ(manifest_error(replaced(kBase, "\"producer\": 0", "\"producer\": -1")),
            "m.json:8:50: stage -1 does not exist (the manifest has 2 stages)");
  EXPECT_EQ(
      manifest_error(replaced(kBase, "\"model_inputs\": []",
                              "\"model_inputs\": [{\"name\": \"x\", \"dtype\": \"float32\", \"stages\": [0, 2]}]")),
      "m.json:10:19: stage 2 does not exist (the manifest has 2 stages)");
  EXPECT_EQ(manifest_error(replaced(kBase, "\"inputs\": [], \"outputs\": []}\n ]",
                                    "\"inputs\": [{\"name\": \"h\", \"dtype\": \"float32\", \"source\": \"edge\", "
                                    "\"from_stage\": 3}], \"outputs\": []}\n ]")),
            "m.json:5:54: input 'h' comes from a stage that does not exist");
}

TEST(ManifestErrors, OtherProblems) {
  EXPECT_EQ(manifest_error("[]"), "m.json:1:1: a manifest must be a JSON object");
  EXPECT_EQ(manifest_error(replaced(kBase, "\"format\": \"onnx\"", "\"format\": \"tflite\"")),
            "m.json:2:23: unknown source format 'tflite' (expected one of: onnx, torchscript, pt2)");
  EXPECT_EQ(manifest_error(
                replaced(replaced(kBase,
                                  "  {\"index\": 0, \"artifact\": \"stage0.onnx\", \"inputs\": [], "
                                  "\"outputs\": []},\n",
                                  ""),
                         "  {\"index\": 1, \"artifact\": \"stage1.onnx\", \"inputs\": [], \"outputs\": []}\n", "")),
            "m.json:3:12: a manifest needs at least one stage");
  // Syntax errors come through as located ppc::Errors too.
  EXPECT_EQ(manifest_error("{\"version\": 1,}"), "m.json:1:14: trailing comma before '}'");
}

TEST(Manifest, LoadMissingFile) {
  try {
    load_manifest("/nonexistent/dir/manifest.json", "out/manifest.json");
    FAIL();
  } catch (const Error& e) { EXPECT_EQ(std::string(e.what()), "out/manifest.json: cannot read manifest"); }
}

TEST(Manifest, ShapeStr) {
  EXPECT_EQ(shape_str(std::nullopt), "?");
  EXPECT_EQ(shape_str(std::vector<Dim>{}), "[]");
  EXPECT_EQ(shape_str(std::vector<Dim>{sym("batch"), known(3), unknown()}), "[batch,3,?]");
}

}  // namespace
}  // namespace ppc::manifest
