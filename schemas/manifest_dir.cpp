#include "schemas/manifest_dir.h"

#include <filesystem>

#include "schemas/error.h"
#include "schemas/sha256.h"

namespace fs = std::filesystem;

namespace ppc::manifest {

std::string LoadedManifest::artifact_path(int stage) const {
  return (fs::path(dir) / manifest.stages.at(stage).artifact).string();
}

LoadedManifest load_and_verify(const std::string& dir_or_file) {
  std::error_code ec;
  fs::path p(dir_or_file);
  fs::path file = fs::is_directory(p, ec) ? p / "manifest.json" : p;
  if (!fs::exists(file, ec))
    throw Error(file.string() + ": no such manifest (is '" + dir_or_file + "' a ppc output directory?)");
  LoadedManifest lm;
  lm.dir = file.parent_path().string();
  lm.manifest = load_manifest(file.string(), file.string());
  for (const auto& s : lm.manifest.stages) {
    std::string a = lm.artifact_path(s.index);
    if (!fs::exists(a, ec))
      throw Error(file.string() + ": stage " + std::to_string(s.index) + " artifact '" + s.artifact + "' is missing");
    if (s.sha256.empty()) throw Error(file.string() + ": stage " + std::to_string(s.index) + " has no sha256");
    if (sha256_file_hex(a) != s.sha256)
      throw Error(a + ": sha256 does not match the manifest (the artifact changed after ppc wrote it)");
    if (!s.data_file.empty()) {
      std::string d = (fs::path(lm.dir) / s.data_file).string();
      if (!fs::exists(d, ec))
        throw Error(file.string() + ": stage " + std::to_string(s.index) + " external data '" + s.data_file +
                    "' is missing");
      if (sha256_file_hex(d) != s.data_sha256)
        throw Error(d + ": sha256 does not match the manifest (the external data changed after ppc wrote it)");
    }
  }
  return lm;
}

}  // namespace ppc::manifest
