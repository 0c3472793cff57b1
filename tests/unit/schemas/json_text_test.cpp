#include "schemas/json_text.h"

#include <cstdio>
#include <fstream>
#include <string>
#include <unistd.h>

#include <gtest/gtest.h>

namespace ppc {
namespace {

using nlohmann::ordered_json;

// Parses `text` expecting failure; returns the error.
JsonSyntaxError parse_error(std::string_view text) {
  try {
    JsonDocument::parse(text, "spec.json");
  } catch (const JsonSyntaxError& e) { return e; }
  ADD_FAILURE() << "expected a JsonSyntaxError for: " << text;
  return JsonSyntaxError("", SourceLoc{}, "no error");
}

std::string error_text(std::string_view text) { return parse_error(text).what(); }

// ---------------------------------------------------------------- values

TEST(JsonText, ParsesScalars) {
  EXPECT_EQ(JsonDocument::parse("true", "f").root(), ordered_json(true));
  EXPECT_EQ(JsonDocument::parse("false", "f").root(), ordered_json(false));
  EXPECT_TRUE(JsonDocument::parse("null", "f").root().is_null());
  EXPECT_EQ(JsonDocument::parse("\"hi\"", "f").root(), ordered_json("hi"));
  EXPECT_EQ(JsonDocument::parse("  \t\r\n 42 \n", "f").root(), ordered_json(42));
}

TEST(JsonText, IntegersStayIntegers) {
  auto pos = JsonDocument::parse("18446744073709551615", "f").root();
  EXPECT_TRUE(pos.is_number_unsigned());
  EXPECT_EQ(pos.get<std::uint64_t>(), 18446744073709551615ull);

  auto neg = JsonDocument::parse("-9223372036854775808", "f").root();
  EXPECT_TRUE(neg.is_number_integer());
  EXPECT_FALSE(neg.is_number_unsigned());
  EXPECT_EQ(neg.get<std::int64_t>(), INT64_MIN);

  auto zero = JsonDocument::parse("0", "f").root();
  EXPECT_TRUE(zero.is_number_unsigned());
  EXPECT_EQ(zero.get<int>(), 0);

  auto m = JsonDocument::parse("-7", "f").root();
  EXPECT_TRUE(m.is_number_integer());
  EXPECT_EQ(m.get<int>(), -7);
}

TEST(JsonText, OversizedIntegersBecomeDoubles) {
  auto big = JsonDocument::parse("18446744073709551616", "f").root();
  EXPECT_TRUE(big.is_number_float());
  EXPECT_DOUBLE_EQ(big.get<double>(), 18446744073709551616.0);
  auto small = JsonDocument::parse("-9223372036854775809", "f").root();
  EXPECT_TRUE(small.is_number_float());
}

TEST(JsonText, ParsesFloats) {
  EXPECT_TRUE(JsonDocument::parse("1.0", "f").root().is_number_float());
  EXPECT_DOUBLE_EQ(JsonDocument::parse("1.5", "f").root().get<double>(), 1.5);
  EXPECT_DOUBLE_EQ(JsonDocument::parse("-0.25", "f").root().get<double>(), -0.25);
  EXPECT_DOUBLE_EQ(JsonDocument::parse("1e3", "f").root().get<double>(), 1000.0);
  EXPECT_TRUE(JsonDocument::parse("1e3", "f").root().is_number_float());
  EXPECT_DOUBLE_EQ(JsonDocument::parse("2.5E-2", "f").root().get<double>(), 0.025);
  EXPECT_DOUBLE_EQ(JsonDocument::parse("1E+2", "f").root().get<double>(), 100.0);
  // Underflow rounds to zero; overflow is an error.
  EXPECT_EQ(JsonDocument::parse("1e-400", "f").root().get<double>(), 0.0);
  EXPECT_EQ(JsonDocument::parse("0.0000001e-399", "f").root().get<double>(), 0.0);
  EXPECT_EQ(error_text("1e400"), "spec.json:1:1: number out of range for a double");
  EXPECT_EQ(error_text("[-1.5e999]"), "spec.json:1:2: number out of range for a double");
}

TEST(JsonText, ParsesContainersAndKeepsKeyOrder) {
  auto doc = JsonDocument::parse(R"({"z": 1, "a": [1, 2, {"b": null}], "m": {}})", "f");
  const auto& r = doc.root();
  ASSERT_TRUE(r.is_object());
  std::vector<std::string> keys;
  for (auto it = r.begin(); it != r.end(); ++it) keys.push_back(it.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"z", "a", "m"}));
  EXPECT_EQ(r["a"].size(), 3u);
  EXPECT_TRUE(r["a"][2]["b"].is_null());
  EXPECT_TRUE(r["m"].is_object());
  EXPECT_TRUE(r["m"].empty());
  EXPECT_TRUE(JsonDocument::parse("[]", "f").root().is_array());
  EXPECT_TRUE(JsonDocument::parse("[ ]", "f").root().empty());
  EXPECT_TRUE(JsonDocument::parse("{ \n }", "f").root().is_object());
  // Keys are found by the normal nlohmann lookup afterwards.
  EXPECT_EQ(r.at("z"), 1);
}

