#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>

#include "compiler/frontends/torchscript/plugin.h"
#include "schemas/error.h"

namespace fs = std::filesystem;

namespace ppc::torchscript_frontend {

namespace {

constexpr const char* kLibName = "libppc_torchscript.so";

std::vector<fs::path> candidates() {
  std::vector<fs::path> out;
  if (const char* env = std::getenv("PPC_TORCHSCRIPT_PLUGIN"); env && *env) {
    out.emplace_back(env);
    return out;
  }
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    out.push_back(exe.parent_path() / kLibName);
    out.push_back(exe.parent_path().parent_path() / kLibName);
    out.push_back(exe.parent_path().parent_path() / "lib" / "ppc" / kLibName);
  }
  return out;
}

const Plugin* load_plugin() {
  std::string tried;
  for (const fs::path& p : candidates()) {
    std::error_code ec;
    if (!fs::exists(p, ec)) {
      tried += (tried.empty() ? "" : ", ") + p.string();
      continue;
    }
    // RTLD_LOCAL: the plugin keeps its own copies of ppc's static libraries
    // and LibTorch's symbols stay out of the global namespace.
    void* h = dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) throw Error("cannot load the TorchScript plugin " + p.string() + ": " + dlerror());
    auto entry = reinterpret_cast<const Plugin* (*)()>(dlsym(h, "ppc_torchscript_plugin"));
    if (!entry) throw Error(p.string() + ": not a ppc TorchScript plugin (no ppc_torchscript_plugin)");
    const Plugin* plugin = entry();
    if (!plugin || plugin->abi != kPluginAbi || !plugin->load || !plugin->emit)
      throw Error(p.string() + ": TorchScript plugin of another ppc version");
    return plugin;  // never unloaded: objects it made may outlive any scope
  }
  throw Error("TorchScript support is not installed (looked for " + tried + "; set PPC_TORCHSCRIPT_PLUGIN)");
}

}  // namespace

const Plugin& plugin() {
  static std::once_flag once;
  static const Plugin* loaded = nullptr;
  std::call_once(once, [] { loaded = load_plugin(); });
  return *loaded;
}

}  // namespace ppc::torchscript_frontend
