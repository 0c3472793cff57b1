// The entry point of libppc_torchscript.so (see plugin.h).
#include "compiler/emitters/torchscript_emitter.h"
#include "compiler/frontends/torchscript/plugin.h"
#include "compiler/frontends/torchscript/torchscript_frontend.h"

extern "C" __attribute__((visibility("default"))) const ppc::torchscript_frontend::Plugin* ppc_torchscript_plugin() {
  static const ppc::torchscript_frontend::Plugin plugin{ppc::torchscript_frontend::kPluginAbi,
                                                        &ppc::torchscript_frontend::load_torchscript,
                                                        &ppc::emit_torchscript_stage};
  return &plugin;
}
