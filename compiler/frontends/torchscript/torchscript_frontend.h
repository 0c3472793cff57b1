// TorchScript frontend: a module saved by torch.jit.trace/script -> the
// partition IR. LibTorch types stay behind TorchScriptSource
// (torchscript_source.h), which only the TorchScript emitter opens.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "compiler/frontends/source_model.h"

namespace ppc::torchscript_frontend {

class TorchScriptSource;

/// Loads the archive at `path` with LibTorch, inlines `forward`, resolves every
/// parameter/buffer read to one IR param per tensor (tied parameters, i.e. one
/// tensor under several names, become one param named by its first name in
/// named_parameters()/named_buffers() order), bakes other module attributes in
/// as constants, and lowers the top-level nodes of the inlined graph to the IR
/// (control-flow nodes stay atomic). `display_name` prefixes messages. Problems
/// the user must fix throw ppc::Error: unreadable archive, no `forward`,
/// module objects used as values, unsupported attributes.
std::unique_ptr<SourceModel> load_torchscript(const std::string& path, const std::string& display_name,
                                              std::vector<std::string>* notes);

}  // namespace ppc::torchscript_frontend
