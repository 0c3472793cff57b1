// The one error mechanism for bad user input, shared by ppc and pprun.
#pragma once

#include <stdexcept>
#include <string>

namespace ppc {

/// Bad input from the user (a file, a flag, a spec entry). The message is one
/// line in LLVM style, already carrying its place ("spec.json:3:7: unknown key
/// 'modul' (did you mean 'module'?)"). Mains print it and exit with code 2.
/// Anything else that escapes is a bug in this tool.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

/// Adds context on the way up: "ctx: inner message".
inline Error with_context(const std::string& ctx, const std::exception& inner) {
  return Error(ctx + ": " + inner.what());
}

}  // namespace ppc
