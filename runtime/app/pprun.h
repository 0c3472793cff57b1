// pprun's program logic, for the thin main in tools/pprun/main.cpp: what the
// command line asked for (PprunOptions) and what to do with it: print or
// simulate the schedule, launch local ranks, or run this rank.
#pragma once

#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "runtime/engine/engine.h"

namespace ppc::runtime {

struct PprunOptions {
  std::string manifest_dir;
  // Rendezvous: unset ones come from the torchrun environment.
  std::optional<int> rank, world_size, master_port;
  std::optional<std::string> master_addr;
  /// --nproc across hosts: this host is node node_rank of nnodes (unset: 1 host).
  std::optional<int> nnodes, node_rank;
  int nproc = 0;              ///< > 0: spawn this many local ranks
  int threads = 0;            ///< intra-op threads per rank (0: cores / local ranks)
  std::string blas = "auto";  ///< --blas: auto | torch | openblas (runtime/stages/blas.h)
  double timeout_s = 300;
  std::string backend = "gloo";
  // Look, don't run.
  bool print_schedule = false;
  std::string format = "text";  ///< --print-schedule: text | csv
  bool simulate = false;
  std::string costs_file;         ///< --simulate: measured costs
  double comm_ms = 0;             ///< --simulate: a message's time in flight
  std::string inputs;             ///< a .pt file or a folder of them
  std::vector<std::string> dims;  ///< NAME=N, as given
  EngineOptions engine;
  /// Which of the options with defaults from elsewhere the user gave.
  bool schedule_given = false, chunks_given = false, comm_given = false, dp_given = false;
  bool save_every_given = false, keep_given = false;
  /// What each rank spawned by --nproc runs (the command line without --nproc,
  /// --nnodes and --node-rank).
  std::vector<std::string> child_args;
};

/// Runs pprun as `o` says and returns its exit code. Bad input throws
/// ppc::Error (checked before any rank starts, where it can be); a peer that
/// fails ends this process with exit code 1 after naming it.
int run_pprun(PprunOptions& o, std::ostream& out);

/// Keeps freed memory in the process (glibc's mmap and trim thresholds): the
/// same tensor sizes are freed and allocated every micro-batch.
void keep_freed_memory();

}  // namespace ppc::runtime
