// compiler/analysis/ties: shared and folded (transposed) parameters across
// stages, replicated or transmitted, and spec tie groups.
#include <string>

#include <gtest/gtest.h>

#include "compiler/analysis/partition.h"
#include "compiler/analysis/ties.h"
#include "schemas/error.h"
#include "schemas/json_text.h"
#include "schemas/split_spec.h"
#include "tests/unit/compiler/test_graphs.h"

namespace ppc::analysis {
namespace {

using namespace test_graphs;

const char* kTied = R"(
graph tied
input x:float32[batch,4]
param w:float32[4,4]
param v:float32[4,4]
node n0 MatMul @a : x w -> h0:float32[batch,4]
node n1 MatMul @b : h0 v -> h1:float32[batch,4]
node n2 MatMul @c : h1 w -> y:float32[batch,4]
output y
)";

TEST(Ties, SharedParamReplicated) {
  Graph g = parse_graph(kTied);
  auto c = consts(g);
  Partition p = partition(g, c, {cut_at(1), cut_at(2)}, TieOptions{});
  EXPECT_EQ(verify_partition(g, c, p), "");
  ASSERT_EQ(p.ties.size(), 1u);
  const TieGroup& t = p.ties[0];
  EXPECT_EQ(t.name, "tie0");
  EXPECT_EQ(t.detected_by, "shared");
  EXPECT_EQ(t.policy, spec::TiePolicy::Replicate);
  EXPECT_EQ(t.owner, 0);
  ASSERT_EQ(t.members.size(), 1u);
  EXPECT_EQ(g.params[t.members[0].param].name, "w");
  EXPECT_EQ(t.members[0].relation, "identity");
  EXPECT_EQ(t.members[0].stages, (Ints{0, 2}));
  // Replicated: both holders store it; nothing is sent.
  EXPECT_EQ(names_of_params(g, p.stages[0].params), (Strings{"w"}));
  EXPECT_EQ(names_of_params(g, p.stages[1].params), (Strings{"v"}));
  EXPECT_EQ(names_of_params(g, p.stages[2].params), (Strings{"w"}));
  EXPECT_EQ(edges_of(g, p), (Strings{"h0 0->1", "h1 1->2"}));
  EXPECT_TRUE(p.notes.empty());
}

TEST(Ties, NoTieWhenOneStageHoldsAParam) {
  Graph g = parse_graph(kTied);
  // One stage: w is read twice, but by one stage only.
  Partition whole = partition(g, consts(g), {}, TieOptions{});
  EXPECT_TRUE(whole.ties.empty());
  EXPECT_EQ(names_of_params(g, whole.stages[0].params), (Strings{"w", "v"}));
  // Cut before n2: n0 (stage 0) and n2 (stage 1) both read w.
  Partition q = partition(g, consts(g), {cut_at(2)}, TieOptions{});
  ASSERT_EQ(q.ties.size(), 1u);
  EXPECT_EQ(q.ties[0].members[0].stages, (Ints{0, 1}));
  // Cut before n1: w is read by stages 0 and 1 again (n2 is in stage 1).
  Partition r = partition(g, consts(g), {cut_at(1)}, TieOptions{});
  ASSERT_EQ(r.ties.size(), 1u);
  EXPECT_EQ(r.ties[0].members[0].stages, (Ints{0, 1}));
}

TEST(Ties, TransmitPolicyFromSpecGroup) {
  Graph g = parse_graph(kTied);
  auto c = consts(g);
  TieOptions opts;
  opts.groups.push_back(spec::TieGroupSpec{{"w"}, spec::TiePolicy::Transmit, ""});
  Partition p = partition(g, c, {cut_at(1), cut_at(2)}, opts);
  EXPECT_EQ(verify_partition(g, c, p), "");
  ASSERT_EQ(p.ties.size(), 1u);
  EXPECT_EQ(p.ties[0].policy, spec::TiePolicy::Transmit);
  EXPECT_EQ(p.ties[0].detected_by, "spec");
  EXPECT_EQ(p.ties[0].owner, 0);
  // The owner stores it; stage 2 receives it from the owner.
  EXPECT_EQ(names_of_params(g, p.stages[0].params), (Strings{"w"}));
  EXPECT_EQ(names_of_params(g, p.stages[2].params), Strings{});
  EXPECT_EQ(p.stages[2].param_bytes, 0);
  EXPECT_EQ(inputs_of(g, p.stages[2]), (Strings{"w:tie@0", "h1:edge@1"}));
  EXPECT_EQ(edges_of(g, p), (Strings{"h0 0->1", "h1 1->2", "w 0->2 param"}));
  EXPECT_EQ(names_of_values(g, p.stages[0].outputs), (Strings{"h0", "w"}));
  EXPECT_TRUE(p.stages[2].derived.empty());  // the reference itself, nothing to rebuild
}

TEST(Ties, TransmitAsDefaultPolicy) {
  Graph g = parse_graph(kTied);
  auto c = consts(g);
  TieOptions opts;
  opts.default_policy = spec::TiePolicy::Transmit;
  Partition p = partition(g, c, {cut_at(1), cut_at(2)}, opts);
  EXPECT_EQ(verify_partition(g, c, p), "");
  ASSERT_EQ(p.ties.size(), 1u);
  EXPECT_EQ(p.ties[0].detected_by, "shared");
  EXPECT_EQ(p.ties[0].policy, spec::TiePolicy::Transmit);
  EXPECT_EQ(edges_of(g, p), (Strings{"h0 0->1", "h1 1->2", "w 0->2 param"}));
  // A spec group's own policy beats the default.
  opts.groups.push_back(spec::TieGroupSpec{{"w"}, spec::TiePolicy::Replicate, ""});
  Partition q = partition(g, c, {cut_at(1), cut_at(2)}, opts);
  ASSERT_EQ(q.ties.size(), 1u);
  EXPECT_EQ(q.ties[0].policy, spec::TiePolicy::Replicate);
  EXPECT_EQ(edges_of(g, q), (Strings{"h0 0->1", "h1 1->2"}));
}

const char* kFolded = R"(
graph folded
input x:float32[batch,4]
param a:float32[4,8]
param b:float32[8,4]
node n0 MatMul @embed : x a -> h:float32[batch,8]
node n1 MatMul @head : h b -> y:float32[batch,4]
output y
)";

