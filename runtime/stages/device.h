// The device a rank computes on (pprun --device): the CPU, or a GPU of a CUDA
// LibTorch. A CUDA LibTorch's GPU libraries (libtorch_cuda.so, ~1 GB with
// what it loads) are opened only when a run asks for a GPU, so runs on the CPU
// start as fast as with a CPU-only LibTorch.
#pragma once

#include <c10/core/Device.h>

#include <string>

namespace ppc::runtime {

/// The device `spec` names for a rank whose local rank is `local_rank` (-1:
/// unknown): "cpu"; "cuda" (GPU local_rank modulo the GPUs visible, so that
/// the ranks of a host spread over its GPUs, or share one); "cuda:N". Opens
/// LibTorch's CUDA libraries the first time. Throws ppc::Error naming
/// `option` for a malformed spec, a LibTorch without CUDA, or no visible GPU;
/// call it before anything else asks LibTorch about CUDA (LibTorch decides
/// once per process whether CUDA is there).
c10::Device open_device(const std::string& spec, int local_rank, const std::string& option = "--device");

/// Checks `spec`'s form only (no library is opened): ppc::Error when malformed.
void check_device_spec(const std::string& spec, const std::string& option = "--device");

/// Waits for the work queued on `device` (a no-op on the CPU): timings of a
/// GPU's actions (--profile, --trace) are taken after it.
void synchronize(const c10::Device& device);

}  // namespace ppc::runtime
