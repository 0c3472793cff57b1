#include "runtime/schedule/generators.h"

#include <algorithm>
#include <string>

#include "schemas/error.h"

namespace ppc::runtime::schedule {

namespace {

void check_args(const char* name, int num_ranks, int stages_per_rank, int num_microbatches) {
  std::string n = name;
  if (num_ranks < 1) throw Error(n + ": the number of ranks must be at least 1, got " + std::to_string(num_ranks));
  if (stages_per_rank < 1)
    throw Error(n + ": the number of stages per rank must be at least 1, got " + std::to_string(stages_per_rank));
  if (num_microbatches < 1)
    throw Error(n + ": the number of micro-batches must be at least 1, got " + std::to_string(num_microbatches));
}

Action act(Action::Kind kind, int stage, int microbatch) {
  Action a;
  a.kind = kind;
  a.stage = stage;
  a.microbatch = microbatch;
  return a;
}

}  // namespace

Schedule gpipe(int num_ranks, int num_microbatches) {
  check_args("gpipe", num_ranks, 1, num_microbatches);
  return looped_bfs(num_ranks, 1, num_microbatches);
}

Schedule looped_bfs(int num_ranks, int stages_per_rank, int num_microbatches) {
  check_args("looped BFS", num_ranks, stages_per_rank, num_microbatches);
  Schedule out(num_ranks);
  for (int r = 0; r < num_ranks; ++r) {
    for (int c = 0; c < stages_per_rank; ++c)
      for (int m = 0; m < num_microbatches; ++m) out[r].push_back(act(Action::F, c * num_ranks + r, m));
    for (int c = stages_per_rank - 1; c >= 0; --c)
      for (int m = 0; m < num_microbatches; ++m) out[r].push_back(act(Action::B, c * num_ranks + r, m));
  }
  return out;
}

Schedule one_f_one_b(int num_ranks, int num_microbatches) {
  check_args("1F1B", num_ranks, 1, num_microbatches);
  Schedule out(num_ranks);
  for (int r = 0; r < num_ranks; ++r) {
    const int warmup = std::min(num_ranks - 1 - r, num_microbatches);
    for (int m = 0; m < warmup; ++m) out[r].push_back(act(Action::F, r, m));
    for (int j = 0; warmup + j < num_microbatches; ++j) {
      out[r].push_back(act(Action::F, r, warmup + j));
      out[r].push_back(act(Action::B, r, j));
    }
    for (int m = num_microbatches - warmup; m < num_microbatches; ++m) out[r].push_back(act(Action::B, r, m));
  }
  return out;
}

Schedule interleaved_1f1b(int num_ranks, int stages_per_rank, int num_microbatches) {
  check_args("interleaved 1F1B", num_ranks, stages_per_rank, num_microbatches);
  if (num_microbatches % num_ranks != 0)
    throw Error("interleaved 1F1B: the number of micro-batches (" + std::to_string(num_microbatches) +
                ") must be a multiple of the number of ranks (" + std::to_string(num_ranks) + ")");
  if (stages_per_rank == 1) return one_f_one_b(num_ranks, num_microbatches);
  const int P = num_ranks, V = stages_per_rank, total = V * num_microbatches;
  auto microbatch = [&](int k) { return (k / (P * V)) * P + k % P; };
  Schedule out(P);
  for (int r = 0; r < P; ++r) {
    auto fwd = [&](int k) { return act(Action::F, ((k / P) % V) * P + r, microbatch(k)); };
    auto bwd = [&](int k) { return act(Action::B, (V - 1 - (k / P) % V) * P + r, microbatch(k)); };
    const int warmup = std::min(2 * (P - 1 - r) + (V - 1) * P, total);
    for (int k = 0; k < warmup; ++k) out[r].push_back(fwd(k));
    for (int j = 0; warmup + j < total; ++j) {
      out[r].push_back(fwd(warmup + j));
      out[r].push_back(bwd(j));
    }
    for (int k = total - warmup; k < total; ++k) out[r].push_back(bwd(k));
  }
  return out;
}

Schedule zb_h1(int num_ranks, int num_microbatches) {
  check_args("ZB-H1", num_ranks, 1, num_microbatches);
  Schedule out(num_ranks);
  for (int r = 0; r < num_ranks; ++r) {
    const int warmup = std::min(num_ranks - 1 - r, num_microbatches);
    int next_w = 0;
    for (int m = 0; m < warmup; ++m) out[r].push_back(act(Action::F, r, m));
    for (int j = 0; j < num_microbatches; ++j) {
      if (warmup + j < num_microbatches) out[r].push_back(act(Action::F, r, warmup + j));
      out[r].push_back(act(Action::I, r, j));
      if (j >= r) out[r].push_back(act(Action::W, r, next_w++));
    }
    while (next_w < num_microbatches) out[r].push_back(act(Action::W, r, next_w++));
  }
  return out;
}

}  // namespace ppc::runtime::schedule
