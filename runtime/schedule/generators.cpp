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

namespace ppc::runtime::schedule {

int zb_v_rank(int num_ranks, int stage) { return stage < num_ranks ? stage : 2 * num_ranks - 1 - stage; }

Schedule zb_v(int num_ranks, int num_microbatches) {
  check_args("ZB-V", num_ranks, 2, num_microbatches);
  const int P = num_ranks, S = 2 * P, M = num_microbatches;
  const int limit = 2 * P;  // activations held per rank, in stage-sized (half of 1F1B's) units
  constexpr int kNever = -1;
  // Finish time of each action (kNever: not run yet).
  std::vector<std::vector<int>> f_end(S, std::vector<int>(M, kNever)), i_end = f_end, w_end = f_end;
  std::vector<int> next_f(S, 0), held(P, 0);
  Schedule out(P);
  auto done_by = [](int end, int t) { return end != kNever && end <= t; };
  int remaining = 3 * S * M;
  for (int t = 0; remaining > 0; ++t) {
    bool progressed = false;
    for (int r = 0; r < P; ++r) {
      const int stages[2] = {S - 1 - r, r};  // the later stage first: depth first
      // 1. I: the critical path back to the first stage.
      int best_s = -1, best_m = M;
      for (int s : stages)
        for (int m = 0; m < M; ++m)
          if (i_end[s][m] == kNever && done_by(f_end[s][m], t) && (s == S - 1 || done_by(i_end[s + 1][m], t)) &&
              m < best_m) {
            best_s = s;
            best_m = m;
          }
      Action::Kind kind = Action::I;
      // 2. F, within the memory limit.
      if (best_s < 0 && held[r] < limit) {
        kind = Action::F;
        for (int s : stages) {
          int m = next_f[s];
          if (m < M && (s == 0 || done_by(f_end[s - 1][m], t))) {
            best_s = s;
            best_m = m;
            break;
          }
        }
      }
      // 3. W fills whatever is left.
      if (best_s < 0) {
        kind = Action::W;
        for (int s : stages)
          for (int m = 0; m < M && best_s < 0; ++m)
            if (w_end[s][m] == kNever && done_by(i_end[s][m], t)) {
              best_s = s;
              best_m = m;
            }
      }
      if (best_s < 0) continue;
      progressed = true;
      --remaining;
      out[r].push_back(act(kind, best_s, best_m));
      if (kind == Action::F) {
        f_end[best_s][best_m] = t + 1;
        ++next_f[best_s];
        ++held[r];
      } else if (kind == Action::I) {
        i_end[best_s][best_m] = t + 1;
      } else {
        w_end[best_s][best_m] = t + 1;
        --held[r];
      }
    }
    // Something is always in flight or ready: an idle step only waits for a
    // finish time, so a long run of idle steps means a bug.
    if (!progressed && t > 3 * S * M + 4 * S) throw std::logic_error("ZB-V generator made no progress");
  }
  return out;
}

}  // namespace ppc::runtime::schedule
