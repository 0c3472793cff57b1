#include "schemas/onnx_external_data.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "schemas/error.h"

namespace ppc::onnx_data {

namespace fs = std::filesystem;

bool internalize(onnx::ModelProto& model, const std::string& model_dir, const std::string& display) {
  bool any = false;
  std::map<std::string, std::string> files;  // location -> contents, each file read once
  for (auto& t : *model.mutable_graph()->mutable_initializer()) {
    if (t.data_location() != onnx::TensorProto::EXTERNAL) continue;
    any = true;
    const std::string where = display + ": initializer '" + t.name() + "'";
    std::string location;
    long long offset = 0, length = -1;
    for (const auto& kv : t.external_data()) {
      try {
        if (kv.key() == "location")
          location = kv.value();
        else if (kv.key() == "offset")
          offset = std::stoll(kv.value());
        else if (kv.key() == "length")
          length = std::stoll(kv.value());
      } catch (const std::exception&) {
        throw Error(where + ": external data " + kv.key() + " '" + kv.value() + "' is not a number");
      }
    }
    if (location.empty()) throw Error(where + ": external data without a location");
    const fs::path rel(location);
    bool escapes = rel.is_absolute();
    for (const auto& part : rel) escapes = escapes || part == "..";
    if (escapes) throw Error(where + ": external data location '" + location + "' leaves the model's folder");
    auto it = files.find(location);
    if (it == files.end()) {
      const fs::path file = fs::path(model_dir) / rel;
      std::error_code ec;
      if (fs::exists(file, ec) && !fs::is_regular_file(file, ec))
        throw Error(where + ": external data location '" + location + "' is not a regular file");
      std::ifstream in(file, std::ios::binary);
      if (!in) throw Error(where + ": cannot read external data file '" + file.string() + "': " + std::strerror(errno));
      std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (in.bad()) throw Error(where + ": cannot read external data file '" + file.string() + "'");
      it = files.emplace(location, std::move(bytes)).first;
    }
    const std::string& bytes = it->second;
    if (length < 0) length = static_cast<long long>(bytes.size()) - offset;
    if (offset < 0 || length < 0 ||
        static_cast<unsigned long long>(offset) + static_cast<unsigned long long>(length) > bytes.size())
      throw Error(where + ": external data range [" + std::to_string(offset) + ", +" + std::to_string(length) +
                  ") is past the end of '" + location + "' (" + std::to_string(bytes.size()) + " bytes)");
    t.set_raw_data(bytes.substr(static_cast<size_t>(offset), static_cast<size_t>(length)));
    t.clear_external_data();
    t.clear_data_location();
  }
  return any;
}

std::string externalize(onnx::ModelProto& model, const std::string& data_file, size_t threshold) {
  std::string out;
  for (auto& t : *model.mutable_graph()->mutable_initializer()) {
    if (!t.has_raw_data() || t.raw_data().size() < threshold) continue;
    auto add = [&t](const char* k, const std::string& v) {
      auto* e = t.add_external_data();
      e->set_key(k);
      e->set_value(v);
    };
    add("location", data_file);
    add("offset", std::to_string(out.size()));
    add("length", std::to_string(t.raw_data().size()));
    out += t.raw_data();
    t.clear_raw_data();
    t.set_data_location(onnx::TensorProto::EXTERNAL);
  }
  return out;
}

size_t max_proto_bytes() {
  constexpr size_t kDefault = (size_t{1} << 31) - 1 - (size_t{64} << 20);
  const char* env = std::getenv("PPC_ONNX_MAX_PROTO_BYTES");
  if (!env || !*env) return kDefault;
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(env, &end, 10);
  if (errno || *end || v == 0 || env[0] == '-')
    throw Error(std::string("PPC_ONNX_MAX_PROTO_BYTES='") + env + "': not a positive number of bytes");
  return static_cast<size_t>(std::min<unsigned long long>(v, kDefault));
}

bool too_large(const onnx::ModelProto& model) { return model.ByteSizeLong() >= max_proto_bytes(); }

}  // namespace ppc::onnx_data
