#include "tests/fuzz/fuzz_targets.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "compiler/frontends/onnx/onnx_frontend.h"
#include "compiler/frontends/pt2/pt2_frontend.h"
#include "compiler/ir/text.h"
#include "runtime/schedule/csv.h"
#include "schemas/error.h"
#include "schemas/manifest.h"
#include "schemas/profile.h"
#include "schemas/split_spec.h"
#include "schemas/zip_archive.h"

namespace ppc::fuzz {

namespace {

// The scratch files and folders of this process, removed at exit.
struct Scratch {
  std::set<std::string> paths;
  ~Scratch() {
    std::error_code ec;
    for (const auto& p : paths) std::filesystem::remove_all(p, ec);
  }
};

Scratch& scratch() {
  static Scratch s;
  return s;
}

}  // namespace

std::string scratch_file(const uint8_t* data, size_t size, const std::string& suffix) {
  const std::string path = "/tmp/ppc_fuzz_" + std::to_string(::getpid()) + suffix;
  scratch().paths.insert(path);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path;
}

void split_spec(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    spec::parse_split_spec(JsonDocument::parse(text, "spec.json"));
  } catch (const JsonSyntaxError&) {
  } catch (const Error&) {}
}

void manifest(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    auto m = manifest::parse_manifest(text, "manifest.json");
    // What parses must serialize and parse back to the same thing.
    std::string once = manifest::to_json_text(m);
    std::string twice = manifest::to_json_text(manifest::parse_manifest(once, "roundtrip.json"));
    if (once != twice) __builtin_trap();
  } catch (const Error&) {}
}

void onnx_model(const uint8_t* data, size_t size) {
  const std::string path = scratch_file(data, size, ".onnx");
  try {
    onnx_frontend::load_onnx(path, "model.onnx", nullptr);
  } catch (const Error&) {}
}

void onnx_external(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  const size_t sep = bytes.find(kExternalDataSeparator);
  // A folder of this process: the model and its data file side by side.
  const std::string dir = "/tmp/ppc_fuzz_ext_" + std::to_string(::getpid());
  scratch().paths.insert(dir);
  std::filesystem::create_directories(dir);
  std::filesystem::remove(dir + "/weights.bin");
  std::ofstream(dir + "/model.onnx", std::ios::binary | std::ios::trunc) << bytes.substr(0, sep);
  if (sep != std::string::npos)
    std::ofstream(dir + "/weights.bin", std::ios::binary | std::ios::trunc)
        << bytes.substr(sep + std::strlen(kExternalDataSeparator));
  try {
    onnx_frontend::load_onnx(dir + "/model.onnx", "model.onnx", nullptr);
  } catch (const Error&) {}
}

void pt2_archive(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  // Records (kPt2RecordsMagic): written as a zip with correct CRCs, so that
  // mutations of the JSON inside reach the reader instead of its CRC check.
  if (bytes.rfind(kPt2RecordsMagic, 0) == 0) {
    zip::Writer w;
    const std::string sep = kPt2RecordSeparator;
    size_t at = std::strlen(kPt2RecordsMagic);
    while (at <= bytes.size()) {
      size_t end = bytes.find(sep, at);
      if (end == std::string::npos) end = bytes.size();
      const std::string record = bytes.substr(at, end - at);
      const size_t nl = record.find('\n');
      if (nl != std::string::npos && nl > 0) w.add(record.substr(0, nl), record.substr(nl + 1));
      at = end + sep.size();
    }
    bytes = w.finish();
  }
  const std::string path = scratch_file(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), ".pt2");
  try {
    pt2_frontend::load_pt2(path, "model.pt2", nullptr);
  } catch (const Error&) {}
}

void ir_text(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    ir::Graph g = ir::parse_graph(text);
    if (!g.verify().empty()) return;
    if (ir::print_graph(ir::parse_graph(ir::print_graph(g))) != ir::print_graph(g)) __builtin_trap();
  } catch (const std::runtime_error&) {}
}

void profile(const uint8_t* data, size_t size) {
  const std::string path = scratch_file(data, size, ".json");
  try {
    // What reads must write and read back to the same text.
    std::string once = profile::profile_json(profile::read_profile(path));
    std::ofstream(path, std::ios::trunc) << once;
    if (profile::profile_json(profile::read_profile(path)) != once) __builtin_trap();
  } catch (const Error&) {}
}

void schedule_csv(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    std::string once = runtime::schedule::write_csv(runtime::schedule::read_csv(text, "schedule.csv"));
    if (runtime::schedule::write_csv(runtime::schedule::read_csv(once, "roundtrip.csv")) != once) __builtin_trap();
  } catch (const Error&) {}
}

}  // namespace ppc::fuzz
