#include "runtime/schedule/stage_graph.h"

#include <algorithm>
#include <string>

#include "schemas/error.h"

namespace ppc::runtime::schedule {

StageGraph StageGraph::chain(int num_stages) {
  std::vector<StageEdge> edges;
  for (int s = 0; s + 1 < num_stages; ++s) edges.push_back({s, s + 1});
  return from_edges(num_stages, edges);
}

StageGraph StageGraph::from_edges(int num_stages, const std::vector<StageEdge>& edges) {
  if (num_stages < 1) throw Error("a pipeline needs at least 1 stage, got " + std::to_string(num_stages));
  StageGraph g;
  g.num_stages = num_stages;
  g.producers.resize(num_stages);
  g.consumers.resize(num_stages);
  for (const StageEdge& e : edges) {
    std::string name = "edge " + std::to_string(e.producer) + " -> " + std::to_string(e.consumer);
    if (e.producer < 0 || e.producer >= num_stages || e.consumer < 0 || e.consumer >= num_stages)
      throw Error(name + ": stage out of range (" + std::to_string(num_stages) + " stages)");
    if (e.producer >= e.consumer) throw Error(name + ": edges must go from an earlier stage to a later one");
    if (!(e.bytes >= 0) || !(e.grad_bytes >= 0)) throw Error(name + ": bytes must be 0 or more");
    if (e.bytes > 0 || e.grad_bytes > 0) {
      auto& b = g.bytes[{e.producer, e.consumer}];
      b.first += e.bytes;
      b.second += e.grad_bytes;
    }
    g.producers[e.consumer].push_back(e.producer);
    g.consumers[e.producer].push_back(e.consumer);
  }
  for (int s = 0; s < num_stages; ++s) {
    for (auto* v : {&g.producers[s], &g.consumers[s]}) {
      std::sort(v->begin(), v->end());
      v->erase(std::unique(v->begin(), v->end()), v->end());
    }
  }
  return g;
}

double StageGraph::message_bytes(int producer, int consumer, bool backward) const {
  auto it = bytes.find({producer, consumer});
  if (it == bytes.end()) return 0;
  return backward ? it->second.second : it->second.first;
}

}  // namespace ppc::runtime::schedule
