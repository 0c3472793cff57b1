// A deterministic fuzz smoke test that runs in every CI build without
// libFuzzer: each seed file, then thousands of seeded mutations of it
// (truncations, byte flips, splices, inserted JSON tokens), through a target.
//   fuzz_smoke TARGET ITERATIONS SEED_FILE...
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_targets.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: fuzz_smoke TARGET ITERATIONS SEED...\n";
    return 2;
  }
  std::string target = argv[1];
  void (*fn)(const uint8_t*, size_t) = nullptr;
  if (target == "split_spec") fn = ppc::fuzz::split_spec;
  if (target == "manifest") fn = ppc::fuzz::manifest;
  if (target == "onnx_model") fn = ppc::fuzz::onnx_model;
  if (target == "ir_text") fn = ppc::fuzz::ir_text;
  if (target == "profile") fn = ppc::fuzz::profile;
  if (target == "schedule_csv") fn = ppc::fuzz::schedule_csv;
  if (target == "onnx_external") fn = ppc::fuzz::onnx_external;
  if (target == "torchscript") fn = ppc::fuzz::torchscript;
  if (target == "pt_inputs") fn = ppc::fuzz::pt_inputs;
  if (target == "pt2_archive") fn = ppc::fuzz::pt2_archive;
  if (!fn) {
    std::cerr << "unknown target " << target
              << " (split_spec manifest onnx_model onnx_external ir_text profile schedule_csv torchscript "
                 "pt_inputs pt2_archive)\n";
    return 2;
  }
  const long iterations = std::stol(argv[2]);
  std::vector<std::string> seeds;
  for (int i = 3; i < argc; ++i) {
    std::ifstream f(argv[i], std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    seeds.push_back(ss.str());
  }
  static const char* kTokens[] = {"{",    "}",  "[",     "]",           ",",    ":", "\"",
                                  "null", "-1", "1e999", "\"\\u0000\"", "true", "/"};
  std::mt19937_64 rng(12345);
  long runs = 0;
  for (const auto& s : seeds) {
    fn(reinterpret_cast<const uint8_t*>(s.data()), s.size());
    ++runs;
  }
  for (long it = 0; it < iterations; ++it) {
    std::string s = seeds[rng() % seeds.size()];
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      size_t pos = s.empty() ? 0 : rng() % s.size();
      switch (rng() % 5) {
        case 0: s.resize(pos); break;
        case 1:
          if (!s.empty()) s[pos] = static_cast<char>(rng());
          break;
        case 2: s.insert(pos, kTokens[rng() % (sizeof(kTokens) / sizeof(*kTokens))]); break;
        case 3:
          if (!s.empty()) s.erase(pos, 1 + rng() % 8);
          break;
        case 4: {
          const std::string& o = seeds[rng() % seeds.size()];
          if (!o.empty()) s.insert(pos, o.substr(rng() % o.size(), 1 + rng() % 32));
        } break;
      }
    }
    fn(reinterpret_cast<const uint8_t*>(s.data()), s.size());
    ++runs;
  }
  std::cout << target << ": " << runs << " inputs, no crash\n";
  return 0;
}
