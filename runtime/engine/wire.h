// How pprun's tensors travel between ranks: message tags, the shape header
// that precedes activations whose shapes the manifest does not fix
// (TorchScript manifests carry none), and the packing of an edge's tensors
// into one message. Gradients need no header: the receiver already holds the
// forward tensor whose shape the gradient has.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

namespace ppc::runtime::wire {

constexpr int kMaxDims = 8;
constexpr int kHeaderSlot = 2 + kMaxDims;  ///< per tensor: dtype, ndim, dims

/// int64 header for `tensors`: per tensor its ScalarType, rank and sizes.
/// Throws ppc::Error for tensors of more than kMaxDims dimensions.
at::Tensor encode_header(const std::vector<at::Tensor>& tensors);
/// An empty header buffer for `n` tensors (the receive side).
at::Tensor header_buffer(int n);
/// Freshly allocated contiguous tensors with the dtypes and shapes a header
/// describes; throws ppc::Error on a malformed header.
std::vector<at::Tensor> allocate_from_header(const at::Tensor& header, int n);

/// The tensors a stage sends another for one micro-batch travel as one
/// message when there are several (a skip connection beside the main path):
/// every message costs a round of the transport's latency, which on a busy
/// host is of the order of a small stage's compute. Their bytes lie one after
/// another, each at a kPackAlign-byte aligned offset.
constexpr int64_t kPackAlign = 64;
/// Bytes of the packed message for tensors of these shapes and dtypes.
int64_t packed_bytes(const std::vector<std::vector<int64_t>>& shapes, const std::vector<at::ScalarType>& dtypes);
/// One byte tensor holding `tensors` (any dtypes, any layout) as laid out above.
at::Tensor pack(const std::vector<at::Tensor>& tensors);
/// Views of a packed message's tensors (they share `bytes`' storage). Throws
/// ppc::Error when `bytes` is not packed_bytes(shapes, dtypes) long.
std::vector<at::Tensor> unpack(const at::Tensor& bytes, const std::vector<std::vector<int64_t>>& shapes,
                               const std::vector<at::ScalarType>& dtypes);

/// Packing saves a message's latency for small tensors, but its copy costs
/// more than a message for large ones: a tensor of at least kUnpackBytes
/// travels as a message of its own, from its own memory.
constexpr int64_t kUnpackBytes = 256 << 10;

/// How one edge's tensors of one micro-batch travel, all on one tag (FIFO):
/// first a frame, then each large tensor alone, in order. The frame is a
/// kFrameHeader-byte header, the small tensors packed (pack's layout), and an
/// 8-byte end mark. The header says what the message is (MessageId), the
/// dtypes and shapes it carries (a digest), their bytes, a checksum of the
/// small tensors' bytes and a checksum of itself; the end mark repeats the
/// latter, so that a shorter frame (its end never written) is told.
struct Layout {
  std::vector<int> packed;  ///< the tensors in the frame
  std::vector<int> alone;   ///< one message each, after it
};
Layout layout(const std::vector<std::vector<int64_t>>& shapes, const std::vector<at::ScalarType>& dtypes);
constexpr int64_t kFrameHeader = 64;

/// What a message is: which step, direction (0 activations, 1 gradients),
/// stage edge and micro-batch.
struct MessageId {
  int64_t step = 0;
  int direction = 0, producer = 0, consumer = 0, microbatch = 0;
};
/// The sending side: the messages for `tensors` (bools travel as bytes).
std::vector<at::Tensor> outgoing(const std::vector<at::Tensor>& tensors, const MessageId& id);

/// Shapes of an edge's tensors whose shapes the manifest does not fix, guessed
/// by both sides of the edge (ShapeGuesses): the receiver posts its receive
/// with the guess, and a sender whose tensors have other shapes completes
/// that receive with a *redirect* frame and sends the tensors under another
/// slot, behind a shape header. These are the redirect's messages: a frame of
/// the guessed size whose header says "redirect" (the id, digest and
/// checksums as in any frame), and one message of the guessed size per
/// tensor the guess sends alone (its bytes are not read).
std::vector<at::Tensor> redirect(const std::vector<std::vector<int64_t>>& shapes,
                                 const std::vector<at::ScalarType>& dtypes, const MessageId& id);

class RecvPool;
/// The receiving side of one edge's tensors of one micro-batch: the buffers
/// to post, in order, and the tensors once they have arrived.
class Incoming {
 public:
  Incoming() = default;
  Incoming(std::vector<std::vector<int64_t>> shapes, std::vector<at::ScalarType> dtypes, RecvPool& pool);
  /// The receive buffers, one per message, in the order to post them.
  const std::vector<at::Tensor>& messages() const { return messages_; }
  /// The tensors (views of the buffers), once every message has arrived.
  std::vector<at::Tensor> tensors() const;
  /// Once every message has arrived: "" when the frame is whole, uncorrupted
  /// and is `id`'s with the expected dtypes and shapes; else what is wrong.
  std::string check(const MessageId& id) const;
  /// Once check() passed: the frame is a redirect (wire::redirect), so the
  /// tensors follow under another slot and tensors() holds nothing.
  bool redirected() const;
  /// Bytes of the tensors (the frame's header and padding aside).
  int64_t bytes() const;

