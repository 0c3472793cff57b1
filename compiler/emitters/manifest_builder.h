// Builds the manifest (the stage graph) from a partition.
#pragma once

#include <string>
#include <vector>

#include "compiler/analysis/partition.h"
#include "compiler/frontends/source_model.h"
#include "schemas/manifest.h"
#include "schemas/split_spec.h"

namespace ppc {

/// Batch dim of every model input: the spec's `inputs` entry, else the first
/// symbolic dim, else 0 for ranked inputs. nullopt = replicated or scalar.
/// Throws ppc::Error (located in the spec) for unknown input names.
std::vector<std::optional<int>> model_input_batch_dims(const ir::Graph& g, const spec::SplitSpec& spec,
                                                       const JsonDocument* doc);

/// Everything except stage artifact names and hashes, which the driver fills
/// in once the stages are written.
manifest::Manifest build_manifest(const SourceModel& src, const analysis::Partition& p, const spec::SplitSpec& spec,
                                  const std::vector<std::optional<int>>& input_batch_dims);

}  // namespace ppc
