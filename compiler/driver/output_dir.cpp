// The last pass of `ppc split`: the output directory, written into a
// temporary sibling and swapped in, so that a failure at any point leaves
// the previous output (or nothing) in place.
#include <filesystem>
#include <random>
#include <regex>

#include "compiler/driver/passes.h"
#include "schemas/error.h"

namespace fs = std::filesystem;

namespace ppc::driver {

namespace {

// Only replace an existing out/ that looks like one ppc wrote.
void check_replaceable(const fs::path& out) {
  std::error_code ec;
  if (!fs::exists(out, ec)) return;
  if (!fs::is_directory(out, ec)) throw Error(out.string() + ": exists and is not a directory");
  static const std::regex kOurs(R"(manifest\.json|stage[0-9]+\.(onnx|pt|pt2|onnx\.data))");
  for (const auto& e : fs::directory_iterator(out)) {
    std::string name = e.path().filename().string();
    if (!std::regex_match(name, kOurs))
      throw Error(out.string() + ": exists and holds '" + name +
                  "', which ppc did not write; refusing to replace it (choose another -o or remove it)");
  }
}

fs::path make_temp_dir(const fs::path& out) {
  fs::path parent = out.parent_path().empty() ? fs::path(".") : out.parent_path();
  std::error_code ec;
  // Like `mkdir -p`: everything before this point succeeded, so the only
  // thing a later failure can leave behind is an empty parent directory.
  fs::create_directories(parent, ec);
  if (!fs::is_directory(parent, ec))
    throw Error(out.string() + ": cannot create parent directory '" + parent.string() + "'");
  std::random_device rd;
  for (int attempt = 0; attempt < 100; ++attempt) {
    fs::path tmp = parent / ("." + out.filename().string() + ".ppc-tmp-" + std::to_string(rd() % 1000000));
    if (fs::create_directory(tmp, ec)) return tmp;
  }
  throw Error(out.string() + ": cannot create a temporary directory next to it");
}

}  // namespace

void write_atomically(const std::string& out_dir, const std::function<void(const std::string& tmp)>& write) {
  const fs::path outp = fs::path(out_dir).lexically_normal();
  if (outp.empty() || outp == "." || outp == "..") throw Error("-o: give a directory name to create");
  check_replaceable(outp);
  fs::path tmp = make_temp_dir(outp);
  try {
    write(tmp.string());
    std::error_code ec;
    fs::path old;
    if (fs::exists(outp, ec)) {
      old = tmp.string() + "-old";
      fs::rename(outp, old);
    }
    fs::rename(tmp, outp);
    if (!old.empty()) fs::remove_all(old, ec);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
}

}  // namespace ppc::driver
