#include "runtime/schedule/action.h"

#include <cctype>
#include <climits>

#include "schemas/error.h"

namespace ppc::runtime::schedule {

namespace {

// Longest names first is not needed: the kind is everything between the two
// digit runs, matched exactly.
constexpr Action::Kind kAllKinds[] = {Action::F,      Action::B,      Action::I,      Action::W,
                                      Action::SEND_F, Action::RECV_F, Action::SEND_B, Action::RECV_B};

Error invalid(const std::string& text, const std::string& why) {
  return Error("invalid action '" + text + "': " + why);
}

// Parses a non-empty run of digits into an int; false on overflow.
bool parse_index(const std::string& digits, int& out) {
  long long v = 0;
  for (char c : digits) {
    v = v * 10 + (c - '0');
    if (v > INT_MAX) return false;
  }
  out = static_cast<int>(v);
  return true;
}

}  // namespace

const char* kind_name(Action::Kind kind) {
  switch (kind) {
    case Action::F: return "F";
    case Action::B: return "B";
    case Action::I: return "I";
    case Action::W: return "W";
    case Action::SEND_F: return "SEND_F";
    case Action::RECV_F: return "RECV_F";
    case Action::SEND_B: return "SEND_B";
    case Action::RECV_B: return "RECV_B";
  }
  return "?";
}

std::string to_string(const Action& a) {
  return std::to_string(a.stage) + kind_name(a.kind) + std::to_string(a.microbatch);
}

Action parse_action(const std::string& text) {
  if (text.empty()) throw Error("invalid action '': empty");
  size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  if (i == 0) throw invalid(text, "expected a stage index first, as in 0F3 or 1RECV_B2");
  size_t k = i;
  while (k < text.size() && !std::isdigit(static_cast<unsigned char>(text[k]))) ++k;
  std::string kind = text.substr(i, k - i);
  size_t m = k;
  while (m < text.size() && std::isdigit(static_cast<unsigned char>(text[m]))) ++m;
  if (m != text.size()) throw invalid(text, "unexpected '" + text.substr(m) + "' after the micro-batch index");
  if (kind.empty())
    throw invalid(text, "missing kind after the stage index (F, B, I, W, SEND_F, RECV_F, SEND_B or RECV_B)");
  Action a;
  bool known = false;
  for (Action::Kind candidate : kAllKinds)
    if (kind == kind_name(candidate)) {
      a.kind = candidate;
      known = true;
    }
  if (!known) {
    if (kind == "UNSHARD" || kind == "RESHARD" || kind == "REDUCE_GRAD" || kind == "OVERLAP_F_B")
      throw invalid(text, "kind '" + kind + "' is not supported by pprun");
    throw invalid(text, "unknown kind '" + kind + "' (expected F, B, I, W, SEND_F, RECV_F, SEND_B or RECV_B)");
  }
  if (k == text.size()) throw invalid(text, "missing micro-batch index after '" + kind + "'");
  if (!parse_index(text.substr(0, i), a.stage)) throw invalid(text, "stage index is too large");
  if (!parse_index(text.substr(k), a.microbatch)) throw invalid(text, "micro-batch index is too large");
  return a;
}

std::string to_string(const RankSchedule& actions) {
  std::string out;
  for (const Action& a : actions) {
    if (!out.empty()) out += ' ';
    out += to_string(a);
  }
  return out;
}

std::vector<int> stage_ranks(const Schedule& schedule, int num_stages) {
  std::vector<int> rank_of(num_stages < 0 ? 0 : num_stages, -1);
  for (size_t r = 0; r < schedule.size(); ++r)
    for (size_t i = 0; i < schedule[r].size(); ++i) {
      const Action& a = schedule[r][i];
      std::string where = "rank " + std::to_string(r) + ", action " + std::to_string(i) + " (" + to_string(a) + ")";
      if (a.stage < 0 || a.stage >= num_stages)
        throw Error(where + ": stage " + std::to_string(a.stage) + " is out of range (" + std::to_string(num_stages) +
                    " stages)");
      int& owner = rank_of[a.stage];
      if (owner == -1) owner = static_cast<int>(r);
      if (owner != static_cast<int>(r))
        throw Error(where + ": stage " + std::to_string(a.stage) + " also runs on rank " + std::to_string(owner));
    }
  return rank_of;
}

}  // namespace ppc::runtime::schedule
