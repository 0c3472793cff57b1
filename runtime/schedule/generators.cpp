#include "runtime/schedule/generators.h"

#include <algorithm>
#include <deque>
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

Schedule interleaved_zb(int num_ranks, int stages_per_rank, int num_microbatches) {
  check_args("interleaved ZB", num_ranks, stages_per_rank, num_microbatches);
  const int P = num_ranks, V = stages_per_rank, M = num_microbatches;
  const int rounds = std::max(1, M / P);
  if (M % rounds != 0)
    throw Error("interleaved ZB: the number of micro-batches (" + std::to_string(M) +
                ") must be a multiple of the number of rounds max(1, M / P) = " + std::to_string(rounds));
  const int g = M / rounds, total = V * M;
  auto microbatch = [&](int k) { return (k / (g * V)) * g + k % g; };
  Schedule out(P);
  for (int r = 0; r < P; ++r) {
    auto fwd = [&](int k) { return act(Action::F, ((k / g) % V) * P + r, microbatch(k)); };
    auto input_grad = [&](int j) { return act(Action::I, (V - 1 - (j / g) % V) * P + r, microbatch(j)); };
    auto weight_grad = [&](int j) { return act(Action::W, input_grad(j).stage, input_grad(j).microbatch); };
    const int warmup = std::min((V - 1) * g + P - 1 - r, total);
    int next_w = 0;
    for (int k = 0; k < warmup; ++k) out[r].push_back(fwd(k));
    for (int j = 0; j < total; ++j) {
      if (warmup + j < total) out[r].push_back(fwd(warmup + j));
      out[r].push_back(input_grad(j));
      if (j >= r) out[r].push_back(weight_grad(next_w++));
    }
    while (next_w < total) out[r].push_back(weight_grad(next_w++));
  }
  return out;
}

Schedule dualpipev(int num_ranks, int num_microbatches) {
  check_args("DualPipeV", num_ranks, 2, num_microbatches);
  const int P = num_ranks, M = num_microbatches;
  if (M < 2 * P)
    throw Error("DualPipeV: the number of micro-batches (" + std::to_string(M) +
                ") must be at least the number of stages (" + std::to_string(2 * P) + ")");
  Schedule out(P);
  for (int r = 0; r < P; ++r) {
    RankSchedule& rs = out[r];
    const int stage[2] = {r, 2 * P - 1 - r};  // a, b
    int next_f[2] = {0, 0}, next_b[2] = {0, 0};
    std::deque<Action> pending_w;  // W of each I, oldest first
    auto forward = [&](int c) { rs.push_back(act(Action::F, stage[c], next_f[c]++)); };
    auto backward = [&](int c, bool split) {
      const int m = next_b[c]++;
      rs.push_back(act(split ? Action::I : Action::B, stage[c], m));
      if (split) pending_w.push_back(act(Action::W, stage[c], m));
    };
    auto oldest_w = [&]() {
      if (pending_w.empty()) return;
      rs.push_back(pending_w.front());
      pending_w.pop_front();
    };
    for (int i = 0; i < 2 * (P - 1 - r); ++i) forward(0);  // 1
    for (int i = 0; i < r + 1; ++i) {                      // 2
      forward(0);
      forward(1);
    }
    for (int i = 0; i < P - 1 - r; ++i) {  // 3
      backward(1, true);
      oldest_w();
      forward(1);
    }
    for (int i = 0; i < M - 2 * P + r + 1; ++i) {  // 4: two overlapped pairs, each as F then B
      forward(0);
      backward(1, false);
      forward(1);
      backward(0, false);
    }
    for (int i = 0; i < P - 1 - r; ++i) {  // 5
      backward(1, false);
      forward(1);
      backward(0, false);
    }
    for (int i = 0; i < 2 * (r + 1); ++i) backward(i % 2 == 0 ? 1 : 0, i >= r + 1);  // 6
    for (int i = 0; i < P - 1 - r; ++i) {                                            // 7
      oldest_w();
      backward(0, true);
    }
    while (!pending_w.empty()) oldest_w();  // 8
  }
  return out;
}

}  // namespace ppc::runtime::schedule
