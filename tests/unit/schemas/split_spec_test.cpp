#include "schemas/split_spec.h"

#include <cstdio>
#include <fstream>
#include <string>
#include <unistd.h>

#include <gtest/gtest.h>

#include "schemas/error.h"

namespace ppc::spec {
namespace {

SplitSpec parse(const std::string& text) { return parse_split_spec(JsonDocument::parse(text, "spec.json")); }

// Parses expecting a ppc::Error; returns its message.
std::string spec_error(const std::string& text) {
  try {
    parse(text);
  } catch (const Error& e) { return e.what(); }
  ADD_FAILURE() << "expected an error for:\n" << text;
  return "";
}

// A temporary file removed at the end of the test.
class TempFile {
 public:
  explicit TempFile(const std::string& content) {
    char tmpl[] = "/tmp/ppc_spec_test_XXXXXX";
    int fd = mkstemp(tmpl);
    EXPECT_GE(fd, 0);
    close(fd);
    path_ = tmpl;
    std::ofstream(path_, std::ios::binary) << content;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string load_error(const std::string& path) {
  try {
    load_split_spec(path, "spec.json");
  } catch (const Error& e) { return e.what(); }
  ADD_FAILURE() << "expected load_split_spec to fail";
  return "";
}

// ------------------------------------------------------------------- good

TEST(SplitSpec, AllSplitPointKinds) {
  SplitSpec s = parse(R"({
  "$schema": "https://example.invalid/split-spec.schema.json",
  "version": 1,
  "split_points": [
    {"module": "layer0"},
    {"module": "layer1", "at": "begin"},
    {"node": "/layer2/MatMul", "at": "end"},
    {"node": "n6", "at": "begin"},
    {"value": "h7"},
    {"module": "layer3", "at": "end"}
  ]
})");
  EXPECT_EQ(s.version, 1);
  EXPECT_EQ(s.file, "spec.json");
  EXPECT_FALSE(s.auto_split.has_value());
  ASSERT_EQ(s.split_points.size(), 6u);
  using K = SplitPoint::Kind;
  EXPECT_EQ(s.split_points[0].kind, K::Module);
  EXPECT_EQ(s.split_points[0].name, "layer0");
  EXPECT_TRUE(s.split_points[0].at_end);  // "end" is the default
  EXPECT_EQ(s.split_points[0].pointer, "/split_points/0");
  EXPECT_EQ(s.split_points[1].kind, K::Module);
  EXPECT_FALSE(s.split_points[1].at_end);
  EXPECT_EQ(s.split_points[2].kind, K::Node);
  EXPECT_EQ(s.split_points[2].name, "/layer2/MatMul");
  EXPECT_TRUE(s.split_points[2].at_end);
  EXPECT_EQ(s.split_points[3].kind, K::Node);
  EXPECT_FALSE(s.split_points[3].at_end);
  EXPECT_EQ(s.split_points[4].kind, K::Value);
  EXPECT_EQ(s.split_points[4].name, "h7");
  EXPECT_TRUE(s.split_points[4].at_end);
  EXPECT_EQ(s.split_points[4].pointer, "/split_points/4");
  EXPECT_TRUE(s.split_points[5].at_end);
}

TEST(SplitSpec, Defaults) {
  SplitSpec s = parse(R"({"version": 1, "auto": {"stages": 3}})");
  ASSERT_TRUE(s.auto_split.has_value());
  EXPECT_EQ(s.auto_split->stages, 3);
  EXPECT_EQ(s.auto_split->balance, "flops");
  EXPECT_EQ(s.auto_split->pointer, "/auto");
  EXPECT_TRUE(s.split_points.empty());
  EXPECT_TRUE(s.ties.detect_folded);  // folded copies are tied unless the spec opts out
  EXPECT_EQ(s.ties.policy, TiePolicy::Replicate);
  EXPECT_TRUE(s.ties.groups.empty());
  EXPECT_TRUE(s.inputs.empty());
  EXPECT_FALSE(s.defaults.schedule.has_value());
  EXPECT_FALSE(s.defaults.chunks.has_value());
}

TEST(SplitSpec, AutoBalances) {
  EXPECT_EQ(parse(R"({"version": 1, "auto": {"stages": 1, "balance": "params"}})").auto_split->balance, "params");
  EXPECT_EQ(parse(R"({"version": 1, "auto": {"stages": 2, "balance": "uniform"}})").auto_split->balance, "uniform");
  EXPECT_EQ(parse(R"({"version": 1, "auto": {"stages": 2, "balance": "flops"}})").auto_split->balance, "flops");
  EXPECT_EQ(parse(R"({"version": 1, "auto": {"stages": 100000}})").auto_split->stages, 100000);
}

TEST(SplitSpec, TiesInputsAndRuntimeDefaults) {
  SplitSpec s = parse(R"({
  "version": 1,
  "auto": {"stages": 2},
  "ties": {
    "detect_folded": false,
    "policy": "transmit",
    "groups": [
      ["embed.weight", "head.weight"],
      {"members": ["a"], "policy": "replicate"},
      {"members": ["b", "c"]}
    ]
  },
  "inputs": {"x": {"batch_dim": 1}, "mask": {"replicate": true}, "y": {}, "z": {"replicate": false}},
  "defaults": {"schedule": "1f1b", "chunks": 8}
})");
  EXPECT_FALSE(s.ties.detect_folded);
  EXPECT_EQ(s.ties.policy, TiePolicy::Transmit);
  ASSERT_EQ(s.ties.groups.size(), 3u);
  EXPECT_EQ(s.ties.groups[0].members, (std::vector<std::string>{"embed.weight", "head.weight"}));
  EXPECT_FALSE(s.ties.groups[0].policy.has_value());  // the array form has no policy
  EXPECT_EQ(s.ties.groups[0].pointer, "/ties/groups/0");
  EXPECT_EQ(s.ties.groups[1].members, (std::vector<std::string>{"a"}));
  ASSERT_TRUE(s.ties.groups[1].policy.has_value());
  EXPECT_EQ(*s.ties.groups[1].policy, TiePolicy::Replicate);
  EXPECT_EQ(s.ties.groups[2].members, (std::vector<std::string>{"b", "c"}));
  EXPECT_FALSE(s.ties.groups[2].policy.has_value());
  EXPECT_EQ(s.ties.groups[2].pointer, "/ties/groups/2");

