#include "runtime/engine/pt_io.h"

#include <torch/script.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "schemas/error.h"

namespace ppc::runtime {

std::vector<NamedTensor> load_tensor_dict(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open the file");
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  c10::IValue value;
  try {
    value = torch::jit::pickle_load(bytes);
  } catch (const std::exception& e) {
    std::string what = e.what();
    throw Error(path + ": not a file written by torch.save: " + what.substr(0, what.find('\n')));
  }
  if (!value.isGenericDict()) throw Error(path + ": expected a dict of tensors (torch.save({...})), found " + value.tagKind());
  std::vector<NamedTensor> out;
  for (const auto& entry : value.toGenericDict()) {
    if (!entry.key().isString()) throw Error(path + ": dict keys must be strings");
    const std::string key = entry.key().toStringRef();
    if (!entry.value().isTensor())
      throw Error(path + ": entry '" + key + "' is a " + entry.value().tagKind() + ", expected a tensor");
    out.emplace_back(key, entry.value().toTensor());
  }
  return out;
}

void save_tensor_dict(const std::string& path, const std::vector<NamedTensor>& tensors) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& [name, t] : tensors) dict.insert(name, t.detach().contiguous());
  std::vector<char> bytes = torch::jit::pickle_save(c10::IValue(dict));
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(path + ": cannot write the file");
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) throw Error(path + ": write failed");
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace ppc::runtime
