#include "runtime/engine/replicas.h"

#include <sstream>

#include "schemas/error.h"

namespace ppc::runtime {

std::vector<int> ReplicaLayout::pipeline_ranks(int replica) const {
  std::vector<int> out;
  for (int p = 0; p < pipeline; ++p) out.push_back(rank_of(replica, p));
  return out;
}

std::vector<int> ReplicaLayout::replica_ranks(int position) const {
  std::vector<int> out;
  for (int d = 0; d < replicas; ++d) out.push_back(rank_of(d, position));
  return out;
}

std::string ReplicaLayout::describe() const {
  std::ostringstream os;
  os << pipeline * replicas << " ranks = " << replicas << " replica" << (replicas == 1 ? "" : "s") << " x " << pipeline
     << " pipeline rank" << (pipeline == 1 ? "" : "s") << " ("
     << (data_major ? "data-major: rank = p*" + std::to_string(replicas) + " + d"
                    : "pipeline-major: rank = d*" + std::to_string(pipeline) + " + p")
     << ")";
  for (int d = 0; d < replicas; ++d) {
    os << (d ? "; " : ": ") << "replica " << d << " on ranks ";
    auto ranks = pipeline_ranks(d);
    for (size_t i = 0; i < ranks.size(); ++i) os << (i ? "," : "") << ranks[i];
  }
  return os.str();
}

const std::vector<std::string>& replica_layout_names() {
  static const std::vector<std::string> names = {"pipeline-major", "data-major"};
  return names;
}

ReplicaLayout replica_layout(int world, int dp, const std::string& order) {
  if (dp < 1) throw Error("--dp " + std::to_string(dp) + ": the number of replicas must be at least 1");
  if (world % dp != 0)
    throw Error("--dp " + std::to_string(dp) + " does not divide the " + std::to_string(world) +
                " ranks of the world (each replica needs the same number of pipeline ranks)");
  if (order != "pipeline-major" && order != "data-major")
    throw Error("--dp-layout '" + order + "': expected pipeline-major or data-major");
  ReplicaLayout l;
  l.replicas = dp;
  l.pipeline = world / dp;
  l.data_major = order == "data-major";
  return l;
}

}  // namespace ppc::runtime