TEST(JsonText, MatchesNlohmannOnValidDocument) {
  const char* text = R"({
    "name": "resnet",
    "split_points": [{"module": "layer1.0.conv1", "rank": 0}, {"module": "fc", "rank": 1}],
    "opts": {"lr": 0.001, "neg": -3, "big": 12345678901234, "flag": true, "none": null},
    "unicode": "caf\u00e9 \ud83d\ude00 \u0000x",
    "raw": "naïve ☃ 😀"
  })";
  auto ours = JsonDocument::parse(text, "f").root();
  auto theirs = ordered_json::parse(text);
  EXPECT_EQ(ours, theirs);
  EXPECT_EQ(ours.dump(), theirs.dump());
}

TEST(JsonText, StringEscapes) {
  auto s = JsonDocument::parse(R"("a\"b\\c\/d\be\ff\ng\rh\ti")", "f").root().get<std::string>();
  EXPECT_EQ(s, "a\"b\\c/d\be\ff\ng\rh\ti");
  EXPECT_EQ(JsonDocument::parse(R"("\u0041\u00e9\u20AC")", "f").root().get<std::string>(), "A\xC3\xA9\xE2\x82\xAC");
  // Surrogate pair -> one 4-byte UTF-8 sequence (U+1F600).
  EXPECT_EQ(JsonDocument::parse(R"("\uD83D\uDE00")", "f").root().get<std::string>(), "\xF0\x9F\x98\x80");
  // U+10FFFF, the largest code point.
  EXPECT_EQ(JsonDocument::parse(R"("\uDBFF\uDFFF")", "f").root().get<std::string>(), "\xF4\x8F\xBF\xBF");
  auto nul = JsonDocument::parse(R"("a\u0000b")", "f").root().get<std::string>();
  EXPECT_EQ(nul, std::string("a\0b", 3));
}

