// The .pt interchange format: dicts of tensors as Python's torch.save({...})
// writes them and torch.load reads them (LibTorch's pickler, no Python).
#pragma once

#include "runtime/stages/stage_module.h"

namespace ppc::runtime {

/// Reads a dict of tensors (string keys) in its insertion order. Throws
/// ppc::Error naming the file when it is missing, not a torch.save file, not
/// a dict, or holds a non-tensor value (naming the key).
std::vector<NamedTensor> load_tensor_dict(const std::string& path);

/// Writes a dict of tensors that Python's torch.load reads; written to a
/// temporary name and renamed, so a reader never sees half a file.
void save_tensor_dict(const std::string& path, const std::vector<NamedTensor>& tensors);

}  // namespace ppc::runtime
