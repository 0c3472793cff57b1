// ppc: ahead-of-time pipeline splitter. Parses the command line, calls the driver.
#include <cerrno>
#include <cstdlib>
#include <CLI/CLI.hpp>

#include <iostream>

#include "compiler/driver/driver.h"
#include "schemas/error.h"

int main(int argc, char** argv) {
  CLI::App app{"ppc: split an exported PyTorch model into pipeline stages"};
  app.require_subcommand(1);

  ppc::driver::SplitOptions split;
  auto* s = app.add_subcommand("split", "partition a model into stage artifacts + manifest.json");
  s->add_option("model", split.model_path, "model file: ONNX (.onnx) or TorchScript (.pt)")->required();
  s->add_option("--splits", split.spec_path, "split spec (JSON)");
  s->add_option("--stages", split.stages,
                "automatic split into N balanced stages (instead of, or overriding, the spec)")
      ->check(CLI::Range(1, 100000));
  s->add_option("-o,--out", split.out_dir, "output directory (written atomically)");
  s->add_option("--balance", split.balance, "cost balanced by the automatic split: time | flops | params | uniform")
      ->check(CLI::IsMember({"time", "flops", "params", "uniform"}));
  s->add_option("--costs", split.costs_path, "measured stage times (pprun --profile) for balance 'time'");
  std::vector<std::string> dims;
  s->add_option("--dim", dims, "NAME=N: a symbolic input dim's size for the cost model (ONNX; repeatable)");
  s->add_option("--emit", split.emit,
                "stop after a phase and print it: ir | partition | manifest | balance (auto vs equal-params and "
                "uniform-layer splits, JSON)")
      ->check(CLI::IsMember({"ir", "partition", "manifest", "balance"}));

  ppc::driver::InspectOptions insp;
  auto* i = app.add_subcommand("inspect", "describe a split: stages, edges, ties");
  i->add_option("dir", insp.dir, "ppc output directory (or its manifest.json)")->required();
  i->add_flag("--dot", insp.dot, "print Graphviz instead of text");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::cerr << "ppc: error: " << e.what() << "\n";
    return 2;
  }
  try {
    for (const auto& d : dims) {
      auto eq = d.find('=');
      // The whole of N must be a number ("12abc" is not 12), as pprun reads it.
      char* end = nullptr;
      errno = 0;
      long long v = eq == std::string::npos ? 0 : std::strtoll(d.c_str() + eq + 1, &end, 10);
      if (eq == std::string::npos || eq == 0 || end == d.c_str() + eq + 1 || *end != '\0' || errno == ERANGE || v < 1)
        throw ppc::Error("--dim " + d + ": expected NAME=N with N >= 1");
      split.dims[d.substr(0, eq)] = v;
    }
    if (*s) {
      if (split.out_dir.empty() && split.emit.empty()) {
        std::cerr << "ppc: error: split: give an output directory with -o DIR\n";
        return 2;
      }
      split.exit_after = true;
      ppc::driver::split(split, std::cout, std::cerr);
    } else {
      ppc::driver::inspect(insp, std::cout);
    }
  } catch (...) { return ppc::report_exception("ppc", std::cerr); }
  return 0;
}
