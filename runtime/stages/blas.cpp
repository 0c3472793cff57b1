#include "runtime/stages/blas.h"

#include <dlfcn.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "schemas/error.h"

namespace {

// The reference BLAS signature of sgemm_ (LP64: 32-bit integers), as LibTorch declares it.
using Sgemm = void (*)(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
                       const int*, const float*, const int*, const float*, float*, const int*);

std::atomic<Sgemm> g_sgemm{nullptr};
std::atomic<int64_t> g_calls{0};
void* g_openblas = nullptr;  // the privately loaded OpenBLAS, when chosen

// The sgemm_ that the process would call without pprun's: the next object in
// the lookup order that defines it (LibTorch's, or the system BLAS it links).
Sgemm next_sgemm() { return reinterpret_cast<Sgemm>(dlsym(RTLD_NEXT, "sgemm_")); }

bool cpu_is_intel() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return false;
  char vendor[13] = {};
  std::memcpy(vendor, &b, 4);
  std::memcpy(vendor + 4, &d, 4);
  std::memcpy(vendor + 8, &c, 4);
  return std::strcmp(vendor, "GenuineIntel") == 0;
#else
  return false;
#endif
}

std::string file_of(void* symbol) {
  Dl_info info{};
  if (!symbol || dladdr(symbol, &info) == 0 || !info.dli_fname) return "";
  std::string f = info.dli_fname;
  return f.substr(f.rfind('/') + 1);
}

// "OpenBLAS 0.3.21" from openblas_get_config() ("OpenBLAS 0.3.21 NO_AFFINITY ...").
std::string openblas_name(void* handle) {
  using Config = const char* (*)();
  auto config = reinterpret_cast<Config>(dlsym(handle, "openblas_get_config"));
  if (!config || !config()) return "OpenBLAS";
  std::string c = config();
  const size_t second_space = c.find(' ', c.find(' ') + 1);
  return c.substr(0, second_space);
}

// What LibTorch's own sgemm_ is: MKL inside LibTorch (the PyPI wheel), or a
// system BLAS that LibTorch links (Debian's LibTorch: libblas.so.3, OpenBLAS).
std::string own_blas_name(Sgemm own, bool* is_mkl) {
  const std::string file = file_of(reinterpret_cast<void*>(own));
  *is_mkl = dlsym(RTLD_DEFAULT, "MKL_Get_Version_String") != nullptr || file.rfind("libtorch_cpu", 0) == 0 ||
            file.find("mkl") != std::string::npos;
  if (*is_mkl) return "MKL";
  if (dlsym(RTLD_DEFAULT, "openblas_get_config")) return openblas_name(RTLD_DEFAULT);
  return file.empty() ? std::string("an unnamed BLAS") : file;
}

}  // namespace

// pprun's sgemm_: exported from the executable (tools/pprun/sgemm.dynlist), so
// LibTorch's calls reach it before the BLAS that LibTorch brings.
extern "C" __attribute__((visibility("default"))) void sgemm_(const char* transa, const char* transb, const int* m,
                                                              const int* n, const int* k, const float* alpha,
                                                              const float* a, const int* lda, const float* b,
                                                              const int* ldb, const float* beta, float* c,
                                                              const int* ldc) {
  Sgemm f = g_sgemm.load(std::memory_order_relaxed);
  if (!f) {
    f = next_sgemm();
    if (!f) {
      std::fputs("pprun: error: no BLAS in the process defines sgemm_\n", stderr);
      std::abort();
    }
    g_sgemm.store(f, std::memory_order_relaxed);
  }
  g_calls.fetch_add(1, std::memory_order_relaxed);
  f(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

namespace ppc::runtime {

std::string BlasInUse::describe() const {
  return name + (switched ? " in place of LibTorch's " + own : ", LibTorch's own") + " (" + why + ")";
}

BlasChoice parse_blas_choice(const std::string& text, const std::string& option) {
  if (text == "auto") return BlasChoice::Auto;
  if (text == "torch") return BlasChoice::Torch;
  if (text == "openblas") return BlasChoice::OpenBlas;
  throw Error(option + " '" + text + "': expected auto, torch or openblas");
}

BlasInUse choose_blas(BlasChoice choice) {
  Sgemm own = next_sgemm();
  if (own) g_sgemm.store(own, std::memory_order_relaxed);
  bool is_mkl = false;
  BlasInUse use;
  use.own = use.name = own ? own_blas_name(own, &is_mkl) : "no BLAS";
  if (choice == BlasChoice::Torch) {
    use.why = "--blas torch";
    return use;
  }
  const bool routed = dlsym(RTLD_DEFAULT, "sgemm_") == reinterpret_cast<void*>(&sgemm_);
  if (choice == BlasChoice::Auto) {
    if (!is_mkl) {
      use.why = "LibTorch's BLAS is not MKL";
      return use;
    }
    if (cpu_is_intel()) {
      use.why = "MKL on an Intel CPU";
      return use;
    }
  }
  if (!routed) {
    if (choice == BlasChoice::OpenBlas)
      throw Error("--blas openblas: this program does not export sgemm_, so LibTorch's BLAS cannot be replaced");
    use.why = "this program does not export sgemm_";
    return use;
  }
  if (!g_openblas) g_openblas = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
  auto openblas = g_openblas ? reinterpret_cast<Sgemm>(dlsym(g_openblas, "sgemm_")) : nullptr;
  if (!openblas) {
    if (choice == BlasChoice::OpenBlas)
      throw Error("--blas openblas: libopenblas.so.0 cannot be loaded (Debian: apt-get install libopenblas0-pthread)");
    use.why = "MKL on a CPU that is not Intel's, but libopenblas.so.0 is not installed";
    return use;
  }
  g_sgemm.store(openblas, std::memory_order_relaxed);
  use.name = openblas_name(g_openblas);
  use.why =
      choice == BlasChoice::OpenBlas ? "--blas openblas" : "MKL on a CPU that is not Intel's; --blas torch keeps it";
  use.switched = true;
  return use;
}

void set_blas_threads(int threads) {
  using SetThreads = void (*)(int);
  if (auto f = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(threads);
  if (g_openblas)
    if (auto f = reinterpret_cast<SetThreads>(dlsym(g_openblas, "openblas_set_num_threads"))) f(threads);
}

int64_t blas_calls() { return g_calls.load(std::memory_order_relaxed); }

}  // namespace ppc::runtime
