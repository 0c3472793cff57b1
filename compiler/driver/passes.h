// The passes of `ppc split`, in the order split() runs them:
//   read request -> load -> declare inputs -> split points -> partition + ties
//   -> manifest + costs -> emit + write atomically -> summary.
// Each takes what it needs and returns what the next one reads; driver.cpp
// holds the pipeline, these files hold the passes.
#pragma once

#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "compiler/analysis/balance.h"
#include "compiler/analysis/cost_model.h"
#include "compiler/analysis/partition.h"
#include "compiler/analysis/step_model.h"
#include "compiler/driver/driver.h"
#include "compiler/frontends/source_model.h"
#include "schemas/json_text.h"
#include "schemas/manifest.h"
#include "schemas/split_spec.h"

namespace ppc::driver {

/// What the user asked for: the spec with the command line's overrides, the
/// measured costs, and the cost model's options derived from both. Read
/// before the model, so that a typo does not wait for a large model to load.
struct SplitRequest {
  spec::SplitSpec spec;
  std::unique_ptr<JsonDocument> doc;  ///< the spec's text (located errors); null without a spec
  std::unique_ptr<analysis::MeasuredCosts>
      measured;  ///< --costs; null without (stable address: cost_opts points at it)
  analysis::CostModelOptions cost_opts;
  /// Measured costs predict the step (balance "time" with a profile).
  bool predict = false;
  analysis::StepOptions step;  ///< meaningful when `predict`
};

// request.cpp
SplitRequest read_request(const SplitOptions& opts);

// costs.cpp: the manifest's cost_model section and per-stage costs.
void record_costs(manifest::Manifest& m, const analysis::AutoPartition& ap, bool is_auto,
                  const analysis::MeasuredCosts* measured);

// Where the cuts go: the automatic split, or the spec's split points priced
// by the same cost model (`ap` then holds their evaluation).
struct Cuts {
  std::vector<analysis::Cut> cuts;
  analysis::AutoPartition ap;
};

// summary.cpp: what `ppc split` prints.
void print_summary(const manifest::Manifest& m, const std::string& out_dir, std::ostream& out);
std::string balance_report(const ir::Graph& g, const analysis::AutoPartition& ap, int stages);
/// One note per tie group: members, relation, holding stages.
std::vector<std::string> tie_notes(const manifest::Manifest& m);

// output_dir.cpp: `write(tmp)` fills a temporary sibling of `out_dir`, which
// then replaces `out_dir` (only one that holds nothing but a previous ppc
// output). Any failure leaves `out_dir` as it was and nothing behind.
void write_atomically(const std::string& out_dir, const std::function<void(const std::string& tmp)>& write);

}  // namespace ppc::driver
