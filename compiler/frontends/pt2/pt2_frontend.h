// torch.export frontend: a .pt2 archive (torch.export.save) -> the partition
// IR, read in C++ without torch. Pt2Source (pt2_source.h) keeps the program
// for the .pt2 emitter.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "compiler/frontends/source_model.h"

namespace ppc::pt2_frontend {

/// The ExportedProgram schema major version this reader understands.
constexpr int kSchemaMajor = 8;

/// Reads the archive at `path` and lowers its program's graph to the IR:
/// one IR node per ATen operator node (module paths from nn_module_stack),
/// params from the graph signature (parameters, buffers, lifted constants;
/// tied parameters are one placeholder already), user inputs and outputs.
/// Symbolic sizes (aten.sym_size.int and arithmetic on them) are not IR nodes.
/// Problems the user must fix throw ppc::Error naming the file, the record and
/// the node: not a .pt2, truncated archive, unknown schema version,
/// unsupported node kinds (higher-order ops with subgraphs, custom objects).
/// Notes (dropped assertion nodes) go to `notes`.
std::unique_ptr<SourceModel> load_pt2(const std::string& path, const std::string& display_name,
                                      std::vector<std::string>* notes);

}  // namespace ppc::pt2_frontend
