// The error policy of ppc and pprun, in one place.
//
// - ppc::Error is bad input from the user: a file, a flag, a spec entry, a
//   manifest or artifact, a peer started with other options. Its message is
//   one line in LLVM style that names the place ("spec.json:3:7: unknown key
//   'modul' (did you mean 'module'?)"). The tools print "TOOL: error: MSG" and
//   exit with code 2, leaving nothing half-written.
// - Exceptions of the libraries that judge user input (JSON syntax, protobuf
//   and ONNX parsing, c10::Error while loading a user's TorchScript archive,
//   the launcher's address lookup, the rendezvous environment) are converted
//   to ppc::Error at the seam where that input is read, with its place, never
//   later: the code that catches knows what the input was.
// - Everything else that escapes (std::logic_error for a broken invariant, a
//   library's exception on input ppc already validated) is a bug in the tool:
//   "TOOL: internal error: FIRST LINE", exit code 1.
// - A failed peer during a run (runtime::PeerError) names the rank and ends
//   the process with exit code 1 (runtime/app/pprun.cpp), since the others
//   cannot be waited on.
// report_exception() is the one place that maps an exception to the message
// and the exit code; both mains call it. The tests: ErrorPolicy.* (unit),
// bad_input and bad_options (every bad input exits 2 with one line, never
// "internal error").
#pragma once

#include <iosfwd>
#include <stdexcept>
#include <string>

namespace ppc {

/// Bad input from the user (see above). Mains print it and exit with code 2.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

/// Adds context on the way up: "ctx: inner message".
inline Error with_context(const std::string& ctx, const std::exception& inner) {
  return Error(ctx + ": " + inner.what());
}

/// Call inside a `catch (...)`: prints the exception being handled the way
/// the policy says, as `tool`, to `err`, and returns the exit code (2 for
/// ppc::Error, 1 for anything else).
int report_exception(const char* tool, std::ostream& err) noexcept;

}  // namespace ppc
