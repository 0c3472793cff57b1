#include "runtime/stages/device.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <optional>

#include "schemas/error.h"

namespace fs = std::filesystem;

namespace ppc::runtime {

namespace {

struct Spec {
  bool cuda = false;
  int index = -1;                    // -1: by local rank
  std::optional<c10::Device> other;  // a device type a loaded LibTorch backend provides
};

Spec parse(const std::string& spec, const std::string& option) {
  auto bad = [&] { return Error(option + " '" + spec + "': expected cpu, cuda or cuda:N (N a GPU index)"); };
  if (spec == "cpu") return {};
  if (spec == "cuda") return {true, -1};
  if (spec.rfind("cuda:", 0) != 0) {
    // Another device type LibTorch has a backend loaded for (a third-party
    // device, "privateuseone"; the tests' stand-in for a GPU).
    try {
      c10::Device d(spec);
      if (!d.is_cpu() && !d.is_cuda() && c10::impl::hasDeviceGuardImpl(d.type())) return {false, -1, d};
    } catch (const std::exception&) {}
    throw bad();
  }
  if (spec.size() == 5 || spec.size() > 8) throw bad();
  for (size_t i = 5; i < spec.size(); ++i)
    if (spec[i] < '0' || spec[i] > '9') throw bad();
  return {true, std::atoi(spec.c_str() + 5)};
}

// The folder of the LibTorch this process runs (where libtorch_cpu.so lies).
fs::path libtorch_folder() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&at::set_num_threads), &info) == 0 || !info.dli_fname) return {};
  return fs::path(info.dli_fname).parent_path();
}

// Opens libtorch_cuda.so beside libtorch_cpu.so (it registers LibTorch's CUDA
// kernels, device guard and hooks); "" on success, else why not.
std::string load_cuda_libraries() {
  static std::once_flag once;
  static std::string result;
  std::call_once(once, [] {
    const fs::path dir = libtorch_folder();
    const fs::path lib = dir / "libtorch_cuda.so";
    std::error_code ec;
    if (dir.empty() || !fs::exists(lib, ec)) {
      result = "this pprun's LibTorch" + (dir.empty() ? std::string() : " (" + dir.string() + ")") +
               " has no CUDA libraries (no libtorch_cuda.so): use the build against the PyTorch 2.x wheel's "
               "LibTorch (docs/runtime.md, GPUs)";
      return;
    }
    if (!dlopen(lib.c_str(), RTLD_NOW | RTLD_GLOBAL)) {
      const char* why = dlerror();
      result = "cannot open " + lib.string() + ": " + (why ? why : "unknown error");
    }
  });
  return result;
}

}  // namespace

void check_device_spec(const std::string& spec, const std::string& option) { parse(spec, option); }

c10::Device open_device(const std::string& spec, int local_rank, const std::string& option) {
  const Spec s = parse(spec, option);
  if (s.other) return c10::Device(s.other->type(), s.other->has_index() ? s.other->index() : 0);
  if (!s.cuda) return c10::Device(c10::kCPU);
  const std::string why = load_cuda_libraries();
  if (!why.empty()) throw Error(option + " " + spec + ": " + why);
  const auto& hooks = at::detail::getCUDAHooks();
  const int count = hooks.hasCUDA() ? hooks.getNumGPUs() : 0;
  if (count == 0) {
    std::string runtime;
    try {
      const long v = hooks.versionCUDART();
      runtime =
          "LibTorch's CUDA runtime " + std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10) + " is loaded";
    } catch (const std::exception&) { runtime = "LibTorch's CUDA libraries did not register"; }
    const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
    throw Error(option + " " + spec + ": no CUDA GPU is visible to this process (" + runtime +
                (visible ? ", CUDA_VISIBLE_DEVICES=" + std::string(visible) : std::string()) + ")");
  }
  const int index = s.index >= 0 ? s.index : std::max(local_rank, 0) % count;
  if (index >= count)
    throw Error(option + " " + spec + ": GPU " + std::to_string(index) + " does not exist (" + std::to_string(count) +
                " visible)");
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
}

void synchronize(const c10::Device& device) {
  if (device.is_cpu()) return;
  // pprun queues every kernel on the device's current stream.
  c10::impl::VirtualGuardImpl guard(device.type());
  guard.getStream(device).synchronize();
}

}  // namespace ppc::runtime
