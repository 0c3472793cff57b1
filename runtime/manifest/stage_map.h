// pprun's view of a manifest: validated against its artifacts, with the
// stages of each rank. The first piece of the runtime; the engine builds on it.
#pragma once

#include <string>
#include <vector>

#include "schemas/manifest.h"

namespace ppc::runtime {

/// A manifest loaded from a ppc output directory.
struct LoadedManifest {
  std::string dir;               ///< the directory holding manifest.json
  manifest::Manifest manifest;
  /// Absolute-or-relative path of stage i's artifact (dir / artifact).
  std::string artifact_path(int stage) const;
};

/// Reads DIR/manifest.json (or the file itself when given), validates it
/// (schema version, structure) and checks every artifact exists and matches
/// its sha256. Throws ppc::Error naming the file and the problem.
LoadedManifest load_and_verify(const std::string& dir_or_file);

/// Stages of `rank` when `world_size` ranks run `num_stages` stages: stage s
/// runs on rank s mod world_size (Megatron-style looping placement; one stage
/// per rank when they are equal). Throws ppc::Error unless world_size divides
/// num_stages and 0 <= rank < world_size.
std::vector<int> stages_of_rank(int num_stages, int world_size, int rank);

}  // namespace ppc::runtime