TEST(JsonText, AcceptsValidRawUtf8AndBom) {
  EXPECT_EQ(JsonDocument::parse("\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\"", "f").root().get<std::string>(),
            "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
  auto doc = JsonDocument::parse("\xEF\xBB\xBF{\"a\": 1}", "f");
  EXPECT_EQ(doc.root()["a"], 1);
  EXPECT_EQ(doc.loc("/a").column, 7);  // BOM is not counted
}

// ---------------------------------------------------------------- locations

TEST(JsonText, LocationsByPointer) {
  const char* text =
      "{\n"                              // 1
      "  \"name\": \"net\",\n"           // 2
      "  \"split_points\": [\n"          // 3
      "    {\"module\": \"layer1\"},\n"  // 4
      "    {\"module\":   7}\n"          // 5
      "  ],\n"                           // 6
      "\t\"a/b\": {\"~x\": true}\n"      // 7
      "}\n";
  auto doc = JsonDocument::parse(text, "spec.json");
  EXPECT_EQ(doc.loc(""), (SourceLoc{1, 1}));
  EXPECT_EQ(doc.loc("/name"), (SourceLoc{2, 11}));
  EXPECT_EQ(doc.key_loc("/name"), (SourceLoc{2, 3}));
  EXPECT_EQ(doc.loc("/split_points"), (SourceLoc{3, 19}));
  EXPECT_EQ(doc.key_loc("/split_points"), (SourceLoc{3, 3}));
  EXPECT_EQ(doc.loc("/split_points/0"), (SourceLoc{4, 5}));
  EXPECT_EQ(doc.loc("/split_points/0/module"), (SourceLoc{4, 16}));
  EXPECT_EQ(doc.key_loc("/split_points/0/module"), (SourceLoc{4, 6}));
  EXPECT_EQ(doc.loc("/split_points/1/module"), (SourceLoc{5, 18}));
  // Tabs count as one column; keys with '/' and '~' are escaped.
  EXPECT_EQ(doc.key_loc("/a~1b"), (SourceLoc{7, 2}));
  EXPECT_EQ(doc.loc("/a~1b"), (SourceLoc{7, 9}));
  EXPECT_EQ(doc.key_loc("/a~1b/~0x"), (SourceLoc{7, 10}));
  EXPECT_EQ(doc.loc("/a~1b/~0x"), (SourceLoc{7, 16}));
}

TEST(JsonText, LocationFallbacks) {
  auto doc = JsonDocument::parse("{\n  \"opts\": {\n    \"x\": [1, 2]\n  }\n}", "spec.json");
  // Missing members fall back to the nearest enclosing value.
  EXPECT_EQ(doc.loc("/opts/missing"), (SourceLoc{2, 11}));
  EXPECT_EQ(doc.loc("/opts/x/5/deeper"), (SourceLoc{3, 10}));
  EXPECT_EQ(doc.loc("/nope"), (SourceLoc{1, 1}));
  // key_loc falls back to loc for array elements and the root.
  EXPECT_EQ(doc.key_loc("/opts/x/1"), (SourceLoc{3, 14}));
  EXPECT_EQ(doc.key_loc(""), (SourceLoc{1, 1}));
  EXPECT_EQ(doc.key_loc("/opts/missing"), (SourceLoc{2, 11}));
}

TEST(JsonText, WhereFormatsMessages) {
  auto doc = JsonDocument::parse("{\n  \"rank\": -1\n}", "spec.json");
  EXPECT_EQ(doc.file(), "spec.json");
  EXPECT_EQ(doc.where("/rank", "rank must be non-negative"), "spec.json:2:11: rank must be non-negative");
  EXPECT_EQ(doc.where_key("/rank", "unknown key 'rank'"), "spec.json:2:3: unknown key 'rank'");
  EXPECT_EQ(doc.where("", "bad root"), "spec.json:1:1: bad root");
  JsonDocument empty;
  EXPECT_EQ(empty.where("/x", "no location"), ": no location");
}

TEST(JsonText, JsonPointerEscape) {
  EXPECT_EQ(json_pointer_escape("plain"), "plain");
  EXPECT_EQ(json_pointer_escape("a/b"), "a~1b");
  EXPECT_EQ(json_pointer_escape("~"), "~0");
  EXPECT_EQ(json_pointer_escape("~/~1"), "~0~1~01");
  EXPECT_EQ(json_pointer_escape(""), "");
}

// ---------------------------------------------------------------- errors

TEST(JsonText, ErrorMissingCommaOnLine3) {
  auto e = parse_error("{\n  \"a\": 1,\n  \"b\": 2 \"c\": 3\n}");
  EXPECT_EQ(std::string(e.what()), "spec.json:3:10: expected ',' or '}' after object member");
  EXPECT_EQ(e.file(), "spec.json");
  EXPECT_EQ(e.loc(), (SourceLoc{3, 10}));
  EXPECT_EQ(e.problem(), "expected ',' or '}' after object member");
}

TEST(JsonText, ErrorMissingCommaBetweenLines) {
  EXPECT_EQ(error_text("{\n  \"a\": 1\n  \"b\": 2\n}"), "spec.json:3:3: expected ',' or '}' after object member");
  EXPECT_EQ(error_text("[1,\n 2\n 3]"), "spec.json:3:2: expected ',' or ']' after array element");
}

TEST(JsonText, ErrorUnterminatedString) {
  EXPECT_EQ(error_text("{\"a\": \"abc"), "spec.json:1:7: unterminated string");
  EXPECT_EQ(error_text("{\n  \"a\": \"abc\n}"), "spec.json:2:8: unterminated string");
  EXPECT_EQ(error_text("\"abc\\"), "spec.json:1:1: unterminated string");
  EXPECT_EQ(error_text("\""), "spec.json:1:1: unterminated string");
}

TEST(JsonText, ErrorTrailingComma) {
  EXPECT_EQ(error_text("[1, 2,]"), "spec.json:1:6: trailing comma before ']'");
  EXPECT_EQ(error_text("{\n  \"a\": 1,\n}"), "spec.json:2:9: trailing comma before '}'");
  EXPECT_EQ(error_text("[,1]"), "spec.json:1:2: expected a JSON value before ','");
  EXPECT_EQ(error_text("[1,,2]"), "spec.json:1:4: expected a JSON value before ','");
  EXPECT_EQ(error_text("{,}"), "spec.json:1:2: expected string key for object member");
}

TEST(JsonText, ErrorDuplicateKey) {
  auto e = parse_error("{\n  \"a\": 1,\n  \"b\": {\"x\": 1, \"x\": 2}\n}");
  EXPECT_EQ(std::string(e.what()), "spec.json:3:17: duplicate key 'x'");
  EXPECT_EQ(error_text("{\"a\": 1, \"a\": 1}"), "spec.json:1:10: duplicate key 'a'");
  // Same key in different objects is fine.
  EXPECT_NO_THROW(JsonDocument::parse(R"({"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}]})", "f"));
  // Escaped spelling of the same key is still a duplicate.
  EXPECT_EQ(error_text(R"({"a": 1, "\u0061": 2})"), "spec.json:1:10: duplicate key 'a'");
}

