// The difference measure of the operator and program checks: the largest
// element-wise difference of two tensors, relative to the expected value's
// magnitude (absolute below 1, relative above).
#pragma once

#include <ATen/ATen.h>

#include <string>

namespace ppc::test {

/// 1e30 (and `why` says why) where the shapes differ, or the dtypes do and
/// `same_dtype` is asked for.
inline double max_diff(const at::Tensor& got, const at::Tensor& want, std::string& why, bool same_dtype = true) {
  if (got.sizes() != want.sizes()) {
    why = "shape " + c10::str(got.sizes()) + " vs expected " + c10::str(want.sizes());
    return 1e30;
  }
  if (same_dtype && got.scalar_type() != want.scalar_type()) {
    why =
        std::string("dtype ") + c10::toString(got.scalar_type()) + " vs expected " + c10::toString(want.scalar_type());
    return 1e30;
  }
  if (got.numel() == 0) return 0;
  at::Tensor g = got.detach().to(at::kDouble), w = want.detach().to(at::kDouble);
  return ((g - w).abs() / at::clamp_min(w.abs(), 1.0)).max().item<double>();
}

}  // namespace ppc::test