  ASSERT_EQ(s.inputs.size(), 4u);  // in document order
  EXPECT_EQ(s.inputs[0].name, "x");
  EXPECT_EQ(s.inputs[0].batch_dim, std::optional<int>(1));
  EXPECT_FALSE(s.inputs[0].replicate);
  EXPECT_EQ(s.inputs[0].pointer, "/inputs/x");
  EXPECT_EQ(s.inputs[1].name, "mask");
  EXPECT_TRUE(s.inputs[1].replicate);
  EXPECT_FALSE(s.inputs[1].batch_dim.has_value());
  EXPECT_EQ(s.inputs[2].name, "y");
  EXPECT_FALSE(s.inputs[2].replicate);
  EXPECT_FALSE(s.inputs[2].batch_dim.has_value());
  EXPECT_EQ(s.inputs[3].name, "z");
  EXPECT_FALSE(s.inputs[3].replicate);

  EXPECT_EQ(s.defaults.schedule, std::optional<std::string>("1f1b"));
  EXPECT_EQ(s.defaults.chunks, std::optional<int>(8));
}

TEST(SplitSpec, InputNamesNeedingPointerEscapes) {
  SplitSpec s = parse(R"({"version": 1, "auto": {"stages": 2}, "inputs": {"a/b~c": {"batch_dim": 0}}})");
  ASSERT_EQ(s.inputs.size(), 1u);
  EXPECT_EQ(s.inputs[0].name, "a/b~c");
  EXPECT_EQ(s.inputs[0].pointer, "/inputs/a~1b~0c");
  EXPECT_EQ(s.inputs[0].batch_dim, std::optional<int>(0));
}

TEST(SplitSpec, AllSchedules) {
  for (const char* sched :
       {"gpipe", "1f1b", "interleaved-1f1b", "looped-bfs", "zb-h1", "interleaved-zb", "zb-v", "dualpipev"}) {
    SplitSpec s =
        parse(std::string(R"({"version": 1, "auto": {"stages": 2}, "defaults": {"schedule": ")") + sched + "\"}}");
    EXPECT_EQ(s.defaults.schedule, std::optional<std::string>(sched));
  }
}

TEST(SplitSpec, PolicyNames) {
  EXPECT_STREQ(tie_policy_name(TiePolicy::Replicate), "replicate");
  EXPECT_STREQ(tie_policy_name(TiePolicy::Transmit), "transmit");
}

// ----------------------------------------------------------------- errors

TEST(SplitSpecErrors, UnknownTopLevelKey) {
  EXPECT_EQ(spec_error("{\n"
                       "  \"version\": 1,\n"
                       "  \"split_point\": []\n"
                       "}\n"),
            "spec.json:3:3: unknown key 'split_point' in split spec (did you mean 'split_points'?)");
  EXPECT_EQ(spec_error("{\"version\": 1, \"zzzzzzzzzz\": 0}"),
            "spec.json:1:16: unknown key 'zzzzzzzzzz' in split spec");
}

TEST(SplitSpecErrors, UnknownKeyInSplitPoint) {
  EXPECT_EQ(spec_error("{\"version\": 1,\n"
                       " \"split_points\": [{\"modul\": \"layer0\"}]}"),
            "spec.json:2:20: unknown key 'modul' in split point (did you mean 'module'?)");
}

TEST(SplitSpecErrors, UnknownKeysElsewhere) {
  EXPECT_EQ(spec_error("{\"version\": 1,\n"
                       " \"auto\": {\"stage\": 2}}"),
            "spec.json:2:11: unknown key 'stage' in 'auto' (did you mean 'stages'?)");
  EXPECT_EQ(spec_error("{\"version\": 1, \"auto\": {\"stages\": 2},\n"
                       " \"ties\": {\"groups\": [{\"member\": [\"a\"]}]}}"),
            "spec.json:2:23: unknown key 'member' in tie group (did you mean 'members'?)");
  EXPECT_EQ(spec_error("{\"version\": 1, \"auto\": {\"stages\": 2},\n"
                       " \"inputs\": {\"x\": {\"batchdim\": 0}}}"),
            "spec.json:2:19: unknown key 'batchdim' in input entry (did you mean 'batch_dim'?)");
  EXPECT_EQ(spec_error("{\"version\": 1, \"auto\": {\"stages\": 2},\n"
                       " \"defaults\": {\"chunk\": 4}}"),
            "spec.json:2:15: unknown key 'chunk' in 'defaults' (did you mean 'chunks'?)");
}

TEST(SplitSpecErrors, Version) {
  EXPECT_EQ(spec_error("{\"split_points\": [{\"module\": \"a\"}]}"),
            "spec.json:1:1: missing required key 'version' (use \"version\": 1)");
  EXPECT_EQ(spec_error("{\"version\": 2, \"auto\": {\"stages\": 2}}"),
            "spec.json:1:13: unsupported split spec version 2 (this ppc reads version 1)");
  EXPECT_EQ(spec_error("{\"version\": 0, \"auto\": {\"stages\": 2}}"),
            "spec.json:1:13: unsupported split spec version 0 (this ppc reads version 1)");
  EXPECT_EQ(spec_error("{\"version\": \"1\", \"auto\": {\"stages\": 2}}"),
            "spec.json:1:13: 'version' must be an integer, not a string");
  EXPECT_EQ(spec_error("{\"version\": 1.0, \"auto\": {\"stages\": 2}}"),
            "spec.json:1:13: 'version' must be an integer, not a number");
}

TEST(SplitSpecErrors, SplitPointsAndAuto) {
  EXPECT_EQ(spec_error("{\n"
                       "  \"version\": 1,\n"
                       "  \"split_points\": [{\"module\": \"a\"}],\n"
                       "  \"auto\": {\"stages\": 2}\n"
                       "}\n"),
            "spec.json:4:11: give either 'split_points' or 'auto', not both");
  EXPECT_EQ(spec_error("{\"version\": 1}"), "spec.json:1:1: the spec needs 'split_points' or 'auto'");
  EXPECT_EQ(spec_error("{\n"
                       "  \"version\": 1,\n"
                       "  \"split_points\": []\n"
                       "}\n"),
            "spec.json:3:19: 'split_points' is empty (one split point makes two stages)");
}

TEST(SplitSpecErrors, At) {
  EXPECT_EQ(spec_error("{\n"
                       "  \"version\": 1,\n"
                       "  \"split_points\": [\n"
                       "    {\"value\": \"h\", \"at\": \"end\"}\n"
                       "  ]\n"
                       "}\n"),
            "spec.json:4:26: 'at' does not apply to a value split point (it always cuts after the producer)");
  EXPECT_EQ(spec_error("{\n"
                       "  \"version\": 1,\n"
                       "  \"split_points\": [\n"
                       "    {\"module\": \"m\", \"at\": \"middle\"}\n"
                       "  ]\n"
                       "}\n"),
            "spec.json:4:27: unknown 'at' 'middle' (expected one of: begin, end)");
  EXPECT_EQ(spec_error("{\"version\": 1,\n"
                       " \"split_points\": [{\"node\": \"n\", \"at\": true}]}"),
            "spec.json:2:39: 'at' must be a string, not a boolean");
}

TEST(SplitSpecErrors, SplitPointShape) {
  EXPECT_EQ(spec_error("{\"version\": 1,\n"
                       " \"split_points\": [{\"module\": \"a\", \"node\": \"b\"}]}"),
            "spec.json:2:19: a split point needs exactly one of 'module', 'node' or 'value'");
  EXPECT_EQ(spec_error("{\"version\": 1,\n"
                       " \"split_points\": [{\"at\": \"end\"}]}"),
            "spec.json:2:19: a split point needs exactly one of 'module', 'node' or 'value'");
  EXPECT_EQ(spec_error("{\"version\": 1,\n"
                       " \"split_points\": [{\"node\": \"\"}]}"),
            "spec.json:2:19: empty name in split point");
  EXPECT_EQ(spec_error("{\"version\": 1,\n"
                       " \"split_points\": [{\"module\": \"a\"}, 3]}"),
            "spec.json:2:36: split point must be an object, not an integer");
}

TEST(SplitSpecErrors, AutoStages) {
  EXPECT_EQ(spec_error("{\n"
                       "  \"version\": 1,\n"
                       "  \"auto\": {\"stages\": 0}\n"
                       "}\n"),
            "spec.json:3:22: 'auto.stages' must be at least 1");
  EXPECT_EQ(spec_error("{\n"
                       "  \"version\": 1,\n"
                       "  \"auto\": {\"stages\": -3}\n"
                       "}\n"),
            "spec.json:3:22: 'auto.stages' must be at least 1");
  EXPECT_EQ(spec_error("{\n"
                       "  \"version\": 1,\n"
                       "  \"auto\": {\"stages\": 100001}\n"
                       "}\n"),
            "spec.json:3:22: 'auto.stages' is unreasonably large");
  EXPECT_EQ(spec_error("{\n"
                       "  \"version\": 1,\n"
                       "  \"auto\": {}\n"
                       "}\n"),
            "spec.json:3:11: missing required key 'stages'");
  EXPECT_EQ(spec_error("{\n"
                       "  \"version\": 1,\n"
                       "  \"auto\": {\"stages\": 2, \"balance\": \"speed\"}\n"
                       "}\n"),
            "spec.json:3:36: unknown balance 'speed' (expected one of: time, flops, params, uniform)");
  EXPECT_EQ(spec_error("{\"version\": 1, \"auto\": {\"stages\": 2, \"module_depth\": 2}}"),
            "spec.json:1:54: 'auto.module_depth' needs \"cut_at\": \"module\"");
  EXPECT_EQ(spec_error("{\"version\": 1, \"auto\": {\"stages\": 2, \"link_bytes_per_second\": -1}}"),
            "spec.json:1:63: 'auto.link_bytes_per_second' must be 0 or more");
  EXPECT_EQ(spec_error("{\"version\": 1, \"auto\": {\"stages\": 2, \"memory_cap_mib\": \"big\"}}"),
            "spec.json:1:56: 'auto.memory_cap_mib' must be a number, not a string");
}

TEST(SplitSpec, AutoCostModelFields) {
  auto s = parse(R"({"version": 1, "auto": {"stages": 4, "balance": "time", "cut_at": "module", "module_depth": 2,
    "flops_per_second": 1e12, "link_bytes_per_second": 0, "memory_cap_mib": 512.5, "micro_batch_size": 8,
    "optimizer_states": 1}})");
  ASSERT_TRUE(s.auto_split);
  const auto& a = *s.auto_split;
  EXPECT_EQ(a.balance, "time");
  EXPECT_EQ(a.cut_at, "module");
  EXPECT_EQ(a.module_depth, 2);
  EXPECT_EQ(*a.flops_per_second, 1e12);
  EXPECT_EQ(*a.link_bytes_per_second, 0.0);
  EXPECT_EQ(*a.memory_cap_mib, 512.5);
  EXPECT_EQ(*a.micro_batch_size, 8);
  EXPECT_EQ(*a.optimizer_states, 1);
  auto d = parse(R"({"version": 1, "auto": {"stages": 2}})");
  EXPECT_EQ(d.auto_split->cut_at, "node");
  EXPECT_FALSE(d.auto_split->link_bytes_per_second);
}

