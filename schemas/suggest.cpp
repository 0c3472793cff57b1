#include "schemas/suggest.h"

#include <algorithm>
#include <tuple>

namespace ppc {

std::size_t edit_distance(std::string_view a, std::string_view b) {
  // Two rolling rows keep memory at O(min(|a|, |b|)).
  if (a.size() < b.size()) std::swap(a, b);
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t substitute = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, substitute});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

namespace {

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.substr(0, prefix.size()) == prefix;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// True if `query` is a whole leading or trailing run of dotted components of
// `candidate`: the boundary must fall on a '.', so "conv" does not match
// "layer1.0.conv1".
bool is_dotted_affix(std::string_view query, std::string_view candidate) {
  if (candidate.size() <= query.size()) return false;
  if (starts_with(candidate, query) && candidate[query.size()] == '.') return true;
  return ends_with(candidate, query) && candidate[candidate.size() - query.size() - 1] == '.';
}

}  // namespace

std::vector<std::string> nearest_names(std::string_view query, const std::vector<std::string>& candidates,
                                       std::size_t max_results) {
  if (query.empty() || max_results == 0) return {};
  const std::size_t threshold = std::max<std::size_t>(2, query.size() / 3);

  // (tier, distance, name): tier 0 = spelling match, 1 = component match.
  std::vector<std::tuple<int, std::size_t, std::string>> matches;
  for (const std::string& c : candidates) {
    const std::size_t d = edit_distance(query, c);
    if (d <= threshold && d < std::max(query.size(), c.size())) {
      matches.emplace_back(0, d, c);
    } else if (is_dotted_affix(query, c)) {
      matches.emplace_back(1, d, c);
    }
  }
  std::sort(matches.begin(), matches.end());
  std::vector<std::string> out;
  for (auto& m : matches) {
    if (out.size() == max_results) break;
    // Sorted, so duplicates of a name are adjacent in the output order.
    if (!out.empty() && out.back() == std::get<2>(m)) continue;
    out.push_back(std::move(std::get<2>(m)));
  }
  return out;
}

std::string did_you_mean(std::string_view query, const std::vector<std::string>& candidates) {
  const std::vector<std::string> names = nearest_names(query, candidates, 3);
  if (names.empty()) return "";
  std::string out = " (did you mean ";
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += (i + 1 == names.size()) ? " or " : ", ";
    out += "'" + names[i] + "'";
  }
  out += "?)";
  return out;
}

}  // namespace ppc
