// Shared by the runtime/schedule unit tests (action_test.cpp, csv_test.cpp,
// generators_test.cpp, lowering_test.cpp, validator_test.cpp,
// simulator_test.cpp): schedules written as text, uniform stage costs, and
// the message of the ppc::Error a call throws.
#pragma once

#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/schedule/action.h"
#include "runtime/schedule/simulator.h"
#include "schemas/error.h"

namespace ppc::runtime::schedule::test_schedules {

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ppc::Error& e) { return e.what(); }
  return "";
}

// Builds a schedule from text, one string per rank: {"0F0 0B0", "1F0 1B0"}.
inline Schedule sched(const std::vector<std::string>& ranks) {
  Schedule s;
  for (const std::string& r : ranks) {
    std::istringstream in(r);
    RankSchedule rs;
    for (std::string tok; in >> tok;) rs.push_back(parse_action(tok));
    s.push_back(rs);
  }
  return s;
}

inline SimOptions costs(double f, double b, double i = 1, double w = 1) {
  SimOptions o;
  o.costs = {StageCost{f, b, i, w}};
  return o;
}

}  // namespace ppc::runtime::schedule::test_schedules
