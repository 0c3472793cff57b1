// One node's measured time (pprun --profile): what an ONNX graph records and
// what a stage module reports to the engine.
#pragma once

#include <string>

namespace ppc::runtime {

struct NodeTime {
  std::string name;
  double forward_us = 0, backward_us = 0;
};

}  // namespace ppc::runtime
