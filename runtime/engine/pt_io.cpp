#include "runtime/engine/pt_io.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <torch/csrc/jit/serialization/unpickler.h>
#include <torch/script.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "schemas/error.h"
#include "schemas/json_text.h"

namespace ppc::runtime {

namespace {

// LibTorch 1.13's unpickler lacks SETITEM ('s'), which Python's pickler
// emits for a dict of exactly one entry ("}" [BINPUT] key value "s" ".").
// Rewrite that one form into MARK key value SETITEMS ("(" ... "u"), which it
// reads. Returns false when the stream does not have that form.
bool rewrite_single_setitem(std::string& pkl) {
  size_t n = pkl.size();
  if (n < 6 || pkl.compare(0, 3, "\x80\x02}") != 0 || pkl.compare(n - 2, 2, "s.") != 0) return false;
  size_t after = 3;
  if (pkl[3] == 'q')
    after = 5;
  else if (pkl[3] == 'r')
    after = 8;
  if (after >= n - 2) return false;
  pkl[n - 2] = 'u';
  pkl.insert(after, 1, '(');
  return true;
}

// torch.save's zip format, read record by record so that the pickle can be
// rewritten before unpickling (see rewrite_single_setitem).
c10::IValue load_zip_pickle(const std::string& path) {
  caffe2::serialize::PyTorchStreamReader reader(path);
  at::DataPtr data;
  size_t size = 0;
  std::tie(data, size) = reader.getRecord("data.pkl");
  std::string pkl(static_cast<const char*>(data.get()), size);
  auto parse = [&](const std::string& bytes) {
    size_t pos = 0;
    auto read = [&](char* buf, size_t len) -> size_t {
      size_t k = std::min(len, bytes.size() - pos);
      std::memcpy(buf, bytes.data() + pos, k);
      pos += k;
      return k;
    };
    auto read_record = [&](const std::string& name) { return std::get<0>(reader.getRecord("data/" + name)); };
    torch::jit::Unpickler unpickler(read, nullptr, nullptr, read_record, c10::nullopt);
    unpickler.set_version(reader.version());
    return unpickler.parse_ivalue();
  };
  try {
    return parse(pkl);
  } catch (const std::exception&) {
    std::string fixed = pkl;
    if (!rewrite_single_setitem(fixed)) throw;
    return parse(fixed);
  }
}

}  // namespace

std::vector<NamedTensor> load_tensor_dict(const std::string& path) {
  // The zip format (torch.save's default) is read by record from the path:
  // only its first 4 bytes are read here. This runs every step (the batch).
  char magic[4] = {};
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open the file");
  in.read(magic, sizeof magic);
  const bool zip = in.gcount() == 4 && magic[0] == 'P' && magic[1] == 'K' && magic[2] == 3 && magic[3] == 4;
  // The legacy format whole, in one read (a folder is refused there: EISDIR).
  std::vector<char> bytes;
  if (!zip) {
    const std::string all = read_text_file(path, path, "the file");
    bytes.assign(all.begin(), all.end());
  }
  c10::IValue value;
  try {
    value = zip ? load_zip_pickle(path) : torch::jit::pickle_load(bytes);
  } catch (const std::exception& e) {
    std::string what = e.what();
    throw Error(path + ": not a file written by torch.save: " + what.substr(0, what.find('\n')));
  }
  if (!value.isGenericDict())
    throw Error(path + ": expected a dict of tensors (torch.save({...})), found " + value.tagKind());
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
  // clone(): each tensor owns its storage, which is what gets written.
  for (const auto& [name, t] : tensors) dict.insert(name, t.detach().to(at::kCPU).contiguous().clone());
  // torch.save's layout, pickled without the type tags torch::pickle_save
  // puts on a typed dict (torch.jit._pickle.restore_type_tag): PyTorch >= 2.6
  // loads with weights_only=True by default and refuses that global.
  std::vector<char> pkl;
  torch::jit::Pickler pickler([&pkl](const char* b, size_t n) { pkl.insert(pkl.end(), b, b + n); }, nullptr, nullptr,
                              nullptr, nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(c10::IValue(dict));
  pickler.stop();
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(path + ": cannot write the file");
    caffe2::serialize::PyTorchStreamWriter writer([&out](const void* data, size_t n) -> size_t {
      out.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
      return out ? n : 0;
    });
    writer.writeRecord("data.pkl", pkl.data(), pkl.size());
    const std::vector<at::Tensor>& stored = pickler.tensorData();
    for (size_t i = 0; i < stored.size(); ++i) {
      const c10::Storage& st = stored[i].storage();
      writer.writeRecord("data/" + std::to_string(i), st.data(), st.nbytes());
    }
    writer.writeEndOfFile();
    if (!out) throw Error(path + ": write failed");
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace ppc::runtime
