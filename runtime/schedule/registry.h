// Schedules by name, as `pprun --schedule NAME` selects them.
#pragma once

#include <string>
#include <vector>

#include "runtime/schedule/action.h"

namespace ppc::runtime::schedule {

/// The names make_compute_schedule() accepts, in the order --help lists them.
const std::vector<std::string>& schedule_names();

/// The compute-only schedule `name` for `num_ranks` ranks running
/// `stages_per_rank` stages each (stage s on rank s mod P) and M micro-batches.
/// With forward_only, every backward action is dropped (inference). Throws
/// ppc::Error for an unknown name (with did-you-mean) or a schedule that
/// cannot place that many stages per rank (naming the ones that can).
Schedule make_compute_schedule(const std::string& name, int num_ranks, int stages_per_rank, int num_microbatches,
                               bool forward_only);

}  // namespace ppc::runtime::schedule
