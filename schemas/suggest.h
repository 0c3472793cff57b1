// "Did you mean ...?" suggestions for misspelled names (module paths, keys,
// options) in diagnostics.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace ppc {

/// Levenshtein distance (insertions, deletions, substitutions; each costs 1),
/// case-sensitive, comparing bytes.
std::size_t edit_distance(std::string_view a, std::string_view b);

/// Candidates that plausibly match `query`, best first, at most `max_results`.
///
/// A candidate matches by spelling if its edit distance d to `query` is at
/// most max(2, query.size() / 3) and d is smaller than the longer of the two
/// lengths (so a candidate sharing nothing with a short query is not offered).
/// It matches by component if it is not a spelling match but `query` is a
/// whole dotted prefix or suffix of it (query "conv1" matches
/// "layer1.0.conv1", query "layer1" matches "layer1.0.conv1").
/// Spelling matches come first, by distance; then component matches, by
/// distance. Ties are broken by name, so the result is deterministic.
/// Duplicate candidates are reported once. An empty query matches nothing.
std::vector<std::string> nearest_names(std::string_view query, const std::vector<std::string>& candidates,
                                       std::size_t max_results = 3);

/// A suffix for an error message built from nearest_names(query, candidates):
/// "" when nothing matches, else " (did you mean 'a'?)",
/// " (did you mean 'a' or 'b'?)" or " (did you mean 'a', 'b' or 'c'?)".
std::string did_you_mean(std::string_view query, const std::vector<std::string>& candidates);

}  // namespace ppc
