// Batches in, micro-batches out: splitting model inputs and targets along
// their batch dim (as torch.tensor_split does), and seeded synthetic batches.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "runtime/stages/stage_module.h"
#include "schemas/manifest.h"

namespace ppc::runtime {

struct MicroBatches {
  std::map<std::string, std::vector<at::Tensor>> inputs;  ///< model input -> one tensor per micro-batch
  std::vector<at::Tensor> targets;                        ///< per micro-batch (when a target key was given)
  std::vector<int64_t> sizes;                             ///< samples per micro-batch
  int64_t batch_size = 0;
};

/// Sizes of `chunks` micro-batches of `n` samples: as equal as possible, the
/// first ones one larger (torch.tensor_split). Throws ppc::Error when n < chunks.
std::vector<int64_t> micro_sizes(int64_t n, int chunks);

/// Splits `batch` (model input name -> tensor, and `target_key` unless empty)
/// into `chunks` micro-batches: inputs with split "batch" along their batch dim
/// (0 when the manifest does not say), replicated inputs repeated, the target
/// along dim 0. Every model input must be present with the manifest's dtype
/// (when known) and rank (when known), and all split inputs must agree on the
/// batch size. Errors name `where` (the batch file).
MicroBatches split_batch(const manifest::Manifest& m, const std::vector<NamedTensor>& batch, int chunks,
                         const std::string& target_key, const std::string& where);

/// Replica `replica`'s shard of `batch` when `replicas` data-parallel
/// replicas share it: split as split_batch splits micro-batches (inputs with
/// split "batch" along their batch dim, the target along dim 0, the first
/// shards one sample larger when `replicas` does not divide the batch),
/// replicated inputs whole, other entries as they are. The batch's size goes
/// to *batch_size and the shards' sizes, by replica, to *shard_sizes.
std::vector<NamedTensor> shard_batch(const manifest::Manifest& m, const std::vector<NamedTensor>& batch, int replicas,
                                     int replica, const std::string& target_key, const std::string& where,
                                     int64_t* batch_size, std::vector<int64_t>* shard_sizes);

/// A batch of random model inputs of the manifest's dtypes and shapes: the
/// batch dim is `batch_size`, other symbolic dims come from `dims`. Floats are
/// standard normal, integers uniform in [0, int_high), bools fair coins.
/// Deterministic in `seed`. Throws ppc::Error naming the input when its dtype
/// or shape is unknown (TorchScript manifests: declare them in the split spec).
std::vector<NamedTensor> synthetic_batch(const manifest::Manifest& m, int64_t batch_size,
                                         const std::map<std::string, int64_t>& dims, int64_t int_high, uint64_t seed);

/// The target of micro-batch `m` for a learnable synthetic task: a fixed
/// random teacher (seeded by `seed`, created on first use into `teacher`)
/// applied to the flattened first floating model input of the full batch
/// (`inputs`, empty when the model has none: then targets are seeded noise).
/// mse: tanh(x W) shaped like `out`; cross_entropy: argmax(x W) over the
/// output's last dim, shaped like `out` without it.
at::Tensor synthetic_target(const at::Tensor& out, const std::vector<at::Tensor>& inputs,
                            const std::vector<int64_t>& sizes, int m, const std::string& loss, uint64_t seed,
                            at::Tensor& teacher);

/// "[4, 512]".
std::string shape_text(const at::Tensor& t);
std::string shape_text(at::IntArrayRef sizes);
/// at::kFloat -> "float32" (the manifest's names).
std::string dtype_name(at::ScalarType type);
/// "float32" -> at::kFloat, ... Throws ppc::Error for an unknown or undefined dtype.
at::ScalarType scalar_type_of(const std::string& dtype);

}  // namespace ppc::runtime
