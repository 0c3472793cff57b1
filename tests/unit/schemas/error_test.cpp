// The error policy (schemas/error.h): user errors exit 2 with one line, any
// other exception is a bug: "internal error", its first line only, exit 1.
#include <gtest/gtest.h>

#include <sstream>
#include <stdexcept>

#include "schemas/error.h"

namespace ppc {
namespace {

template <class F>
std::pair<int, std::string> report(F&& throw_it) {
  std::ostringstream err;
  try {
    throw_it();
  } catch (...) {
    int code = report_exception("tool", err);
    return {code, err.str()};
  }
  ADD_FAILURE() << "nothing thrown";
  return {-1, ""};
}

TEST(ErrorPolicy, UserErrorIsOneLineAndExitCode2) {
  auto [code, text] = report([] { throw Error("spec.json:3:7: unknown key 'modul' (did you mean 'module'?)"); });
  EXPECT_EQ(code, 2);
  EXPECT_EQ(text, "tool: error: spec.json:3:7: unknown key 'modul' (did you mean 'module'?)\n");
}

TEST(ErrorPolicy, ContextIsStillAUserError) {
  auto [code, text] = report([] { throw with_context("model.onnx", std::runtime_error("truncated")); });
  EXPECT_EQ(code, 2);
  EXPECT_EQ(text, "tool: error: model.onnx: truncated\n");
}

TEST(ErrorPolicy, AnythingElseIsABugWithItsFirstLine) {
  auto [code, text] =
      report([] { throw std::logic_error("partition verifier: node 3 in no stage\nbacktrace:\n#0 ..."); });
  EXPECT_EQ(code, 1);
  EXPECT_EQ(text, "tool: internal error: partition verifier: node 3 in no stage\n");
  auto [code2, text2] = report([] { throw std::runtime_error("library failure"); });
  EXPECT_EQ(code2, 1);
  EXPECT_EQ(text2, "tool: internal error: library failure\n");
}

TEST(ErrorPolicy, UnknownExceptionTypeIsABug) {
  auto [code, text] = report([] { throw 42; });
  EXPECT_EQ(code, 1);
  EXPECT_EQ(text, "tool: internal error: an exception of unknown type\n");
}

}  // namespace
}  // namespace ppc
