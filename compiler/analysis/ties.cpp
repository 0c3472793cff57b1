#include "compiler/analysis/ties.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <string_view>
#include <unordered_map>

#include "schemas/suggest.h"
#include "schemas/error.h"

namespace ppc::analysis {

namespace {

bool is_transposed_shape(const ir::Shape& a, const ir::Shape& b) {
  return a.rank_known && b.rank_known && a.dims.size() == 2 && b.dims.size() == 2 && a.dims[0] == b.dims[1] &&
         a.dims[1] == b.dims[0];
}

std::string join_stages(const std::vector<int>& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out;
}

struct UnionFind {
  std::vector<int> parent;
  explicit UnionFind(size_t n) : parent(n) { std::iota(parent.begin(), parent.end(), 0); }
  int find(int x) { return parent[x] == x ? x : parent[x] = find(parent[x]); }
  void unite(int a, int b) {
    a = find(a);
    b = find(b);
    if (a != b) parent[std::max(a, b)] = std::min(a, b);
  }
};

}  // namespace

std::vector<TieCandidate> folded_tie_candidates(const ir::Graph& g) {
  std::unordered_map<std::string_view, std::vector<int>> by_content;  // hash -> params, in param order
  for (size_t i = 0; i < g.params.size(); ++i) {
    const ir::Param& p = g.params[i];
    if (!p.is_float || p.is_uniform || p.content_hash.empty()) continue;
    by_content[p.content_hash].push_back(static_cast<int>(i));
  }
  std::set<std::pair<int, int>> seen;
  std::vector<TieCandidate> out;
  for (size_t i = 0; i < g.params.size(); ++i) {
    const ir::Param& a = g.params[i];
    if (!a.is_float || a.is_uniform || a.transpose_hash.empty()) continue;
    auto found = by_content.find(a.transpose_hash);
    if (found == by_content.end()) continue;
    for (int b : found->second) {
      if (b == static_cast<int>(i)) continue;
      const int ai = static_cast<int>(i);
      const std::pair<int, int> key{std::min(ai, b), std::max(ai, b)};
      if (!seen.insert(key).second) continue;
      out.push_back(TieCandidate{key.first, key.second, "transpose"});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const TieCandidate& x, const TieCandidate& y) { return std::tie(x.a, x.b) < std::tie(y.a, y.b); });
  return out;
}

namespace {

// Why and how params are joined, per param, while the groups are built.
struct Joins {
  UnionFind uf;
  std::vector<int> reason;  // 1 shared, 2 content, 3 spec (max wins per group)
  std::vector<std::optional<spec::TiePolicy>> policy;
  std::vector<bool> in_spec;
  explicit Joins(size_t np) : uf(np), reason(np, 0), policy(np), in_spec(np, false) {}
};

void add_note(std::vector<std::string>* notes, const std::string& s) {
  if (notes) notes->push_back(s);
}

Error spec_error(const TieOptions& options, const spec::TieGroupSpec& grp, const std::string& msg) {
  return Error(options.doc ? options.doc->where(grp.pointer, msg) : msg);
}

// The param index of each member of a spec group.
std::vector<int> spec_member_params(const ir::Graph& g, const spec::TieGroupSpec& grp, const TieOptions& options,
                                    const std::vector<std::string>& param_names) {
  std::vector<int> ids;
  for (size_t k = 0; k < grp.members.size(); ++k) {
    const std::string& m = grp.members[k];
    ir::ValueId v = g.find_value(m);
    if (v == ir::kNone || g.values[v].param == ir::kNone) {
      std::string msg = "tie group member '" + m + "' is not a parameter of the model" + did_you_mean(m, param_names);
      throw spec_error(options, grp, msg);
    }
    ids.push_back(g.values[v].param);
  }
  return ids;
}

// Joins each spec group, whose members must really be one tensor: equal, or
// one the transpose of the other.
void join_spec_groups(const ir::Graph& g, const TieOptions& options, Joins& j) {
  if (options.groups.empty()) return;
  std::vector<std::string> param_names;
  for (const auto& p : g.params) param_names.push_back(p.name);
  for (const auto& grp : options.groups) {
    std::vector<int> ids = spec_member_params(g, grp, options, param_names);
    const ir::Param& first = g.params[ids[0]];
    for (size_t k = 1; k < ids.size(); ++k) {
      const ir::Param& other = g.params[ids[k]];
      bool have_hash = !first.content_hash.empty() && !other.content_hash.empty();
      bool same = have_hash ? other.content_hash == first.content_hash
                            : g.values[other.value].shape == g.values[first.value].shape;
      bool trans = have_hash ? (!first.transpose_hash.empty() && other.content_hash == first.transpose_hash)
                             : is_transposed_shape(g.values[other.value].shape, g.values[first.value].shape);
      if (!same && !trans) {
        std::string msg = "tie group member '" + other.name + "' " + g.values[other.value].shape.str() +
                          " is neither equal to '" + first.name + "' " + g.values[first.value].shape.str() +
                          " nor its transpose";
        throw spec_error(options, grp, msg);
      }
      j.uf.unite(ids[0], ids[k]);
    }
    for (int id : ids) {
      j.reason[id] = 3;
      j.in_spec[id] = true;
      if (grp.policy) j.policy[id] = grp.policy;
    }
  }
}

// Content candidates, after the spec groups so a pair the spec already
// joined is not reported as merely "possible".
void join_content_candidates(const ir::Graph& g, const std::vector<std::vector<int>>& holders,
                             const TieOptions& options, Joins& j, std::vector<std::string>* notes) {
  for (const auto& c : folded_tie_candidates(g)) {
    const auto& a = g.params[c.a];
    const auto& b = g.params[c.b];
    if (holders[c.a].empty() || holders[c.b].empty()) continue;
    if (j.uf.find(c.a) == j.uf.find(c.b) && j.in_spec[c.a] && j.in_spec[c.b]) continue;
    if (options.detect_folded) {
      j.uf.unite(c.a, c.b);
      j.reason[c.a] = std::max(j.reason[c.a], 2);
      j.reason[c.b] = std::max(j.reason[c.b], 2);
      add_note(notes, "tie by content: '" + b.name + "' is the transpose of '" + a.name +
                          "' (a constant-folded copy); tied (\"ties\": {\"detect_folded\": false} trains them apart)");
    } else {
      add_note(notes, "not tied: '" + b.name + "' is the transpose of '" + a.name +
                          "' (a constant-folded copy?), but ties.detect_folded is false: the two train apart");
    }
  }
}

// The group of the component `members` (of which `held` are read by some
// stage) around reference `ref`, the member held by the lowest stage.
TieGroup make_group(const ir::Graph& g, const std::vector<std::vector<int>>& holders, const TieOptions& options,
                    const Joins& j, const std::vector<int>& held, int ref, int max_reason, size_t index) {
  TieGroup t;
  t.name = "tie" + std::to_string(index);
  t.owner = holders[ref][0];
  t.detected_by = max_reason == 3 ? "spec" : max_reason == 2 ? "content" : "shared";
  t.policy = options.default_policy;
  for (int p : held)
    if (j.policy[p]) t.policy = *j.policy[p];
  TieMemberRef r;
  r.param = ref;
  r.stages = holders[ref];
  t.members.push_back(r);
  const ir::Param& rp = g.params[ref];
  for (int p : held) {
    if (p == ref) continue;
    const ir::Param& op = g.params[p];
    TieMemberRef m;
    m.param = p;
    m.stages = holders[p];
    bool have_hash = !rp.content_hash.empty() && !op.content_hash.empty();
    bool same = have_hash ? op.content_hash == rp.content_hash : g.values[op.value].shape == g.values[rp.value].shape;
    m.relation = same ? "identity" : "transpose";
    t.members.push_back(m);
  }
  return t;
}

// The tie group of one component of joined params, if it makes one; notes
// what a spec group names that comes to nothing.
std::optional<TieGroup> component_group(const ir::Graph& g, const std::vector<std::vector<int>>& holders,
                                        const TieOptions& options, const Joins& j, const std::vector<int>& members,
                                        size_t index, std::vector<std::string>* notes) {
  std::vector<int> held;
  for (int p : members)
    if (!holders[p].empty()) held.push_back(p);
  int total_holdings = 0;
  int max_reason = 0;
  for (int p : held) {
    total_holdings += static_cast<int>(holders[p].size());
    max_reason = std::max(max_reason, j.reason[p]);
  }
  bool spec_named = false;
  for (int p : members) spec_named = spec_named || j.in_spec[p];
  if (held.size() < members.size() && spec_named) {
    for (int p : members)
      if (holders[p].empty())
        add_note(notes, "tie group member '" + g.params[p].name + "' is not used by any node; ignored");
  }
  // A frozen tensor (buffer, constant) read by several stages is copied
  // into each: it never changes, so there is nothing to keep in step.
  bool trainable = false;
  for (int p : held) trainable = trainable || g.params[p].is_float;
  if (!trainable && !spec_named) return std::nullopt;
  if (total_holdings < 2) {
    if (spec_named && !held.empty())
      add_note(notes, "tie group with '" + g.params[held[0]].name + "' is held by stage " +
                          join_stages(holders[held[0]]) + " only; nothing to tie");
    return std::nullopt;
  }
  // Reference: the member held by the lowest stage (ties: lowest index).
  int ref = held[0];
  for (int p : held)
    if (holders[p][0] < holders[ref][0]) ref = p;
  return make_group(g, holders, options, j, held, ref, max_reason, index);
}

}  // namespace

std::vector<TieGroup> resolve_ties(const ir::Graph& g, const std::vector<std::vector<int>>& holders,
                                   const TieOptions& options, std::vector<std::string>* notes) {
  const size_t np = g.params.size();
  Joins j(np);
  for (size_t p = 0; p < np; ++p)
    if (holders[p].size() > 1) j.reason[p] = 1;
  join_spec_groups(g, options, j);
  join_content_candidates(g, holders, options, j, notes);

  // Collect components in order of their smallest param index, which is
  // their root (UnionFind::unite keeps the smaller one).
  std::vector<std::vector<int>> comps(np);
  for (size_t p = 0; p < np; ++p) comps[j.uf.find(static_cast<int>(p))].push_back(static_cast<int>(p));
  std::vector<TieGroup> groups;
  for (const auto& members : comps) {
    if (members.empty()) continue;
    std::optional<TieGroup> t = component_group(g, holders, options, j, members, groups.size(), notes);
    if (t) groups.push_back(std::move(*t));
  }
  return groups;
}

}  // namespace ppc::analysis
