// Typed, located access to a JsonDocument: every failure is a ppc::Error that
// names the file, line and column of the offending key or value.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "schemas/error.h"
#include "schemas/json_text.h"

namespace ppc {

/// A view of one JSON value inside a document.
class JsonNode {
 public:
  JsonNode(const JsonDocument& doc, const nlohmann::ordered_json& value, std::string pointer)
      : doc_(&doc), value_(&value), pointer_(std::move(pointer)) {}

  const nlohmann::ordered_json& json() const { return *value_; }
  const std::string& pointer() const { return pointer_; }
  const JsonDocument& doc() const { return *doc_; }

  /// An Error located at this value.
  Error error(const std::string& msg) const { return Error(doc_->where(pointer_, msg)); }

  /// Requires an object whose keys are all in `allowed`; unknown keys are an
  /// error at the key, with a suggestion. `what` names the object in messages.
  void expect_object(const std::string& what, std::initializer_list<const char*> allowed) const;
  void expect_array(const std::string& what) const;

  bool has(const std::string& key) const;
  JsonNode at(const std::string& key) const;  ///< error if missing
  JsonNode at(size_t index) const;
  size_t size() const { return value_->size(); }

  std::string as_string(const std::string& what) const;
  int64_t as_int(const std::string& what) const;
  bool as_bool(const std::string& what) const;
  /// Any JSON number (integer or not) as a double.
  double as_number(const std::string& what) const;
  /// A string that must be one of `choices`.
  std::string as_enum(const std::string& what, std::initializer_list<const char*> choices) const;
  std::string as_enum(const std::string& what, const std::vector<std::string>& choices) const;

 private:
  const JsonDocument* doc_;
  const nlohmann::ordered_json* value_;
  std::string pointer_;
};

inline JsonNode root_node(const JsonDocument& doc) { return JsonNode(doc, doc.root(), ""); }

}  // namespace ppc
