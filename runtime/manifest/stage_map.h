// pprun's view of a manifest: the verified manifest directory and the stages
// of each rank. The first piece of the runtime; the engine builds on it.
#pragma once

#include <string>
#include <vector>

#include "schemas/manifest_dir.h"

namespace ppc::runtime {

// The manifest directory as ppc wrote it, verified (schemas/manifest_dir.h).
using manifest::load_and_verify;
using manifest::LoadedManifest;

/// Stages of `rank` when `world_size` ranks run `num_stages` stages: stage s
/// runs on rank s mod world_size (Megatron-style looping placement; one stage
/// per rank when they are equal). Throws ppc::Error unless world_size divides
/// num_stages and 0 <= rank < world_size.
std::vector<int> stages_of_rank(int num_stages, int world_size, int rank);

}  // namespace ppc::runtime