TEST(SplitSpecErrors, WrongTypes) {
  EXPECT_EQ(spec_error("[]"), "spec.json:1:1: split spec must be an object, not an array");
  EXPECT_EQ(spec_error("{\n"
                       "  \"version\": 1,\n"
                       "  \"split_points\": {}\n"
                       "}\n"),
            "spec.json:3:19: 'split_points' must be an array, not an object");
  EXPECT_EQ(spec_error("{\n"
                       "  \"version\": 1,\n"
                       "  \"split_points\": [{\"module\": 3}]\n"
                       "}\n"),
            "spec.json:3:31: 'module' must be a string, not an integer");
  EXPECT_EQ(spec_error("{\n"
                       "  \"version\": 1,\n"
                       "  \"auto\": {\"stages\": \"2\"}\n"
                       "}\n"),
            "spec.json:3:22: 'auto.stages' must be an integer, not a string");
  EXPECT_EQ(spec_error("{\n"
                       "  \"version\": 1,\n"
                       "  \"auto\": 4\n"
                       "}\n"),
            "spec.json:3:11: 'auto' must be an object, not an integer");
  EXPECT_EQ(spec_error("{\n"
                       "  \"version\": 1,\n"
                       "  \"auto\": {\"stages\": 2},\n"
                       "  \"ties\": {\"detect_folded\": 1}\n"
                       "}\n"),
            "spec.json:4:29: 'detect_folded' must be true or false, not an integer");
  EXPECT_EQ(spec_error("{\n"
                       "  \"version\": 1,\n"
                       "  \"auto\": {\"stages\": 2},\n"
                       "  \"ties\": {\"groups\": {}}\n"
                       "}\n"),
            "spec.json:4:22: 'ties.groups' must be an array, not an object");
  EXPECT_EQ(spec_error("{\n"
                       "  \"version\": 1,\n"
                       "  \"auto\": {\"stages\": 2},\n"
                       "  \"inputs\": [\"x\"]\n"
                       "}\n"),
            "spec.json:4:13: 'inputs' must be an object keyed by model input name");
  EXPECT_EQ(spec_error("{\n"
                       "  \"version\": 1,\n"
                       "  \"auto\": {\"stages\": 2},\n"
                       "  \"inputs\": {\"x\": {\"replicate\": \"yes\"}}\n"
                       "}\n"),
            "spec.json:4:33: 'replicate' must be true or false, not a string");
}

