// Embeds the runtime: verifies a ppc output directory and prints the
// lowered 1F1B schedule of its ranks through run_pprun, as `pprun
// --print-schedule` would.
#include <iostream>

#include "runtime/app/pprun.h"
#include "schemas/error.h"
#include "schemas/manifest_dir.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: consumer PPC_OUTPUT_DIR\n";
    return 2;
  }
  try {
    ppc::manifest::LoadedManifest lm = ppc::manifest::load_and_verify(argv[1]);
    std::cout << "stages " << lm.manifest.stages.size() << "\n";
    ppc::runtime::PprunOptions o;
    o.manifest_dir = argv[1];
    o.print_schedule = true;
    o.engine.schedule = "1f1b";
    o.schedule_given = true;
    o.engine.chunks = 2;
    o.chunks_given = true;
    o.engine.train = true;
    return ppc::runtime::run_pprun(o, std::cout);
  } catch (...) { return ppc::report_exception("consumer", std::cerr); }
}