Graph folded_graph(bool uniform = false) {
  Graph g = parse_graph(kFolded);
  g.params[0].content_hash = "hash-a";
  g.params[0].transpose_hash = "hash-aT";
  g.params[1].content_hash = "hash-aT";  // b == a^T
  g.params[1].transpose_hash = "hash-a";
  g.params[0].is_uniform = uniform;
  g.params[1].is_uniform = uniform;
  return g;
}

TEST(Ties, FoldedCandidates) {
  Graph g = folded_graph();
  auto cands = folded_tie_candidates(g);
  ASSERT_EQ(cands.size(), 1u);  // one pair, found once even though both directions match
  EXPECT_EQ(cands[0].a, 0);
  EXPECT_EQ(cands[0].b, 1);
  EXPECT_EQ(cands[0].relation, "transpose");
}

TEST(Ties, FoldedCopyIsOnlyANoteWhenTheSpecOptsOut) {
  Graph g = folded_graph();
  auto c = consts(g);
  TieOptions opts;
  opts.detect_folded = false;
  Partition p = partition(g, c, {cut_at(1)}, opts);
  EXPECT_TRUE(p.ties.empty());
  ASSERT_EQ(p.notes.size(), 1u);
  EXPECT_EQ(p.notes[0],
            "not tied: 'b' is the transpose of 'a' (a constant-folded copy?), but ties.detect_folded is false: "
            "the two train apart");
  EXPECT_EQ(names_of_params(g, p.stages[0].params), (Strings{"a"}));
  EXPECT_EQ(names_of_params(g, p.stages[1].params), (Strings{"b"}));
}

TEST(Ties, FoldedCopyBecomesAGroupByDefault) {
  // The safe default: a trainable initializer that is the transpose of
  // another is the same PyTorch parameter, folded; training the two apart
  // would train another model than the user's.
  Graph g = folded_graph();
  auto c = consts(g);
  Partition p = partition(g, c, {cut_at(1)}, TieOptions{});
  EXPECT_EQ(verify_partition(g, c, p), "");
  ASSERT_EQ(p.ties.size(), 1u);
  const TieGroup& t = p.ties[0];
  EXPECT_EQ(t.detected_by, "content");
  EXPECT_EQ(t.owner, 0);
  ASSERT_EQ(t.members.size(), 2u);
  EXPECT_EQ(g.params[t.members[0].param].name, "a");
  EXPECT_EQ(t.members[0].relation, "identity");
  EXPECT_EQ(t.members[0].stages, (Ints{0}));
  EXPECT_EQ(g.params[t.members[1].param].name, "b");
  EXPECT_EQ(t.members[1].relation, "transpose");
  EXPECT_EQ(t.members[1].stages, (Ints{1}));
  ASSERT_EQ(p.notes.size(), 1u);
  EXPECT_EQ(p.notes[0],
            "tie by content: 'b' is the transpose of 'a' (a constant-folded copy); tied (\"ties\": "
            "{\"detect_folded\": false} trains them apart)");
  // Replicate (the default): each stage keeps its own stored tensor.
  EXPECT_EQ(names_of_params(g, p.stages[1].params), (Strings{"b"}));
  EXPECT_EQ(edges_of(g, p), (Strings{"h 0->1"}));
}

