#include "runtime/schedule/registry.h"

#include <algorithm>

#include "runtime/schedule/generators.h"
#include "schemas/error.h"
#include "schemas/schedule_names.h"

namespace ppc::runtime::schedule {

const std::vector<std::string>& schedule_names() { return ppc::schedule_names(); }

Schedule make_compute_schedule(const std::string& name, int num_ranks, int stages_per_rank, int num_microbatches,
                               bool forward_only) {
  auto one_stage_per_rank = [&]() {
    if (stages_per_rank != 1)
      throw Error("schedule '" + name + "' runs one stage per rank, but each rank holds " +
                  std::to_string(stages_per_rank) +
                  " stages (use as many ranks as stages, or --schedule interleaved-1f1b or looped-bfs)");
  };
  Schedule s;
  if (name == "gpipe") {
    one_stage_per_rank();
    s = gpipe(num_ranks, num_microbatches);
  } else if (name == "1f1b") {
    one_stage_per_rank();
    s = one_f_one_b(num_ranks, num_microbatches);
  } else if (name == "interleaved-1f1b") {
    if (num_microbatches % num_ranks != 0)
      throw Error("schedule 'interleaved-1f1b' needs the micro-batch count (" + std::to_string(num_microbatches) +
                  ") to be a multiple of the number of ranks (" + std::to_string(num_ranks) + ")");
    s = interleaved_1f1b(num_ranks, stages_per_rank, num_microbatches);
  } else if (name == "zb-h1") {
    one_stage_per_rank();
    s = zb_h1(num_ranks, num_microbatches);
  } else if (name == "zb-v") {
    if (stages_per_rank != 2)
      throw Error("schedule 'zb-v' runs two stages per rank (a V: stage s and 2P-1-s on rank s), but each rank holds " +
                  std::to_string(stages_per_rank) + " (use half as many ranks as stages)");
    s = zb_v(num_ranks, num_microbatches);
  } else if (name == "interleaved-zb") {
    const int rounds = std::max(1, num_microbatches / num_ranks);
    if (num_microbatches % rounds != 0)
      throw Error("schedule 'interleaved-zb' needs the micro-batch count (" + std::to_string(num_microbatches) +
                  ") to be a multiple of its rounds, max(1, micro-batches / ranks) = " + std::to_string(rounds) +
                  " (use a multiple of the number of ranks (" + std::to_string(num_ranks) +
                  "), or fewer micro-batches than ranks)");
    s = interleaved_zb(num_ranks, stages_per_rank, num_microbatches);
  } else if (name == "dualpipev") {
    if (stages_per_rank != 2)
      throw Error(
          "schedule 'dualpipev' runs two stages per rank (a V: stage s and 2P-1-s on rank s), but each rank holds " +
          std::to_string(stages_per_rank) + " (use half as many ranks as stages)");
    if (num_microbatches < 2 * num_ranks)
      throw Error("schedule 'dualpipev' needs at least as many micro-batches as stages (" +
                  std::to_string(2 * num_ranks) + "), got " + std::to_string(num_microbatches) + " (raise --chunks)");
    s = dualpipev(num_ranks, num_microbatches);
  } else if (name == "looped-bfs") {
    s = looped_bfs(num_ranks, stages_per_rank, num_microbatches);
  } else {
    std::string known;
    for (const auto& n : schedule_names()) known += (known.empty() ? "" : ", ") + n;
    throw Error("unknown schedule '" + name + "' (known: " + known + ")");
  }
  if (forward_only) {
    for (auto& rank : s) {
      RankSchedule kept;
      for (const auto& a : rank)
        if (a.kind == Action::F) kept.push_back(a);
      rank = std::move(kept);
    }
  }
  return s;
}

}  // namespace ppc::runtime::schedule
