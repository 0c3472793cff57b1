// One libFuzzer binary per target: build with -DPPC_FUZZ=ON (clang), e.g.
//   build-fuzz/tests/fuzz_split_spec samples/ -max_total_time=60
#include "tests/fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  PPC_FUZZ_TARGET(data, size);
  return 0;
}
