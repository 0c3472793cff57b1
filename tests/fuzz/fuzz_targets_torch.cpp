// The fuzz targets whose readers are LibTorch's (a TorchScript archive for
// ppc split, a torch.save'd dict for pprun --inputs): torch.jit.load and
// torch.save's zip and pickle readers behind ppc's own checks.
#include <string>

#include "compiler/frontends/torchscript/torchscript_frontend.h"
#include "runtime/engine/pt_io.h"
#include "schemas/error.h"
#include "tests/fuzz/fuzz_targets.h"

namespace ppc::fuzz {

void torchscript(const uint8_t* data, size_t size) {
  const std::string path = scratch_file(data, size, "_model.pt");
  try {
    torchscript_frontend::load_torchscript(path, "model.pt", nullptr);
  } catch (const Error&) {}
}

void pt_inputs(const uint8_t* data, size_t size) {
  const std::string path = scratch_file(data, size, "_inputs.pt");
  try {
    runtime::load_tensor_dict(path);
  } catch (const Error&) {}
}

}  // namespace ppc::fuzz
