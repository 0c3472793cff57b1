// Empty: this translation unit only exists so that CMake builds the shared
// precompiled <torch/script.h> (target ppc_torch_pch) that the LibTorch
// targets reuse.
