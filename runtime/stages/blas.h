// Which library runs LibTorch's float32 matrix products on the CPU (pprun
// --blas). LibTorch calls the BLAS function sgemm_ for every float32 mm,
// addmm, linear and matmul on the CPU. pprun defines sgemm_ itself and exports
// it, so that LibTorch's call reaches pprun's sgemm_ first. pprun's sgemm_
// hands the call to the chosen library: LibTorch's own BLAS (the MKL inside
// the PyPI wheel's LibTorch, or Debian's OpenBLAS for Debian's LibTorch), or
// OpenBLAS loaded privately. MKL runs generic code paths on CPUs that are not
// Intel's, which OpenBLAS outruns there (docs/runtime.md, "Launching", BLAS).
// No torch headers: this file is about symbols, not tensors.
#pragma once

#include <cstdint>
#include <string>

namespace ppc::runtime {

enum class BlasChoice {
  Auto,     ///< OpenBLAS where LibTorch's BLAS is MKL on a CPU that is not Intel's, else LibTorch's
  Torch,    ///< LibTorch's own BLAS
  OpenBlas  ///< OpenBLAS (libopenblas.so.0), whatever LibTorch's BLAS is
};

/// Parses "auto" | "torch" | "openblas"; throws ppc::Error naming `option` otherwise.
BlasChoice parse_blas_choice(const std::string& text, const std::string& option = "--blas");

struct BlasInUse {
  std::string name;       ///< what the GEMMs run on: "OpenBLAS 0.3.21", "MKL", ...
  std::string own;        ///< LibTorch's own BLAS
  std::string why;        ///< why this one, in a few words
  bool switched = false;  ///< the calls go to a library other than LibTorch's own

  /// One line: "OpenBLAS 0.3.21 in place of LibTorch's MKL (why)".
  std::string describe() const;
};

/// Routes this process's float32 GEMMs as `choice` says, and returns what
/// they run on. Call once, before any computation. Throws ppc::Error for
/// OpenBlas when libopenblas.so.0 cannot be loaded or the calls cannot be
/// routed (a program that does not export sgemm_).
BlasInUse choose_blas(BlasChoice choice);

/// Intra-op threads of the BLAS in use (and of any OpenBLAS in the process).
void set_blas_threads(int threads);

/// How many float32 GEMMs went through pprun's sgemm_ (tests: the routing is in effect).
int64_t blas_calls();

}  // namespace ppc::runtime
