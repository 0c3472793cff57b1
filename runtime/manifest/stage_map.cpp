#include "runtime/manifest/stage_map.h"

#include "schemas/error.h"

namespace ppc::runtime {

std::vector<int> stages_of_rank(int num_stages, int world_size, int rank) {
  if (world_size < 1) throw Error("world size must be at least 1");
  if (rank < 0 || rank >= world_size)
    throw Error("rank " + std::to_string(rank) + " is outside the world of " + std::to_string(world_size) + " ranks");
  if (num_stages % world_size != 0)
    throw Error("world size " + std::to_string(world_size) + " does not divide the " + std::to_string(num_stages) +
                " stages of the manifest (use " + std::to_string(num_stages) + " ranks, or a divisor of it)");
  std::vector<int> out;
  for (int s = rank; s < num_stages; s += world_size) out.push_back(s);
  return out;
}

}  // namespace ppc::runtime