TEST(SplitSpecErrors, TieGroups) {
  EXPECT_EQ(spec_error("{\"version\": 1, \"auto\": {\"stages\": 2},\n"
                       " \"ties\": {\"groups\": [[]]}}"),
            "spec.json:2:22: a tie group needs at least one member");
  EXPECT_EQ(spec_error("{\"version\": 1, \"auto\": {\"stages\": 2},\n"
                       " \"ties\": {\"groups\": [[\"w\", \"v\", \"w\"]]}}"),
            "spec.json:2:33: 'w' is listed twice in this tie group");
  EXPECT_EQ(spec_error("{\"version\": 1, \"auto\": {\"stages\": 2},\n"
                       " \"ties\": {\"groups\": [{\"policy\": \"transmit\"}]}}"),
            "spec.json:2:22: missing required key 'members'");
  EXPECT_EQ(spec_error("{\"version\": 1, \"auto\": {\"stages\": 2},\n"
                       " \"ties\": {\"policy\": \"share\"}}"),
            "spec.json:2:21: unknown tie policy 'share' (expected one of: replicate, transmit)");
  EXPECT_EQ(spec_error("{\"version\": 1, \"auto\": {\"stages\": 2},\n"
                       " \"ties\": {\"groups\": [[1]]}}"),
            "spec.json:2:23: tie group member must be a string, not an integer");
}

