#include "schemas/json_reader.h"

#include "schemas/suggest.h"

namespace ppc {

namespace {
const char* type_name(const nlohmann::ordered_json& j) {
  if (j.is_object()) return "an object";
  if (j.is_array()) return "an array";
  if (j.is_string()) return "a string";
  if (j.is_boolean()) return "a boolean";
  if (j.is_number_integer() || j.is_number_unsigned()) return "an integer";
  if (j.is_number()) return "a number";
  return "null";
}
}  // namespace

void JsonNode::expect_object(const std::string& what, std::initializer_list<const char*> allowed) const {
  if (!value_->is_object()) throw error(what + " must be an object, not " + type_name(*value_));
  std::vector<std::string> names(allowed.begin(), allowed.end());
  for (auto it = value_->begin(); it != value_->end(); ++it) {
    bool ok = false;
    for (const auto& a : names) ok = ok || a == it.key();
    if (!ok) {
      std::string ptr = pointer_ + "/" + json_pointer_escape(it.key());
      throw Error(doc_->where_key(ptr, "unknown key '" + it.key() + "' in " + what + did_you_mean(it.key(), names)));
    }
  }
}

void JsonNode::expect_array(const std::string& what) const {
  if (!value_->is_array()) throw error(what + " must be an array, not " + type_name(*value_));
}

bool JsonNode::has(const std::string& key) const { return value_->is_object() && value_->contains(key); }

JsonNode JsonNode::at(const std::string& key) const {
  if (!has(key)) throw error("missing required key '" + key + "'");
  return JsonNode(*doc_, (*value_)[key], pointer_ + "/" + json_pointer_escape(key));
}

JsonNode JsonNode::at(size_t index) const {
  return JsonNode(*doc_, (*value_)[index], pointer_ + "/" + std::to_string(index));
}

std::string JsonNode::as_string(const std::string& what) const {
  if (!value_->is_string()) throw error(what + " must be a string, not " + type_name(*value_));
  return value_->get<std::string>();
}

int64_t JsonNode::as_int(const std::string& what) const {
  if (value_->is_number_unsigned()) {
    auto u = value_->get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) throw error(what + " is too large");
    return static_cast<int64_t>(u);
  }
  if (!value_->is_number_integer()) throw error(what + " must be an integer, not " + type_name(*value_));
  return value_->get<int64_t>();
}

double JsonNode::as_number(const std::string& what) const {
  if (!value_->is_number()) throw error(what + " must be a number, not " + type_name(*value_));
  return value_->get<double>();
}

bool JsonNode::as_bool(const std::string& what) const {
  if (!value_->is_boolean()) throw error(what + " must be true or false, not " + type_name(*value_));
  return value_->get<bool>();
}

std::string JsonNode::as_enum(const std::string& what, std::initializer_list<const char*> choices) const {
  return as_enum(what, std::vector<std::string>(choices.begin(), choices.end()));
}

std::string JsonNode::as_enum(const std::string& what, const std::vector<std::string>& names) const {
  std::string s = as_string(what);
  for (const auto& c : names)
    if (c == s) return s;
  std::string list;
  for (size_t i = 0; i < names.size(); ++i) list += (i ? ", " : "") + names[i];
  throw error("unknown " + what + " '" + s + "' (expected one of: " + list + ")");
}

}  // namespace ppc