TEST(JsonText, ErrorComments) {
  EXPECT_EQ(error_text("{\n  // hi\n  \"a\": 1}"), "spec.json:2:3: comments are not allowed in JSON");
  EXPECT_EQ(error_text("[1 /* x */]"), "spec.json:1:4: comments are not allowed in JSON");
  EXPECT_EQ(error_text("1 // x"), "spec.json:1:3: comments are not allowed in JSON");
  EXPECT_EQ(error_text("[/*x*/1]"), "spec.json:1:2: comments are not allowed in JSON");
}

TEST(JsonText, ErrorNumbers) {
  EXPECT_EQ(error_text("[01]"), "spec.json:1:2: leading zeros are not allowed in numbers");
  EXPECT_EQ(error_text("-00"), "spec.json:1:1: leading zeros are not allowed in numbers");
  EXPECT_EQ(error_text("-"), "spec.json:1:2: unexpected end of input (expected digit after '-')");
  EXPECT_EQ(error_text("-x"), "spec.json:1:2: expected digit after '-'");
  EXPECT_EQ(error_text("1."), "spec.json:1:3: unexpected end of input (expected digit after decimal point)");
  EXPECT_EQ(error_text("1.e5"), "spec.json:1:3: expected digit after decimal point");
  EXPECT_EQ(error_text("1e"), "spec.json:1:3: unexpected end of input (expected digit in exponent)");
  EXPECT_EQ(error_text("1e+"), "spec.json:1:4: unexpected end of input (expected digit in exponent)");
  EXPECT_EQ(error_text("+1"), "spec.json:1:1: numbers must not start with '+'");
  EXPECT_EQ(error_text(".5"), "spec.json:1:1: numbers must have a digit before the decimal point");
  EXPECT_EQ(error_text("NaN"), "spec.json:1:1: NaN and Infinity are not valid JSON numbers");
  EXPECT_EQ(error_text("[Infinity]"), "spec.json:1:2: NaN and Infinity are not valid JSON numbers");
  EXPECT_EQ(error_text("0x10"), "spec.json:1:2: unexpected trailing characters after JSON value");
}

TEST(JsonText, ErrorLiteralsAndKeys) {
  EXPECT_EQ(error_text("tru"),
            "spec.json:1:1: invalid literal 'tru' (expected a value; strings must be double-quoted)");
  EXPECT_EQ(error_text("[True]"),
            "spec.json:1:2: invalid literal 'True' (expected a value; strings must be double-quoted)");
  EXPECT_EQ(error_text("nulls"),
            "spec.json:1:1: invalid literal 'nulls' (expected a value; strings must be double-quoted)");
  EXPECT_EQ(error_text("{a: 1}"), "spec.json:1:2: object keys must be double-quoted strings");
  EXPECT_EQ(error_text("{'a': 1}"), "spec.json:1:2: strings must use double quotes");
  EXPECT_EQ(error_text("['a']"), "spec.json:1:2: strings must use double quotes");
  EXPECT_EQ(error_text("{\"a\" 1}"), "spec.json:1:6: expected ':' after object key");
  EXPECT_EQ(error_text("{\"a\":}"), "spec.json:1:6: expected a JSON value before '}'");
  EXPECT_EQ(error_text("[1}"), "spec.json:1:3: expected ',' or ']' after array element");
  EXPECT_EQ(error_text("{\"a\":1]"), "spec.json:1:7: expected ',' or '}' after object member");
  EXPECT_EQ(error_text("[@]"), "spec.json:1:2: unexpected character '@' (expected a JSON value)");
  EXPECT_EQ(error_text("[\x01]"), "spec.json:1:2: unexpected byte 0x01 (expected a JSON value)");
}