TEST(SplitSpecErrors, InputsAndDefaults) {
  EXPECT_EQ(spec_error("{\"version\": 1, \"auto\": {\"stages\": 2},\n"
                       " \"inputs\": {\"x\": {\"batch_dim\": 0, \"replicate\": true}}}"),
            "spec.json:2:18: an input is either split along 'batch_dim' or 'replicate'd, not both");
  EXPECT_EQ(spec_error("{\"version\": 1, \"auto\": {\"stages\": 2},\n"
                       " \"inputs\": {\"x\": {\"batch_dim\": -1}}}"),
            "spec.json:2:32: 'batch_dim' must be between 0 and 64");
  EXPECT_EQ(spec_error("{\"version\": 1, \"auto\": {\"stages\": 2},\n"
                       " \"defaults\": {\"chunks\": 0}}"),
            "spec.json:2:25: 'chunks' must be between 1 and 1000000");
  EXPECT_EQ(spec_error("{\"version\": 1, \"auto\": {\"stages\": 2},\n"
                       " \"defaults\": {\"schedule\": \"pipedream\"}}"),
            "spec.json:2:27: unknown schedule 'pipedream' (expected one of: gpipe, 1f1b, interleaved-1f1b, "
            "looped-bfs, zb-h1, interleaved-zb, zb-v, dualpipev)");
}

