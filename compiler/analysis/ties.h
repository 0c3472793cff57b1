// Tied (shared) parameters: one PyTorch Parameter that appears in several
// stages, or as several stored tensors (a constant-folded transposed copy).
#pragma once

#include <string>
#include <vector>

#include "compiler/ir/graph.h"
#include "schemas/json_text.h"
#include "schemas/split_spec.h"

namespace ppc::analysis {

struct TieOptions {
  bool detect_folded = true;
  spec::TiePolicy default_policy = spec::TiePolicy::Replicate;
  std::vector<spec::TieGroupSpec> groups;
  const JsonDocument* doc = nullptr;  ///< for error locations of spec groups
};

/// Two stored params whose contents say they are one parameter: `b` equals
/// `relation(a)`. Found by content fingerprints; never for uniform tensors.
struct TieCandidate {
  int a = 0;
  int b = 0;
  std::string relation;  ///< "transpose"
};

struct TieMemberRef {
  int param = 0;
  std::string relation = "identity";  ///< relative to members[0]
  std::vector<int> stages;            ///< stages whose nodes read it
};

struct TieGroup {
  std::string name;
  spec::TiePolicy policy = spec::TiePolicy::Replicate;
  int owner = 0;                      ///< lowest stage holding any member
  std::string detected_by;            ///< "shared" | "content" | "spec"
  std::vector<TieMemberRef> members;  ///< members[0] is the reference (held by owner)
};

/// Folded-copy candidates: pairs of 2-D float params where one is the
/// transpose of the other. Deterministic order (by param index).
std::vector<TieCandidate> folded_tie_candidates(const ir::Graph& g);

/// Groups tied params. `holders[p]` are the stages reading param p (sorted).
/// A param read by several stages is a group; content candidates join when
/// `detect_folded`; spec groups join their members and set policies. Adds a
/// human-readable line to `notes` for every candidate and every oddity.
/// Throws ppc::Error (located in the spec) for unknown or mismatched members.
std::vector<TieGroup> resolve_ties(const ir::Graph& g, const std::vector<std::vector<int>>& holders,
                                   const TieOptions& options, std::vector<std::string>* notes);

}  // namespace ppc::analysis
