// A test process's scratch folder under the system's temporary folder,
// removed when the process's tests end (ctest runs each test in a process of
// its own: hundreds of them a run). Include in one translation unit per test
// executable; SCRATCH_PREFIX names the folder ("ppc_engine_test_<pid>").
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <system_error>

namespace ppc::test {

inline std::filesystem::path scratch_root(const std::string& prefix) {
  return std::filesystem::temp_directory_path() / (prefix + std::to_string(::getpid()));
}

/// Registers the removal of scratch_root(prefix) at the end of the process's tests.
inline bool remove_scratch_at_exit(const std::string& prefix) {
  struct Remove : ::testing::Environment {
    explicit Remove(std::string p) : prefix(std::move(p)) {}
    void TearDown() override {
      std::error_code ec;
      std::filesystem::remove_all(scratch_root(prefix), ec);
    }
    std::string prefix;
  };
  ::testing::AddGlobalTestEnvironment(new Remove(prefix));
  return true;
}

}  // namespace ppc::test