TEST(Ties, FoldedTransmitRebuildsTheTranspose) {
  Graph g = folded_graph();
  auto c = consts(g);
  TieOptions opts;
  opts.detect_folded = true;
  opts.default_policy = spec::TiePolicy::Transmit;
  Partition p = partition(g, c, {cut_at(1)}, opts);
  EXPECT_EQ(verify_partition(g, c, p), "");
  EXPECT_EQ(names_of_params(g, p.stages[0].params), (Strings{"a"}));
  EXPECT_TRUE(p.stages[1].params.empty());
  EXPECT_EQ(inputs_of(g, p.stages[1]), (Strings{"a:tie@0", "h:edge@0"}));
  ASSERT_EQ(p.stages[1].derived.size(), 1u);
  EXPECT_EQ(g.params[p.stages[1].derived[0].param].name, "b");
  EXPECT_EQ(g.params[p.stages[1].derived[0].reference].name, "a");
  EXPECT_EQ(p.stages[1].derived[0].relation, "transpose");
  EXPECT_EQ(edges_of(g, p), (Strings{"h 0->1", "a 0->1 param"}));
}

TEST(Ties, UniformParamsAreNeverCandidates) {
  Graph g = folded_graph(/*uniform=*/true);
  EXPECT_TRUE(folded_tie_candidates(g).empty());
  TieOptions opts;
  opts.detect_folded = true;
  Partition p = partition(g, consts(g), {cut_at(1)}, opts);
  EXPECT_TRUE(p.ties.empty());
  EXPECT_TRUE(p.notes.empty());

  // One uniform side is enough to rule the pair out.
  Graph h = folded_graph();
  h.params[1].is_uniform = true;
  EXPECT_TRUE(folded_tie_candidates(h).empty());
}

TEST(Ties, NonFloatOrHashlessParamsAreNeverCandidates) {
  Graph g = folded_graph();
  g.params[1].is_float = false;
  EXPECT_TRUE(folded_tie_candidates(g).empty());
  Graph h = folded_graph();
  h.params[1].content_hash.clear();  // b has no fingerprints at all
  h.params[1].transpose_hash.clear();
  EXPECT_TRUE(folded_tie_candidates(h).empty());
}

TEST(Ties, SpecGroupWithUnknownMember) {
  Graph g = parse_graph(kTied);
  TieOptions opts;
  opts.groups.push_back(spec::TieGroupSpec{{"w", "vv"}, std::nullopt, ""});
  try {
    partition(g, consts(g), {cut_at(1)}, opts);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "tie group member 'vv' is not a parameter of the model (did you mean 'v'?)");
  }
  // A value that exists but is not a param.
  TieOptions opts2;
  opts2.groups.push_back(spec::TieGroupSpec{{"h0"}, std::nullopt, ""});
  EXPECT_THROW(partition(g, consts(g), {cut_at(1)}, opts2), Error);
}

TEST(Ties, SpecGroupErrorIsLocated) {
  Graph g = parse_graph(kTied);
  JsonDocument doc = JsonDocument::parse(
      "{\"version\": 1, \"split_points\": [{\"node\": \"n0\"}],\n"
      " \"ties\": {\"groups\": [\n"
      "   [\"w\", \"wx\"]]}}\n",
      "spec.json");
  spec::SplitSpec s = spec::parse_split_spec(doc);
  TieOptions opts;
  opts.groups = s.ties.groups;
  opts.doc = &doc;
  try {
    partition(g, consts(g), {cut_at(1)}, opts);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "spec.json:3:4: tie group member 'wx' is not a parameter of the model (did you mean 'w'?)");
  }
}

TEST(Ties, SpecGroupJoinsUnrelatedShapesOnlyWhenCompatible) {
  Graph g = parse_graph(R"(
input x:float32[4]
param p:float32[4,4]
param q:float32[4,4]
param r:float32[4,8]
node a MatMul : x p -> h:float32[4]
node b MatMul : h q -> y:float32[4]
node c MatMul : y r -> z:float32[8]
output z
)");
  TieOptions ok;
  ok.groups.push_back(spec::TieGroupSpec{{"p", "q"}, std::nullopt, ""});
  Partition part = partition(g, consts(g), {cut_at(1)}, ok);
  ASSERT_EQ(part.ties.size(), 1u);
  EXPECT_EQ(part.ties[0].detected_by, "spec");
  ASSERT_EQ(part.ties[0].members.size(), 2u);
  EXPECT_EQ(g.params[part.ties[0].members[0].param].name, "p");
  EXPECT_EQ(part.ties[0].members[0].stages, (Ints{0}));
  EXPECT_EQ(g.params[part.ties[0].members[1].param].name, "q");
  EXPECT_EQ(part.ties[0].members[1].relation, "identity");
  EXPECT_EQ(part.ties[0].members[1].stages, (Ints{1}));

  TieOptions bad;
  bad.groups.push_back(spec::TieGroupSpec{{"p", "r"}, std::nullopt, ""});
  try {
    partition(g, consts(g), {cut_at(1)}, bad);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "tie group member 'r' [4,8] is neither equal to 'p' [4,4] nor its transpose");
  }
}

}  // namespace
}  // namespace ppc::analysis