// ------------------------------------------------------------------- files

TEST(SplitSpecFile, LoadsAFile) {
  TempFile f("{\"version\": 1, \"split_points\": [{\"module\": \"layer0\"}]}\n");
  SplitSpec s = load_split_spec(f.path(), "my/spec.json");
  EXPECT_EQ(s.file, "my/spec.json");
  ASSERT_EQ(s.split_points.size(), 1u);
  EXPECT_EQ(s.split_points[0].name, "layer0");
}

TEST(SplitSpecFile, SyntaxErrorsAreLocatedPpcErrors) {
  TempFile trailing("{\n  \"version\": 1,\n  \"auto\": {\"stages\": 2,}\n}\n");
  EXPECT_EQ(load_error(trailing.path()), "spec.json:3:23: trailing comma before '}'");
  TempFile comment("{\n  \"version\": 1, // one\n  \"auto\": {\"stages\": 2}\n}\n");
  EXPECT_EQ(load_error(comment.path()), "spec.json:2:17: comments are not allowed in JSON");
  TempFile dup("{\"version\": 1,\n \"version\": 1}");
  EXPECT_EQ(load_error(dup.path()), "spec.json:2:2: duplicate key 'version'");
}

TEST(SplitSpecFile, SchemaErrorsFromAFile) {
  TempFile f("{\n  \"version\": 1,\n  \"auto\": {\"stages\": 0}\n}\n");
  EXPECT_EQ(load_error(f.path()), "spec.json:3:22: 'auto.stages' must be at least 1");
}

TEST(SplitSpecFile, MissingFile) {
  std::string msg = load_error("/nonexistent/dir/spec.json");
  EXPECT_EQ(msg.rfind("spec.json: cannot read file", 0), 0u) << msg;
}

}  // namespace
}  // namespace ppc::spec

namespace ppc::spec {

TEST(SplitSpec, DeclaredInputTypes) {
  auto s = parse(R"({"version": 1, "auto": {"stages": 2},
    "inputs": {"idx": {"dtype": "int64", "shape": ["batch", 16]}, "mask": {"replicate": true}}})");
  ASSERT_EQ(s.inputs.size(), 2u);
  EXPECT_EQ(s.inputs[0].name, "idx");
  ASSERT_TRUE(s.inputs[0].dtype.has_value());
  EXPECT_EQ(*s.inputs[0].dtype, "int64");
  ASSERT_TRUE(s.inputs[0].shape.has_value());
  ASSERT_EQ(s.inputs[0].shape->size(), 2u);
  EXPECT_FALSE((*s.inputs[0].shape)[0].value.has_value());
  EXPECT_EQ((*s.inputs[0].shape)[0].symbol, "batch");
  EXPECT_EQ((*s.inputs[0].shape)[1].value, std::optional<int64_t>(16));
  EXPECT_FALSE(s.inputs[1].dtype.has_value());
  EXPECT_FALSE(s.inputs[1].shape.has_value());
}

TEST(SplitSpec, DeclaredInputTypeErrors) {
  EXPECT_EQ(
      spec_error(R"({"version": 1, "auto": {"stages": 2}, "inputs": {"x": {"dtype": "float"}}})"),
      "spec.json:1:65: unknown dtype 'float' (expected one of: float32, float64, float16, bfloat16, int64, int32, "
      "int16, int8, uint8, bool)");
  EXPECT_EQ(spec_error(R"({"version": 1, "auto": {"stages": 2}, "inputs": {"x": {"shape": [-1]}}})"),
            "spec.json:1:66: a dim must be non-negative");
  EXPECT_EQ(spec_error(R"({"version": 1, "auto": {"stages": 2}, "inputs": {"x": {"shape": [""]}}})"),
            "spec.json:1:66: a symbolic dim needs a name (e.g. \"batch\")");
  EXPECT_EQ(spec_error(R"({"version": 1, "auto": {"stages": 2}, "inputs": {"x": {"shape": 3}}})"),
            "spec.json:1:65: 'shape' must be an array, not an integer");
}

}  // namespace ppc::spec
