#include "schemas/error.h"

#include <exception>
#include <ostream>

namespace ppc {

int report_exception(const char* tool, std::ostream& err) noexcept {
  try {
    throw;
  } catch (const Error& e) {
    err << tool << ": error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    // Library messages (c10::Error) carry backtraces after the first line.
    std::string what = e.what();
    err << tool << ": internal error: " << what.substr(0, what.find('\n')) << "\n";
    return 1;
  } catch (...) {
    err << tool << ": internal error: an exception of unknown type\n";
    return 1;
  }
}

}  // namespace ppc
