// The names of pprun's schedules: one list for the split spec's
// `defaults.schedule` (schemas/split_spec.cpp, and the enum of
// split-spec.schema.json, which a test compares with it) and for
// `pprun --schedule` (runtime/schedule/registry.cpp, which makes each).
// Header-only, standard library only.
#pragma once

#include <string>
#include <vector>

namespace ppc {

inline const std::vector<std::string>& schedule_names() {
  static const std::vector<std::string> names = {"gpipe",          "1f1b", "interleaved-1f1b", "looped-bfs", "zb-h1",
                                                 "interleaved-zb", "zb-v", "dualpipev"};
  return names;
}

}  // namespace ppc