TEST(JsonText, ErrorTrailingGarbage) {
  EXPECT_EQ(error_text("{} x"), "spec.json:1:4: unexpected trailing characters after JSON value");
  EXPECT_EQ(error_text("1 2"), "spec.json:1:3: unexpected trailing characters after JSON value");
  EXPECT_EQ(error_text("[]\n\n]"), "spec.json:3:1: unexpected trailing characters after JSON value");
  EXPECT_EQ(error_text(std::string("1\0", 2)), "spec.json:1:2: unexpected trailing characters after JSON value");
}

TEST(JsonText, ErrorEmptyAndTruncatedInput) {
  EXPECT_EQ(error_text(""), "spec.json:1:1: unexpected end of input (expected a JSON value)");
  EXPECT_EQ(error_text("  \n  "), "spec.json:2:3: unexpected end of input (expected a JSON value)");
  EXPECT_EQ(error_text("{"), "spec.json:1:2: unexpected end of input (expected string key for object member)");
  EXPECT_EQ(error_text("{\"a\""), "spec.json:1:5: unexpected end of input (expected ':' after object key)");
  EXPECT_EQ(error_text("{\"a\":"), "spec.json:1:6: unexpected end of input (expected a JSON value)");
  EXPECT_EQ(error_text("{\"a\":1"), "spec.json:1:7: unexpected end of input (expected ',' or '}' after object member)");
  EXPECT_EQ(error_text("[1,"), "spec.json:1:4: unexpected end of input (expected a JSON value)");
  EXPECT_EQ(error_text("[\n"), "spec.json:2:1: unexpected end of input (expected a JSON value)");
  // Every prefix of a valid document either parses or throws cleanly.
  const std::string full = R"({"a": [1, -2.5e3, "x\u00e9\uD83D\uDE00y", true, false, null], "b": {"c": "\u00e9"}})";
  for (std::size_t n = 0; n < full.size(); ++n) {
    EXPECT_THROW(JsonDocument::parse(std::string_view(full.data(), n), "f"), JsonSyntaxError) << n;
  }
  EXPECT_NO_THROW(JsonDocument::parse(full, "f"));
}

TEST(JsonText, ErrorStringContents) {
  EXPECT_EQ(error_text("\"a\tb\""), "spec.json:1:3: control character 0x09 must be escaped in string");
  EXPECT_EQ(error_text(std::string("\"a\0b\"", 5)), "spec.json:1:3: control character 0x00 must be escaped in string");
  EXPECT_EQ(error_text(R"("a\x")"), "spec.json:1:3: invalid escape sequence '\\x'");
  EXPECT_EQ(error_text(R"("a\u12G4")"), "spec.json:1:3: invalid \\u escape (expected 4 hex digits)");
  EXPECT_EQ(error_text(R"("\u12")"), "spec.json:1:2: invalid \\u escape (expected 4 hex digits)");
  EXPECT_EQ(error_text(R"("\uD800")"), "spec.json:1:2: unpaired high surrogate in \\u escape");
  EXPECT_EQ(error_text(R"("\uD800\n")"), "spec.json:1:2: unpaired high surrogate in \\u escape");
  EXPECT_EQ(error_text(R"("\uD800\u0041")"), "spec.json:1:2: unpaired high surrogate in \\u escape");
  EXPECT_EQ(error_text(R"("\uD800\u00")"), "spec.json:1:8: invalid \\u escape (expected 4 hex digits)");
  EXPECT_EQ(error_text(R"("\uDC00")"), "spec.json:1:2: unpaired low surrogate in \\u escape");
}

