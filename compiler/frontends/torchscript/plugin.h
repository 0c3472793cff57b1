// The TorchScript frontend and emitter live in a plugin, libppc_torchscript.so,
// loaded on first use: LibTorch takes ~0.7 s to load, and `ppc` on ONNX
// models (and every test that never touches TorchScript) should not pay it.
// This header includes no torch.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "compiler/analysis/partition.h"
#include "compiler/frontends/source_model.h"

namespace ppc::torchscript_frontend {

constexpr int kPluginAbi = 2;  // bump on any change to SourceModel or Partition layouts

/// What the plugin exports (see torchscript_frontend.h and
/// torchscript_emitter.h for the contracts of the two functions).
struct Plugin {
  int abi = kPluginAbi;
  std::unique_ptr<SourceModel> (*load)(const std::string& path, const std::string& display_name,
                                       std::vector<std::string>* notes) = nullptr;
  std::string (*emit)(const SourceModel& src, const analysis::Partition& p, int stage,
                      const std::string& path) = nullptr;
};

/// Loads the plugin once: $PPC_TORCHSCRIPT_PLUGIN if set, else
/// libppc_torchscript.so next to the running executable (or one directory
/// up, for test binaries). Throws ppc::Error when it cannot be loaded.
const Plugin& plugin();

}  // namespace ppc::torchscript_frontend

/// The plugin's entry point.
extern "C" const ppc::torchscript_frontend::Plugin* ppc_torchscript_plugin();