 private:
  std::vector<std::vector<int64_t>> shapes_;
  std::vector<at::ScalarType> dtypes_;
  Layout layout_;
  std::vector<at::Tensor> messages_;
};

/// The dtypes and shapes of one edge's tensors for one micro-batch.
struct Shapes {
  std::vector<std::vector<int64_t>> shapes;
  std::vector<at::ScalarType> dtypes;
  bool operator==(const Shapes& o) const { return shapes == o.shapes && dtypes == o.dtypes; }
};

/// The guess both sides of an edge make of its tensors' shapes for one
/// micro-batch, where the manifest does not fix them (TorchScript stages):
/// the shapes the edge carried, in an earlier step, for a micro-batch whose
/// model inputs had the same dtypes and shapes (`key`, which every rank reads
/// off the batch it loaded). Both sides learn the same thing at the same
/// points: each records every micro-batch's shapes (saw()) and what they
/// recorded becomes guessable only at the step's end (end_step()), when the
/// receiver has received every micro-batch the sender sent. So they guess
/// alike, whatever order the receives and sends of a step run in.
/// An edge whose guesses miss more often than they hit (shapes that depend
/// on the data) stops guessing, on both sides at the same step's end.
class ShapeGuesses {
 public:
  enum class Outcome { None, Hit, Miss };
  /// The guess for a micro-batch whose model inputs are `key`; nullptr: none
  /// (the shapes travel in a header first, as without guesses).
  const Shapes* guess(const std::string& key) const;
  /// Micro-batch `m` of this step had `shapes`, and its guess `outcome`.
  void saw(int m, const std::string& key, Shapes shapes, Outcome outcome);
  /// The step's micro-batches, in micro-batch order, become the guesses.
  void end_step();
  /// Inputs of different shapes remembered at most, oldest forgotten first.
  static constexpr size_t kMaxKeys = 16;

 private:
  std::map<std::string, Shapes> known_;
  std::deque<std::string> order_;  ///< known_'s keys, oldest first
  std::map<int, std::pair<std::string, Shapes>> step_;
  int64_t hits_ = 0, misses_ = 0;
  bool off_ = false;
};

/// Receive buffers kept across steps, by size in bytes, as
/// torch.distributed.pipelining's PipelineStage allocates its receive buffers
/// once: a 64 MiB message is not mapped and page-faulted anew each time
/// (glibc maps every allocation above 32 MiB afresh). A buffer is handed out
/// again only once the pool holds the last reference to its storage: while a
/// stage's input, its autograd graph, an output, a gradient or a receive in
/// flight holds a view of it, it is not overwritten.
class RecvPool {
 public:
  /// A byte buffer of `bytes` bytes that nothing else refers to.
  at::Tensor take(int64_t bytes);
  /// Frees the free buffers that no take() has handed out since the last trim
  /// (once a step: shapes that changed do not pile up).
  void trim();

 private:
  struct Buffer {
    at::Tensor bytes;
    bool taken = false;
  };
  std::map<int64_t, std::vector<Buffer>> pool_;
};

/// Tags of data messages: direction (0 forward, 1 backward), producer and
/// consumer stage, micro-batch, and the slot (0 = header, 1 = the tensors,
/// packed when several, 2 = the tensors after a redirect).
/// Unique within a step; FIFO matching per tag makes reuse across steps safe.
class Tags {
 public:
  /// Throws ppc::Error when the tag space does not fit below kControlBase.
  Tags(int num_stages, int num_microbatches, int max_slots);
  uint32_t data(int direction, int producer, int consumer, int microbatch, int slot) const;

  static constexpr uint32_t kControlBase = 1u << 30;
  /// End-of-step loss report to rank 0.
  static constexpr uint32_t kLoss = kControlBase + 1;
  /// Checkpoint gathering on rank 0 (artifact digests, parameters).
  static constexpr uint32_t kSaveDigest = kControlBase + 2;
  static constexpr uint32_t kSaveParam = kControlBase + 3;
  /// Trace events gathered on rank 0.
  static constexpr uint32_t kTrace = kControlBase + 4;
  /// Per-step statistics sent to rank 0.
  static constexpr uint32_t kStats = kControlBase + 5;
  /// Ping-pong between ranks 0 and 1 measuring the link (--profile).
  static constexpr uint32_t kProbe = kControlBase + 6;
  /// Per-node forward times gathered on rank 0 (--profile).
  static constexpr uint32_t kProfile = kControlBase + 7;
  /// Data parallel: each replica's step loss to rank 0.
  static constexpr uint32_t kReplicaLoss = kControlBase + 8;
  /// Data parallel inference: model outputs gathered on replica 0.
  static constexpr uint32_t kOutputs = kControlBase + 9;

 private:
  int64_t stages_, microbatches_, slots_;
};

}  // namespace ppc::runtime::wire
