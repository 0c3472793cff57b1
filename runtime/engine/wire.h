// How pprun's tensors travel between ranks: message tags and the shape header
// that precedes activations whose shapes the manifest does not fix
// (TorchScript manifests carry none). Gradients need no header: the receiver
// already holds the forward tensor whose shape the gradient has.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
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

/// Tags of data messages: direction (0 forward, 1 backward), producer and
/// consumer stage, micro-batch, and the slot (0 = header, k+1 = k-th tensor).
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

 private:
  int64_t stages_, microbatches_, slots_;
};

}  // namespace ppc::runtime::wire
