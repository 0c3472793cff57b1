// ppc's two commands. split() is a pipeline of passes (passes.h): read request
// -> load -> declare inputs -> split points -> partition + ties -> manifest +
// costs -> emit + write atomically -> summary.
// tools/ppc/main.cpp only parses the command line and calls into here.
#pragma once

#include <cstdint>
#include <map>
#include <ostream>
#include <string>

namespace ppc::driver {

struct SplitOptions {
  std::string model_path;
  std::string spec_path;  ///< empty when `stages` > 0 is given instead
  int stages = 0;         ///< `--stages N`: automatic split without a spec file
  std::string out_dir;
  /// `--costs FILE`: measured stage times (pprun --profile) for balance "time".
  std::string costs_path;
  /// `--dim NAME=N`: symbolic input dims at which the cost model counts
  /// (ONNX; other symbolic dims such as the batch count 1).
  std::map<std::string, int64_t> dims;
  /// `--balance B`: overrides the spec's auto.balance (with --stages or an auto spec).
  std::string balance;
  /// Stop after a phase and print it instead of writing out/:
  /// "ir" (the lowered graph), "partition" (stage of every node), "manifest"
  /// (the manifest JSON, nothing written), "balance" (JSON: the auto split
  /// and PiPPy-style equal-parameter and uniform-layer splits under the same
  /// cost model, nothing written), or "" to write out/.
  std::string emit;
  /// The process exits right after split() (the ppc command): the model
  /// and its IR are left to the exit instead of freed one object at a time
  /// (a large model's hundreds of thousands of them). Library callers keep
  /// the default.
  bool exit_after = false;
};

/// Runs `ppc split`. Progress and the per-stage summary go to `out`, notes
/// (ties found, candidates, shape gaps) to `err` as "note: ..." lines.
/// Throws ppc::Error for bad input; out_dir is then left untouched.
void split(const SplitOptions& opts, std::ostream& out, std::ostream& err);

struct InspectOptions {
  std::string dir;
  bool dot = false;
};

/// `ppc inspect DIR`: the canonical text (or Graphviz) of a manifest. Also
/// checks each artifact exists and matches its sha256.
void inspect(const InspectOptions& opts, std::ostream& out);

}  // namespace ppc::driver
