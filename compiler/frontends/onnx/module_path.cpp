#include "compiler/frontends/onnx/module_path.h"

#include <algorithm>
#include <cctype>

namespace ppc::onnx_frontend {

std::vector<std::string> scope_segments(const std::string& node_name) {
  std::vector<std::string> segs;
  if (node_name.empty() || node_name[0] != '/') return segs;
  size_t start = 1;
  while (true) {
    size_t slash = node_name.find('/', start);
    if (slash == std::string::npos) break;  // the last segment names the op
    segs.push_back(node_name.substr(start, slash - start));
    start = slash + 1;
  }
  return segs;
}

namespace {
// "embed_12" -> "embed"; "" when there is no numeric suffix.
std::string strip_call_suffix(const std::string& seg) {
  size_t us = seg.rfind('_');
  if (us == std::string::npos || us == 0 || us + 1 == seg.size()) return "";
  for (size_t i = us + 1; i < seg.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(seg[i]))) return "";
  return seg.substr(0, us);
}
}  // namespace

std::string module_path(const std::vector<std::string>& segments, const std::set<std::string>& known_scopes) {
  std::string path;
  std::string scope;  // "/"-joined raw prefix, to look up siblings
  for (const std::string& raw : segments) {
    std::string seg = raw;
    // A second call of the same module re-enters its scope with a suffix;
    // the unsuffixed sibling scope then exists in the same parent.
    std::string base = strip_call_suffix(seg);
    if (!base.empty() && known_scopes.count(scope.empty() ? base : scope + "/" + base)) seg = base;
    scope = scope.empty() ? raw : scope + "/" + raw;
    if (seg.empty()) continue;
    if (!path.empty() && seg.size() > path.size() && seg.compare(0, path.size() + 1, path + ".") == 0)
      path = seg;  // "layer1" then "layer1.0": the exporter repeats the parent
    else
      path = path.empty() ? seg : path + "." + seg;
  }
  return path;
}

std::set<std::string> collect_scopes(const std::vector<std::string>& node_names) {
  std::set<std::string> scopes;
  for (const auto& n : node_names) {
    std::string s;
    for (const auto& seg : scope_segments(n)) {
      s = s.empty() ? seg : s + "/" + seg;
      scopes.insert(s);
    }
  }
  return scopes;
}

std::optional<std::vector<std::string>> parse_python_str_list(const std::string& text) {
  std::vector<std::string> out;
  size_t i = 0;
  auto skip_space = [&] {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  };
  skip_space();
  if (i >= text.size() || text[i] != '[') return std::nullopt;
  ++i;
  skip_space();
  const bool empty = i < text.size() && text[i] == ']';
  while (!empty) {
    skip_space();
    if (i >= text.size() || (text[i] != '\'' && text[i] != '"')) return std::nullopt;
    const char quote = text[i++];
    std::string s;
    while (i < text.size() && text[i] != quote) {
      if (text[i] == '\\' && i + 1 < text.size()) {
        const char e = text[++i];
        s += e == 'n' ? '\n' : e == 't' ? '\t' : e;  // \\, \', \" stand for themselves
      } else {
        s += text[i];
      }
      ++i;
    }
    if (i >= text.size()) return std::nullopt;
    ++i;  // closing quote
    out.push_back(std::move(s));
    skip_space();
    if (i < text.size() && text[i] == ',') {
      ++i;
      continue;
    }
    if (i < text.size() && text[i] == ']') break;
    return std::nullopt;
  }
  ++i;
  skip_space();
  if (i != text.size()) return std::nullopt;
  return out;
}

std::string module_from_name_scopes(const std::vector<std::string>& scopes) {
  if (scopes.size() < 2) return "";
  std::string path = scopes[scopes.size() - 2];
  // torch.export's name for "no module at all" (e.g. a batch size read at the root).
  if (path == "_empty_nn_module_stack_from_metadata_hook") return "";
  // "h.0@1": the second call of module h.0.
  size_t at = path.rfind('@');
  if (at != std::string::npos && at + 1 < path.size() &&
      std::all_of(path.begin() + static_cast<std::ptrdiff_t>(at) + 1, path.end(),
                  [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }))
    path.resize(at);
  return path;
}

}  // namespace ppc::onnx_frontend
