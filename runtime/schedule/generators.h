// Compute-only schedules (F, B, I, W; no SEND/RECV: see lowering.h) for P
// ranks and M micro-batches. Placement is always stage s on rank s mod P, so
// with V stages per rank, rank r runs stages r, r+P, ..., r+(V-1)P.
// Every generator is deterministic: the same arguments give the same lists.
// Arguments out of range throw ppc::Error.
#pragma once

#include "runtime/schedule/action.h"

namespace ppc::runtime::schedule {

/// GPipe (Huang et al. 2019), one stage per rank: rank r runs r F0..r F(M-1),
/// then r B0..r B(M-1). Holds M micro-batches of activations.
Schedule gpipe(int num_ranks, int num_microbatches);

/// Looped BFS, V stages per rank (stage s on rank s mod P): all forwards of
/// the rank's stages in ascending stage order (each for micro-batches
/// 0..M-1), then all backwards in descending stage order (each for
/// micro-batches 0..M-1). V = 1 is gpipe().
Schedule looped_bfs(int num_ranks, int stages_per_rank, int num_microbatches);

/// 1F1B with flush (PipeDream-flush / Megatron-LM non-interleaved), one stage
/// per rank: rank r runs w = min(P-1-r, M) warm-up forwards, then M-w pairs
/// (F(w+j), B(j)), then the remaining w backwards. Rank r holds at most
/// min(P-r, M) micro-batches of activations.
Schedule one_f_one_b(int num_ranks, int num_microbatches);

/// Interleaved 1F1B (Narayanan et al. 2021, Megatron-LM), V stages per rank.
/// Requires M % P == 0. Rank r's k-th forward (k = 0..VM-1) is local chunk
/// c = (k / P) mod V, i.e. stage c*P + r, micro-batch (k / (P*V))*P + k mod P;
/// its k-th backward is chunk V-1-((k / P) mod V) with the same micro-batch
/// formula. Warm-up: min(2(P-1-r) + (V-1)P, VM) forwards, then (F, B) pairs,
/// then the remaining backwards. V = 1 is one_f_one_b().
Schedule interleaved_1f1b(int num_ranks, int stages_per_rank, int num_microbatches);

/// ZB-H1 (Qi et al. 2023, "Zero Bubble Pipeline Parallelism"), one stage per
/// rank, backward split into I (input gradient) and W (weight gradient).
/// Rank r: w = min(P-1-r, M) warm-up forwards; then for j = 0..M-1: F(w+j)
/// (while w+j < M), I(j), and from j >= r on, the oldest W not yet run; then
/// the remaining W in order. Rank r thus defers r weight-gradient passes into
/// the cool-down bubble. With F = I = W each rank idles (P-1)*F instead of
/// 1F1B's (P-1)*(F+B), and at most P micro-batches are in flight (F done, W
/// not yet) on any rank, as in 1F1B.
Schedule zb_h1(int num_ranks, int num_microbatches);

}  // namespace ppc::runtime::schedule
