// A ppc output directory read back: manifest.json validated and every
// artifact checked against its sha256. Shared by `ppc inspect` and pprun,
// torch-free.
#pragma once

#include <string>

#include "schemas/manifest.h"

namespace ppc::manifest {

/// A manifest loaded from a ppc output directory.
struct LoadedManifest {
  std::string dir;  ///< the directory holding manifest.json
  Manifest manifest;
  /// Absolute-or-relative path of stage i's artifact (dir / artifact).
  std::string artifact_path(int stage) const;
};

/// Reads DIR/manifest.json (or the file itself when given), validates it
/// (schema version, structure) and checks every artifact exists and matches
/// its sha256. Throws ppc::Error naming the file and the problem.
LoadedManifest load_and_verify(const std::string& dir_or_file);

}  // namespace ppc::manifest
