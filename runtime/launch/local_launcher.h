// `pprun --nproc N`: starts the N ranks of a job on this machine, as torchrun
// does, forwards their output line by line with a `[rank N] ` prefix, and
// turns the first failure into the job's exit status. Standard library and
// POSIX only (Linux: prctl), so it links into pprun without torch.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace ppc::runtime {

struct LaunchOptions {
  /// Program every rank executes (pprun passes its own /proc/self/exe, resolved).
  std::string executable;
  /// argv[1..] of every child (the same for all ranks; argv[0] is `executable`).
  std::vector<std::string> args;
  /// Number of ranks to start on this host; must be >= 1.
  int nproc = 1;
  /// Hosts of the job (each runs one launcher with the same nproc) and this
  /// host's index among them: the children are the global ranks
  /// node_rank * nproc .. node_rank * nproc + nproc - 1 of nnodes * nproc.
  int nnodes = 1;
  int node_rank = 0;
  /// MASTER_ADDR of every child (where rank 0's TCPStore listens).
  std::string master_addr = "127.0.0.1";
  /// MASTER_PORT of every child; 0: pick_free_port(master_addr) (only with
  /// nnodes == 1: the hosts of a job must agree on the port).
  int master_port = 0;
  /// OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and PPRUN_THREADS of every child;
  /// 0: max(1, hardware_concurrency / nproc).
  int threads_per_rank = 0;
  /// After the first child fails, how long the others get to exit by
  /// themselves before they get SIGTERM, and SIGKILL 2 s after that.
  std::chrono::milliseconds grace{10000};
  /// true: children write into pipes and every line of theirs is forwarded as
  /// "[rank N] line" (stdout to stdout_fd, stderr to stderr_fd), whole lines
  /// only; a last line without '\n' is completed at EOF. false: children
  /// write to stdout_fd / stderr_fd directly.
  /// (With pipes, a child's stdio is block-buffered unless it flushes per line.)
  bool prefix_output = true;
  /// Where the children's output and pprun's own messages go (tests redirect them).
  int stdout_fd = 1;
  int stderr_fd = 2;
};

/// Runs `nproc` children and waits for all of them. Child i gets the parent's
/// environment plus, as torchrun sets them, RANK=node_rank*nproc+i,
/// LOCAL_RANK=i, WORLD_SIZE=nnodes*nproc, LOCAL_WORLD_SIZE=nproc,
/// GROUP_RANK=node_rank, GROUP_WORLD_SIZE=nnodes, MASTER_ADDR, MASTER_PORT,
/// and OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and PPRUN_THREADS; stdin is
/// /dev/null. Children are named by their global rank (RANK) in the output
/// prefix and in the launcher's own messages.
///
/// Returns 0 if all children exit 0; otherwise the exit status of the FIRST
/// child that failed (128+signal for a death by signal), after printing one
/// line to stderr_fd: "pprun: rank 2 exited with status 1" or
/// "pprun: rank 2 killed by signal 9". The other children then get `grace`
/// to finish, then SIGTERM, then SIGKILL 2 s later (each escalation is
/// announced by one more line on stderr_fd).
///
/// Each child leads its own process group; signals (forwarded SIGINT/SIGTERM,
/// the grace escalation) go to the whole group, and when a child exits,
/// whatever it left running in its group is SIGKILLed. Children get SIGKILL
/// when the thread that called this function dies (PR_SET_PDEATHSIG).
///
/// While it runs, SIGINT and SIGTERM sent to this process are forwarded to the
/// children instead of acting on the process, and SIGCHLD is caught; the
/// previous handlers are restored on return. Hence at most one call at a time
/// per process. Only the children it started are waited for.
///
/// Throws std::runtime_error before starting anything if the options are
/// invalid (nproc < 1, nnodes < 1, node_rank outside [0, nnodes), no
/// master_port with nnodes > 1, executable not executable, no free port), or if a
/// pipe/fork fails (children already started are killed and reaped first).
int launch_local_ranks(const LaunchOptions& options);

/// Picks a free TCP port on addr (a numeric IPv4/IPv6 address or a host name)
/// by binding port 0 and reading the port back. The port stays bound by this
/// process until it exits (SO_REUSEADDR, not listening): no other process is
/// given it by a bind of port 0, and a socket of this job that binds it with
/// SO_REUSEADDR and listens (rank 0's store) can. Throws std::runtime_error
/// on failure.
int pick_free_port(const std::string& addr);

}  // namespace ppc::runtime
