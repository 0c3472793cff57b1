// Point-to-point and collective communication between pprun ranks, behind a
// small interface: the engine never includes c10d headers, so moving to a
// LibTorch 2.x / NCCL build is a change local to runtime/transport/.
//
// Implementations: connect_gloo (c10d TCPStore + ProcessGroupGloo, the only
// code that includes c10d) and make_local_fakes (threads in one process, for
// unit tests). Every blocking call has a timeout: a dead or stalled peer
// surfaces as PeerError naming its rank, never a hang.
#pragma once

#include <ATen/core/Tensor.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace ppc::runtime {

/// A peer died, closed its connection or did not answer within the timeout.
/// rank() is the peer's global rank, or -1 when it cannot be told (e.g. a
/// failed rendezvous or a world-wide barrier).
class PeerError : public std::runtime_error {
 public:
  PeerError(int rank, const std::string& message) : std::runtime_error(message), rank_(rank) {}
  int rank() const { return rank_; }

 private:
  int rank_;
};

struct RendezvousOptions {
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  int rank = 0;
  int world_size = 1;
  std::chrono::milliseconds timeout{300000};
  /// Where this rank belongs, as torchrun says (GROUP_RANK, GROUP_WORLD_SIZE,
  /// LOCAL_RANK, LOCAL_WORLD_SIZE); -1 / 0: not known. The rendezvous checks
  /// them across hosts and names hosts in its errors.
  int node_rank = -1, num_nodes = 0, local_rank = -1, local_world_size = 0;
};

/// Reads MASTER_ADDR / MASTER_PORT / RANK / WORLD_SIZE (as torchrun sets them)
/// over the defaults; every flag that is given (non-empty optional) overrides
/// the environment; GROUP_RANK, GROUP_WORLD_SIZE, LOCAL_RANK and
/// LOCAL_WORLD_SIZE where set. Throws std::invalid_argument for malformed
/// values, rank outside [0, world_size) or a group / local rank outside its size.
RendezvousOptions rendezvous_from_env(std::optional<std::string> master_addr = std::nullopt,
                                      std::optional<int> master_port = std::nullopt,
                                      std::optional<int> rank = std::nullopt,
                                      std::optional<int> world_size = std::nullopt,
                                      std::optional<std::chrono::milliseconds> timeout = std::nullopt);

/// A pending send or receive.
class Work {
 public:
  virtual ~Work();
  /// Waits for completion; throws PeerError naming the peer rank on timeout
  /// or when the peer died / closed its connection.
  virtual void wait() = 0;
};

class Transport {
 public:
  virtual ~Transport();
  virtual int rank() const = 0;
  virtual int world_size() const = 0;

  /// Sends `t` to `dst`; messages between a pair of ranks with the same tag
  /// are matched in FIFO order. The Work keeps a reference to `t` until wait()
  /// (do not modify it in place before then). Tags must be < 2^31. Over Gloo,
  /// wait() returns only once `dst` has posted the matching irecv.
  virtual std::unique_ptr<Work> isend(at::Tensor t, int dst, uint32_t tag) = 0;
  /// Receives from `src` into the preallocated `t` (same dtype and numel as
  /// the sent tensor); the data is in `t` once wait() returns.
  virtual std::unique_ptr<Work> irecv(at::Tensor t, int src, uint32_t tag) = 0;
  /// Sums every tensor in place among `ranks` only (this rank must be one of
  /// them); other ranks do not take part. Sub-groups are created lazily and
  /// cached per rank set; every member must make the same calls in the same
  /// order with tensors of matching dtypes and shapes.
  virtual void all_reduce_sum(std::vector<at::Tensor>& ts, const std::vector<int>& ranks) = 0;
  /// Starts summing the contiguous tensor `t` in place among `ranks`, as
  /// all_reduce_sum does, and returns at once: the sum is in `t` once the
  /// Work's wait() returns (keep `t` alive and untouched until then). Every
  /// member starts the same reductions in the same order; they may overlap
  /// point-to-point traffic and each other.
  virtual std::unique_ptr<Work> iall_reduce_sum(at::Tensor t, const std::vector<int>& ranks) = 0;
  /// Connects the sub-group of `ranks` now instead of at its first
  /// reduction; every member calls it at the same point of its collectives.
  virtual void connect_group(const std::vector<int>& ranks) { (void)ranks; }
  /// Blocks until every rank of the world has reached it.
  virtual void barrier() = 0;
};

/// Rendezvous over a c10d TCPStore (rank 0 hosts the server at
/// master_addr:master_port) and a ProcessGroupGloo whose operations time out
/// after options.timeout.
std::unique_ptr<Transport> connect_gloo(const RendezvousOptions& options);

/// Bad input found on this rank before connect_gloo (its placement, its
/// schedule), in a job across hosts (num_nodes > 1): tells the ranks already
/// in the rendezvous, so that they fail with it (exit 2) instead of waiting
/// for this rank until the timeout. Returns the message to report: the job's
/// first recorded failure, or `message`. Best effort, at most ~10 s; never throws.
std::string announce_bad_start(const RendezvousOptions& options, const std::string& message);

/// `world_size` in-process transports for unit tests (use each from its own
/// thread): messages matched by (src, dst, tag) in FIFO order, data copied at
/// send time, every wait bounded by `timeout`. Destroying a fake makes its
/// peers' pending and later receives from it fail ("connection closed").
std::vector<std::unique_ptr<Transport>> make_local_fakes(int world_size, std::chrono::milliseconds timeout);

/// The transport among `members` (distinct global ranks of `world`, which
/// must include world.rank()): its ranks are indices into `members`, its
/// messages and collectives travel on `world` (which must outlive it), and
/// errors name global ranks. A data-parallel run gives each pipeline replica
/// one, so that the engine sees ranks 0..P-1 of its own pipeline.
/// Throws std::invalid_argument for bad members.
std::unique_ptr<Transport> subset_transport(Transport& world, std::vector<int> members);

/// "rank 2 did not answer within 5 s" — shared wording for timeouts.
std::string describe_timeout(int rank, std::chrono::milliseconds timeout);

}  // namespace ppc::runtime
