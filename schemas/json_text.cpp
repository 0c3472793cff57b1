#include "schemas/json_text.h"

#include "schemas/error.h"

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <utility>

namespace ppc {

namespace {

std::string format_error(const std::string& file, SourceLoc loc, const std::string& msg) {
  if (!loc.known()) return file + ": " + msg;
  return file + ":" + std::to_string(loc.line) + ":" + std::to_string(loc.column) + ": " + msg;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool is_word_char(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_'; }

std::string hex_byte(unsigned char c) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string s = "0x";
  s += kHex[c >> 4];
  s += kHex[c & 0xF];
  return s;
}

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace

JsonSyntaxError::JsonSyntaxError(std::string file, SourceLoc loc, std::string msg)
    : std::runtime_error(format_error(file, loc, msg)), file_(std::move(file)), loc_(loc), problem_(std::move(msg)) {}

std::string json_pointer_escape(const std::string& key) {
  std::string out;
  out.reserve(key.size());
  for (char c : key) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

// Recursive descent is safe here because nesting is capped at kMaxDepth, so
// the native stack depth is bounded no matter what the input is. Every read of
// text_ is guarded by a bounds check (peek() returns '\0' at end of input, and
// '\0' is never a valid continuation), so truncated input cannot read past the
// buffer.
class JsonTextParser {
 public:
  JsonTextParser(std::string_view text, JsonDocument& doc) : text_(text), doc_(doc) {}

  void run() {
    // RFC 8259 permits parsers to ignore a UTF-8 byte order mark; editors do
    // not show it, so columns are counted as if it were absent.
    if (text_.size() >= 3 && text_.substr(0, 3) == "\xEF\xBB\xBF") {
      pos_ = 3;
      line_start_ = 3;
    }
    std::string pointer;
    skip_ws();
    parse_value(doc_.root_, pointer, 0);
    skip_ws();
    if (!at_end()) { fail_expected(here(), "unexpected trailing characters after JSON value"); }
  }

 private:
  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return at_end() ? '\0' : text_[pos_]; }
  char peek_at(std::size_t p) const { return p < text_.size() ? text_[p] : '\0'; }

  // Strings cannot contain raw newlines, so lines only advance inside
  // skip_ws(); a position's column is then its offset from the line start.
  SourceLoc loc_at(std::size_t p) const { return SourceLoc{line_, static_cast<int>(p - line_start_) + 1}; }
  SourceLoc here() const { return loc_at(pos_); }

  [[noreturn]] void fail(SourceLoc loc, const std::string& msg) const { throw JsonSyntaxError(doc_.file_, loc, msg); }

  // Reports that `what` was expected at the current position, but names the
  // real culprit when it is end of input or a comment, which are the common
  // reasons for a hand-edited file to fail.
  [[noreturn]] void fail_expected(SourceLoc loc, const std::string& what) const {
    if (at_end()) fail(loc, "unexpected end of input (" + what + ")");
    if (peek() == '/' && (peek_at(pos_ + 1) == '/' || peek_at(pos_ + 1) == '*'))
      fail(loc, "comments are not allowed in JSON");
    fail(loc, what);
  }

  void skip_ws() {
    while (!at_end()) {
      char c = text_[pos_];
      if (c == '\n') {
        ++pos_;
        ++line_;
        line_start_ = pos_;
      } else if (c == ' ' || c == '\t' || c == '\r') {
        ++pos_;
      } else {
        break;
      }
    }
  }

  void record_value(const std::string& pointer, SourceLoc loc) { doc_.value_locs_[pointer] = loc; }

  void parse_value(nlohmann::ordered_json& out, std::string& pointer, int depth) {
    SourceLoc start = here();
    record_value(pointer, start);
    char c = peek();
    switch (c) {
      case '{': parse_object(out, pointer, depth + 1); return;
      case '[': parse_array(out, pointer, depth + 1); return;
      case '"': out = parse_string(); return;
      case '-':
      case '0':
      case '1':
      case '2':
      case '3':
      case '4':
      case '5':
      case '6':
      case '7':
      case '8':
      case '9': out = parse_number(); return;
      default: break;
    }
    if (at_end()) fail(start, "unexpected end of input (expected a JSON value)");
    if (is_word_char(c)) {
      std::size_t end = pos_;
      while (end < text_.size() && is_word_char(text_[end])) ++end;
      std::string_view word = text_.substr(pos_, end - pos_);
      if (word == "true" || word == "false" || word == "null") {
        pos_ = end;
        if (word == "true") {
          out = true;
        } else if (word == "false") {
          out = false;
        } else {
          out = nullptr;
        }
        return;
      }
      if (word == "NaN" || word == "Infinity") fail(start, "NaN and Infinity are not valid JSON numbers");
      std::string shown(word.substr(0, 32));
      if (word.size() > 32) shown += "...";
      fail(start, "invalid literal '" + shown + "' (expected a value; strings must be double-quoted)");
    }
    if (c == '\'') fail(start, "strings must use double quotes");
    if (c == '+') fail(start, "numbers must not start with '+'");
    if (c == '.') fail(start, "numbers must have a digit before the decimal point");
    if (c == ']' || c == '}') fail(start, std::string("expected a JSON value before '") + c + "'");
    if (c == ',') fail(start, "expected a JSON value before ','");
    if (static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x7F) {
      fail_expected(start, std::string("unexpected character '") + c + "' (expected a JSON value)");
    }
    fail(start, "unexpected byte " + hex_byte(static_cast<unsigned char>(c)) + " (expected a JSON value)");
  }

  void check_depth(int depth, SourceLoc loc) const {
    if (depth > JsonDocument::kMaxDepth) {
      fail(loc, "nesting too deep (maximum depth is " + std::to_string(JsonDocument::kMaxDepth) + ")");
    }
  }

  void parse_object(nlohmann::ordered_json& out, std::string& pointer, int depth) {
    check_depth(depth, here());
    out = nlohmann::ordered_json::object();
    // ordered_map::emplace does a linear search per insert, which would make
    // large objects quadratic (a fuzzing hazard). Duplicates are detected via
    // the key-location map instead, so members can be appended directly to
    // the underlying vector.
    auto& members =
        static_cast<nlohmann::ordered_json::object_t::Container&>(out.get_ref<nlohmann::ordered_json::object_t&>());
    ++pos_;  // '{'
    skip_ws();
    if (peek() == '}') {
      ++pos_;
      return;
    }
    const std::size_t base = pointer.size();
    while (true) {
      // Here we are positioned at what must be a key.
      SourceLoc key_start = here();
      if (peek() != '"') {
        if (peek() == '\'') fail(key_start, "strings must use double quotes");
        if (is_word_char(peek())) fail(key_start, "object keys must be double-quoted strings");
        fail_expected(key_start, "expected string key for object member");
      }
      std::string key = parse_string();
      pointer += '/';
      pointer += json_pointer_escape(key);
      if (!doc_.key_locs_.emplace(pointer, key_start).second) {
        // The duplicate's pointer already names the first occurrence; keep
        // that one's locations rather than half-overwriting them.
        fail(key_start, "duplicate key '" + key + "'");
      }
      skip_ws();
      if (peek() != ':') fail_expected(here(), "expected ':' after object key");
      ++pos_;
      skip_ws();
      members.emplace_back(std::move(key), nullptr);
      parse_value(members.back().second, pointer, depth);
      pointer.resize(base);
      skip_ws();
      if (peek() == ',') {
        SourceLoc comma = here();
        ++pos_;
        skip_ws();
        if (peek() == '}') fail(comma, "trailing comma before '}'");
        continue;
      }
      if (peek() == '}') {
        ++pos_;
        return;
      }
      fail_expected(here(), "expected ',' or '}' after object member");
    }
  }

  void parse_array(nlohmann::ordered_json& out, std::string& pointer, int depth) {
    check_depth(depth, here());
    out = nlohmann::ordered_json::array();
    auto& elements = out.get_ref<nlohmann::ordered_json::array_t&>();
    ++pos_;  // '['
    skip_ws();
    if (peek() == ']') {
      ++pos_;
      return;
    }
    const std::size_t base = pointer.size();
    while (true) {
      pointer += '/';
      pointer += std::to_string(elements.size());
      elements.emplace_back();
      parse_value(elements.back(), pointer, depth);
      pointer.resize(base);
      skip_ws();
      if (peek() == ',') {
        SourceLoc comma = here();
        ++pos_;
        skip_ws();
        if (peek() == ']') fail(comma, "trailing comma before ']'");
        continue;
      }
      if (peek() == ']') {
        ++pos_;
        return;
      }
      fail_expected(here(), "expected ',' or ']' after array element");
    }
  }

  // Reads four hex digits at pos_; returns false if they are not there.
  bool read_hex4(std::uint32_t& value) {
    value = 0;
    for (int i = 0; i < 4; ++i) {
      char c = peek_at(pos_ + i);
      std::uint32_t d;
      if (c >= '0' && c <= '9') {
        d = c - '0';
      } else if (c >= 'a' && c <= 'f') {
        d = c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        d = c - 'A' + 10;
      } else {
        return false;
      }
      value = (value << 4) | d;
    }
    pos_ += 4;
    return true;
  }

  // Validates one UTF-8 sequence starting at pos_ (lead byte >= 0x80) and
  // appends it. Rejects overlong forms, surrogates and code points above
  // U+10FFFF, as RFC 3629 requires; nlohmann would otherwise throw later when
  // the value is dumped.
  void copy_utf8(std::string& out) {
    const auto lead = static_cast<unsigned char>(text_[pos_]);
    int len;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the 2nd byte
    if (lead >= 0xC2 && lead <= 0xDF) {
      len = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      len = 3;
      if (lead == 0xE0) lo = 0xA0;
      if (lead == 0xED) hi = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      len = 4;
      if (lead == 0xF0) lo = 0x90;
      if (lead == 0xF4) hi = 0x8F;
    } else {
      fail(here(), "invalid UTF-8 byte " + hex_byte(lead) + " in string");
    }
    for (int i = 1; i < len; ++i) {
      if (pos_ + i >= text_.size()) { fail(loc_at(pos_), "truncated UTF-8 sequence in string"); }
      const auto b = static_cast<unsigned char>(text_[pos_ + i]);
      const unsigned char min = i == 1 ? lo : 0x80;
      const unsigned char max = i == 1 ? hi : 0xBF;
      if (b < min || b > max) { fail(loc_at(pos_), "invalid UTF-8 sequence in string"); }
    }
    out.append(text_.data() + pos_, len);
    pos_ += len;
  }

  std::string parse_string() {
    const SourceLoc open = here();
    ++pos_;  // opening quote
    std::string out;
    while (true) {
      if (at_end()) fail(open, "unterminated string");
      const char c = text_[pos_];
      const auto uc = static_cast<unsigned char>(c);
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c == '\n' || c == '\r') {
        // JSON strings cannot span lines, so a raw newline almost always
        // means the closing quote is missing; point at the opening one.
        fail(open, "unterminated string");
      }
      if (uc < 0x20) { fail(here(), "control character " + hex_byte(uc) + " must be escaped in string"); }
      if (uc >= 0x80) {
        copy_utf8(out);
        continue;
      }
      if (c != '\\') {
        // Copy a run of plain characters at once; strings dominate input.
        std::size_t end = pos_ + 1;
        while (end < text_.size()) {
          const auto e = static_cast<unsigned char>(text_[end]);
          if (e == '"' || e == '\\' || e < 0x20 || e >= 0x80) break;
          ++end;
        }
        out.append(text_.data() + pos_, end - pos_);
        pos_ = end;
        continue;
      }
      const SourceLoc esc = here();
      ++pos_;  // backslash
      if (at_end()) fail(open, "unterminated string");
      const char e = text_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          std::uint32_t cp;
          if (!read_hex4(cp)) fail(esc, "invalid \\u escape (expected 4 hex digits)");
          if (cp >= 0xDC00 && cp <= 0xDFFF) fail(esc, "unpaired low surrogate in \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            std::uint32_t low;
            if (peek() != '\\' || peek_at(pos_ + 1) != 'u') { fail(esc, "unpaired high surrogate in \\u escape"); }
            const SourceLoc low_esc = here();
            pos_ += 2;
            if (!read_hex4(low)) fail(low_esc, "invalid \\u escape (expected 4 hex digits)");
            if (low < 0xDC00 || low > 0xDFFF) fail(esc, "unpaired high surrogate in \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default: {
          const auto ue = static_cast<unsigned char>(e);
          if (ue >= 0x20 && ue < 0x7F) { fail(esc, std::string("invalid escape sequence '\\") + e + "'"); }
          fail(esc, "invalid escape sequence (backslash followed by byte " + hex_byte(ue) + ")");
        }
      }
    }
  }

  nlohmann::ordered_json parse_number() {
    const SourceLoc start = here();
    const std::size_t begin = pos_;
    const bool negative = peek() == '-';
    if (negative) ++pos_;
    if (!is_digit(peek())) { fail_expected(here(), "expected digit after '-'"); }
    const std::size_t int_begin = pos_;
    if (peek() == '0') {
      ++pos_;
      if (is_digit(peek())) { fail(start, "leading zeros are not allowed in numbers"); }
    } else {
      while (is_digit(peek())) ++pos_;
    }
    const std::size_t int_end = pos_;
    bool integral = true;
    std::size_t frac_begin = pos_, frac_end = pos_;
    if (peek() == '.') {
      integral = false;
      ++pos_;
      if (!is_digit(peek())) { fail_expected(here(), "expected digit after decimal point"); }
      frac_begin = pos_;
      while (is_digit(peek())) ++pos_;
      frac_end = pos_;
    }
    long long exponent = 0;
    if (peek() == 'e' || peek() == 'E') {
      integral = false;
      ++pos_;
      bool exp_negative = false;
      if (peek() == '+' || peek() == '-') {
        exp_negative = peek() == '-';
        ++pos_;
      }
      if (!is_digit(peek())) { fail_expected(here(), "expected digit in exponent"); }
      while (is_digit(peek())) {
        // Saturate: only the sign and rough size matter for range checks.
        if (exponent < 1000000000) exponent = exponent * 10 + (peek() - '0');
        ++pos_;
      }
      if (exp_negative) exponent = -exponent;
    }
    const char* first = text_.data() + begin;
    const char* last = text_.data() + pos_;

    if (integral) {
      if (negative) {
        std::int64_t v = 0;
        auto r = std::from_chars(first, last, v);
        if (r.ec == std::errc() && r.ptr == last) { return nlohmann::ordered_json(static_cast<std::int64_t>(v)); }
      } else {
        std::uint64_t v = 0;
        auto r = std::from_chars(first, last, v);
        if (r.ec == std::errc() && r.ptr == last) { return nlohmann::ordered_json(static_cast<std::uint64_t>(v)); }
      }
      // Too large for 64 bits: fall through to a double, as nlohmann does.
    }

    // std::from_chars is used rather than strtod because it ignores the
    // process locale (a "," decimal separator would otherwise break parsing).
    double d = 0.0;
    auto r = std::from_chars(first, last, d);
    if (r.ec == std::errc() && r.ptr == last) { return nlohmann::ordered_json(d); }
    if (r.ec == std::errc::result_out_of_range) {
      // Decide between overflow and underflow from the decimal magnitude:
      // position of the first significant digit relative to the point, plus
      // the exponent.
      long long magnitude;
      bool int_is_zero = int_end - int_begin == 1 && text_[int_begin] == '0';
      if (!int_is_zero) {
        magnitude = static_cast<long long>(int_end - int_begin);
      } else {
        std::size_t p = frac_begin;
        while (p < frac_end && text_[p] == '0') ++p;
        magnitude = -static_cast<long long>(p - frac_begin);
      }
      magnitude += exponent;
      if (magnitude > 0) { fail(start, "number out of range for a double"); }
      return nlohmann::ordered_json(negative ? -0.0 : 0.0);
    }
    fail(start, "invalid number");
  }

  std::string_view text_;
  JsonDocument& doc_;
  std::size_t pos_ = 0;
  int line_ = 1;
  std::size_t line_start_ = 0;
};

JsonDocument JsonDocument::parse(std::string_view text, std::string file_name) {
  JsonDocument doc;
  doc.file_ = std::move(file_name);
  JsonTextParser(text, doc).run();
  return doc;
}

namespace {

// The whole of file `path` into `text`: 0, or the errno of the failure.
// stdio rather than ifstream so that errno is meaningful (e.g. EISDIR when
// reading a directory, which ifstream would report as an empty file or
// throw from its buffer).
int read_all(const std::string& path, std::string& text) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return errno;
  char buf[65536];
  while (true) {
    std::size_t n = std::fread(buf, 1, sizeof buf, f);
    text.append(buf, n);
    if (n < sizeof buf) {
      if (std::ferror(f)) {
        int err = errno;
        std::fclose(f);
        return err != 0 ? err : EIO;
      }
      break;
    }
  }
  std::fclose(f);
  return 0;
}

}  // namespace

std::string read_text_file(const std::string& path, const std::string& display, const std::string& what) {
  std::string text;
  if (int err = read_all(path, text)) throw Error(display + ": cannot open " + what + ": " + std::strerror(err));
  return text;
}

JsonDocument JsonDocument::load(const std::string& path, std::string display_name) {
  if (display_name.empty()) display_name = path;
  std::string text;
  if (int err = read_all(path, text))
    throw JsonSyntaxError(display_name, SourceLoc{}, std::string("cannot read file: ") + std::strerror(err));
  return parse(text, std::move(display_name));
}

SourceLoc JsonDocument::loc(const std::string& pointer) const {
  std::string p = pointer;
  while (true) {
    auto it = value_locs_.find(p);
    if (it != value_locs_.end()) return it->second;
    if (p.empty()) return SourceLoc{};
    auto slash = p.rfind('/');
    p.resize(slash == std::string::npos ? 0 : slash);
  }
}

SourceLoc JsonDocument::key_loc(const std::string& pointer) const {
  auto it = key_locs_.find(pointer);
  if (it != key_locs_.end()) return it->second;
  return loc(pointer);
}

std::string JsonDocument::where(const std::string& pointer, const std::string& msg) const {
  return format_error(file_, loc(pointer), msg);
}

std::string JsonDocument::where_key(const std::string& pointer, const std::string& msg) const {
  return format_error(file_, key_loc(pointer), msg);
}

}  // namespace ppc
