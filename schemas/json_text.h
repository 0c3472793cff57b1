// JSON text parsing with source locations.
//
// nlohmann::json discards positions once a document is parsed, so schema
// validation could only say *what* is wrong, never *where*. This parser builds
// the same nlohmann::ordered_json value while recording the line and column of
// every value and every object key, addressed by JSON pointer.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>

#include <nlohmann/json.hpp>

namespace ppc {

/// A position in a text file. Both fields are 1-based; 0 means "unknown".
/// Columns count bytes, so a tab or each byte of a multi-byte UTF-8 sequence
/// advances the column by one.
struct SourceLoc {
  int line = 0;
  int column = 0;

  /// True when the location refers to an actual position in the file.
  bool known() const { return line > 0; }
};

inline bool operator==(SourceLoc a, SourceLoc b) { return a.line == b.line && a.column == b.column; }
inline bool operator!=(SourceLoc a, SourceLoc b) { return !(a == b); }

/// Thrown for malformed JSON text or an unreadable file.
/// what() is "<file>:<line>:<col>: <problem>", e.g.
/// "spec.json:3:7: expected ',' or '}' after object member", or
/// "<file>: <problem>" when the location is unknown (loc() == {0, 0}).
class JsonSyntaxError : public std::runtime_error {
 public:
  JsonSyntaxError(std::string file, SourceLoc loc, std::string msg);

  /// The file name as given to the parser (the display name, not a path).
  const std::string& file() const { return file_; }
  SourceLoc loc() const { return loc_; }
  /// The message without the "<file>:<line>:<col>: " prefix.
  const std::string& problem() const { return problem_; }

 private:
  std::string file_;
  SourceLoc loc_;
  std::string problem_;
};

/// A parsed JSON document: the value plus the location of every value and
/// every object key, keyed by RFC 6901 JSON pointer ("" is the root,
/// "/split_points/0/module" a nested value).
///
/// Accepts exactly RFC 8259 JSON (UTF-8, optional leading BOM). Rejects
/// comments, trailing commas, leading zeros, unescaped control characters,
/// invalid UTF-8, unpaired surrogates, duplicate object keys, trailing text
/// after the root value and nesting deeper than kMaxDepth. Object key order is
/// preserved. Numbers without fraction or exponent become number_unsigned
/// (non-negative) or number_integer (negative) when they fit in 64 bits, and
/// number_float otherwise.
/// The whole of a text file, or a ppc::Error "DISPLAY: cannot open WHAT:
/// REASON" (a folder, a missing or unreadable file: errno's words).
std::string read_text_file(const std::string& path, const std::string& display, const std::string& what);

class JsonDocument {
 public:
  /// Maximum number of nested arrays/objects; deeper input is rejected.
  static constexpr int kMaxDepth = 256;

  /// Parses `text`; `file_name` is used only in messages.
  /// Throws JsonSyntaxError on malformed input.
  static JsonDocument parse(std::string_view text, std::string file_name);

  /// Reads and parses the file at `path`; `display_name` is used in messages
  /// (the path itself when empty). Throws JsonSyntaxError with loc {0, 0} and
  /// problem "cannot read file: <reason>" if the file cannot be read.
  static JsonDocument load(const std::string& path, std::string display_name);

  const nlohmann::ordered_json& root() const { return root_; }
  const std::string& file() const { return file_; }

  /// Where the value at `pointer` starts. If `pointer` has no recorded
  /// location (e.g. it names a member that does not exist), falls back to the
  /// nearest enclosing pointer that has one; {0, 0} only if none does.
  SourceLoc loc(const std::string& pointer) const;

  /// Where the key of the object member at `pointer` starts (useful for
  /// "unknown key" errors). Falls back to loc(pointer) for array elements,
  /// the root, and pointers without a recorded key.
  SourceLoc key_loc(const std::string& pointer) const;

  /// "<file>:<line>:<col>: <msg>" for the value at `pointer`, or
  /// "<file>: <msg>" if no location is known.
  std::string where(const std::string& pointer, const std::string& msg) const;

  /// Like where(), but positioned at the member's key (see key_loc()).
  std::string where_key(const std::string& pointer, const std::string& msg) const;

 private:
  friend class JsonTextParser;

  nlohmann::ordered_json root_;
  std::string file_;
  std::unordered_map<std::string, SourceLoc> value_locs_;
  std::unordered_map<std::string, SourceLoc> key_locs_;
};

/// Escapes one reference token for a JSON pointer: "~" -> "~0", "/" -> "~1".
std::string json_pointer_escape(const std::string& key);

}  // namespace ppc
