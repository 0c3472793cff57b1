#include "tests/fuzz/fuzz_targets.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "compiler/frontends/onnx/onnx_frontend.h"
#include "compiler/ir/text.h"
#include "schemas/error.h"
#include "schemas/manifest.h"
#include "schemas/split_spec.h"

namespace ppc::fuzz {

void split_spec(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    spec::parse_split_spec(JsonDocument::parse(text, "spec.json"));
  } catch (const JsonSyntaxError&) {
  } catch (const Error&) {
  }
}

void manifest(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    auto m = manifest::parse_manifest(text, "manifest.json");
    // What parses must serialize and parse back to the same thing.
    std::string once = manifest::to_json_text(m);
    std::string twice = manifest::to_json_text(manifest::parse_manifest(once, "roundtrip.json"));
    if (once != twice) __builtin_trap();
  } catch (const Error&) {
  }
}

void onnx_model(const uint8_t* data, size_t size) {
  // The frontend reads files; give it one.
  static const std::string path = "/tmp/ppc_fuzz_model_" + std::to_string(::getpid()) + ".onnx";
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    onnx_frontend::load_onnx(path, "model.onnx", nullptr);
  } catch (const Error&) {
  }
}

void ir_text(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    ir::Graph g = ir::parse_graph(text);
    if (!g.verify().empty()) return;
    if (ir::print_graph(ir::parse_graph(ir::print_graph(g))) != ir::print_graph(g)) __builtin_trap();
  } catch (const std::runtime_error&) {
  }
}

}  // namespace ppc::fuzz
