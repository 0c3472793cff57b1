// Human-readable renderings of a manifest.
#pragma once

#include <string>

#include "schemas/manifest.h"

namespace ppc::driver {

/// Canonical text: every stage (artifact, nodes, modules, cost, I/O, params),
/// every edge and every tie group. Deterministic; used as a golden.
std::string render_text(const manifest::Manifest& m);

/// Graphviz: one cluster per stage, model inputs/outputs as nodes, each edge
/// drawn from producer to every consumer and labelled with value and shape.
std::string render_dot(const manifest::Manifest& m);

}  // namespace ppc::driver