TEST(JsonText, ErrorInvalidUtf8) {
  EXPECT_EQ(error_text("\"a\xFF\""), "spec.json:1:3: invalid UTF-8 byte 0xFF in string");
  EXPECT_EQ(error_text("\"\x80\""), "spec.json:1:2: invalid UTF-8 byte 0x80 in string");
  EXPECT_EQ(error_text("\"\xC0\xAF\""), "spec.json:1:2: invalid UTF-8 byte 0xC0 in string");         // overlong
  EXPECT_EQ(error_text("\"\xE0\x80\xAF\""), "spec.json:1:2: invalid UTF-8 sequence in string");      // overlong
  EXPECT_EQ(error_text("\"\xED\xA0\x80\""), "spec.json:1:2: invalid UTF-8 sequence in string");      // surrogate
  EXPECT_EQ(error_text("\"\xF4\x90\x80\x80\""), "spec.json:1:2: invalid UTF-8 sequence in string");  // > U+10FFFF
  EXPECT_EQ(error_text("\"\xC3\""), "spec.json:1:2: invalid UTF-8 sequence in string");
  EXPECT_EQ(error_text("\"\xE2\x82"), "spec.json:1:2: truncated UTF-8 sequence in string");
}

TEST(JsonText, DepthLimit) {
  const int max = JsonDocument::kMaxDepth;
  std::string ok = std::string(max, '[') + std::string(max, ']');
  EXPECT_NO_THROW(JsonDocument::parse(ok, "f"));
  std::string deep = std::string(max + 1, '[') + std::string(max + 1, ']');
  EXPECT_EQ(error_text(deep), "spec.json:1:257: nesting too deep (maximum depth is 256)");
  // Far deeper input must fail the same way, not overflow the stack.
  std::string huge(1000000, '[');
  EXPECT_EQ(parse_error(huge).problem(), "nesting too deep (maximum depth is 256)");
  std::string objs;
  for (int i = 0; i < 100000; ++i) objs += "{\"a\":";
  EXPECT_EQ(parse_error(objs).problem(), "nesting too deep (maximum depth is 256)");
  std::string mixed;
  for (int i = 0; i < max / 2; ++i) mixed += "{\"k\":[";
  mixed += "1";
  for (int i = 0; i < max / 2; ++i) mixed += "]}";
  auto doc = JsonDocument::parse(mixed, "f");
  EXPECT_EQ(doc.loc("/k/0/k/0").column, 13);
}

TEST(JsonText, LargeObjectIsNotQuadratic) {
  std::string text = "{";
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    if (i) text += ',';
    text += "\"k" + std::to_string(i) + "\":" + std::to_string(i);
  }
  text += "}";
  auto doc = JsonDocument::parse(text, "f");
  EXPECT_EQ(doc.root().size(), static_cast<std::size_t>(n));
  EXPECT_EQ(doc.root()["k199999"], 199999);
  EXPECT_EQ(doc.loc("/k0").column, 7);
}

// ---------------------------------------------------------------- load

TEST(JsonText, LoadReadsFile) {
  char path[] = "/tmp/ppc_json_text_XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  {
    std::ofstream out(path, std::ios::binary);
    out << "{\n  \"a\": [1,\n}\n";
  }
  try {
    JsonDocument::load(path, "model.json");
    ADD_FAILURE() << "expected error";
  } catch (const JsonSyntaxError& e) {
    EXPECT_EQ(std::string(e.what()), "model.json:3:1: expected a JSON value before '}'");
  }
  {
    std::ofstream out(path, std::ios::binary);
    out << "{\"a\": 1}";
  }
  auto doc = JsonDocument::load(path, "");
  EXPECT_EQ(doc.file(), path);  // display name defaults to the path
  EXPECT_EQ(doc.root()["a"], 1);
  std::remove(path);
}

TEST(JsonText, LoadReportsUnreadableFile) {
  try {
    JsonDocument::load("/nonexistent/dir/x.json", "x.json");
    ADD_FAILURE() << "expected error";
  } catch (const JsonSyntaxError& e) {
    EXPECT_EQ(std::string(e.what()), "x.json: cannot read file: No such file or directory");
    EXPECT_EQ(e.loc(), (SourceLoc{0, 0}));
    EXPECT_EQ(e.problem(), "cannot read file: No such file or directory");
  }
  try {
    JsonDocument::load("/tmp", "tmpdir");
    ADD_FAILURE() << "expected error";
  } catch (const JsonSyntaxError& e) { EXPECT_EQ(std::string(e.what()), "tmpdir: cannot read file: Is a directory"); }
}

}  // namespace
}  // namespace ppc
