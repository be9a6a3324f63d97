#include "workers/engine/nn/blas_setup.h"

#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

// OpenBLAS extensions, weak so that another CBLAS still links.
extern "C" {
void openblas_set_num_threads(int num_threads) __attribute__((weak));
char* openblas_get_corename(void) __attribute__((weak));
}

namespace compressd::engine {
namespace {

bool CpuHasAvx512() {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}

bool CoreHasAvx512(const std::string& core) {
  for (const char* name : {"skylakex", "cooperlake", "sapphirerapids", "zen4", "zen5"}) {
    if (absl::EqualsIgnoreCase(core, name)) return true;
  }
  return false;
}

}  // namespace

BlasInfo GetBlasInfo() {
  BlasInfo info;
  if (openblas_get_corename != nullptr) {
    const char* core = openblas_get_corename();
    info.core = core != nullptr ? core : "";
  }
  info.cpu_avx512 = CpuHasAvx512();
  info.avx512_core = CoreHasAvx512(info.core);
  return info;
}

std::string BlasCoreWarning() {
  const BlasInfo info = GetBlasInfo();
  if (info.core.empty() || !info.cpu_avx512 || info.avx512_core) return "";
  const char* pinned = std::getenv("OPENBLAS_CORETYPE");
  return absl::StrCat("OpenBLAS runs its ", info.core, " (AVX2) kernels on an AVX-512 CPU",
                      pinned != nullptr ? absl::StrCat(" because OPENBLAS_CORETYPE=", pinned) : "",
                      "; sgemm is about 2x slower than with an AVX-512 core");
}

void SetBlasThreads(int n) {
  if (openblas_set_num_threads != nullptr) openblas_set_num_threads(n);
}

}  // namespace compressd::engine
