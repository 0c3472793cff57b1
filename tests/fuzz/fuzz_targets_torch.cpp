// The fuzz targets whose readers are LibTorch's (a TorchScript archive for
// ppc split, a torch.save'd dict for pprun --inputs): torch.jit.load and
// torch.save's zip and pickle readers behind ppc's own checks.
#include <unistd.h>

#include <fstream>
#include <string>

#include "compiler/frontends/torchscript/torchscript_frontend.h"
#include "runtime/engine/pt_io.h"
#include "schemas/error.h"
#include "tests/fuzz/fuzz_targets.h"

namespace ppc::fuzz {

namespace {

std::string torch_file(const uint8_t* data, size_t size, const std::string& ext) {
  const std::string path = "/tmp/ppc_fuzz_" + std::to_string(::getpid()) + ext;
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path;
}

}  // namespace

void torchscript(const uint8_t* data, size_t size) {
  const std::string path = torch_file(data, size, "_model.pt");
  try {
    torchscript_frontend::load_torchscript(path, "model.pt", nullptr);
  } catch (const Error&) {}
}

void pt_inputs(const uint8_t* data, size_t size) {
  const std::string path = torch_file(data, size, "_inputs.pt");
  try {
    runtime::load_tensor_dict(path);
  } catch (const Error&) {}
}

}  // namespace ppc::fuzz
