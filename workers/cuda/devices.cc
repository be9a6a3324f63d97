// devices.h for every build. With COMPRESSD_HAVE_CUDA the GPUs and the
// device solver come from the CUDA plugin (libcompressd_cuda.so beside the
// executable, or $COMPRESSD_CUDA_PLUGIN), loaded on first use: the worker
// binary links no CUDA library. Without CUDA there are no GPUs.
#include "workers/cuda/devices.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "workers/cuda/plugin_abi.h"

namespace compressd::cuda {

#ifdef COMPRESSD_HAVE_CUDA
namespace {

struct Plugin {
  compressd_cuda_list_gpus_fn list = nullptr;
  compressd_cuda_create_solver_fn create = nullptr;
  std::string error;  // why it is not usable
};

std::string PluginPath() {
  if (const char* env = std::getenv("COMPRESSD_CUDA_PLUGIN"); env != nullptr && *env != '\0') {
    return env;
  }
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) return "libcompressd_cuda.so";
  std::string dir(exe, static_cast<size_t>(n));
  return dir.substr(0, dir.find_last_of('/') + 1) + "libcompressd_cuda.so";
}

// Loaded once, never unloaded (solvers it made may live to the end).
const Plugin& LoadPlugin() {
  static Plugin* const plugin = [] {
    auto* p = new Plugin();
    const std::string path = PluginPath();
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      p->error = absl::StrCat("cannot load the CUDA plugin ", path, ": ", ::dlerror());
      return p;
    }
    auto abi = reinterpret_cast<compressd_cuda_plugin_abi_fn>(::dlsym(handle, "compressd_cuda_plugin_abi"));
    p->list = reinterpret_cast<compressd_cuda_list_gpus_fn>(::dlsym(handle, "compressd_cuda_list_gpus"));
    p->create = reinterpret_cast<compressd_cuda_create_solver_fn>(
        ::dlsym(handle, "compressd_cuda_create_solver"));
    if (abi == nullptr || p->list == nullptr || p->create == nullptr ||
        abi() != COMPRESSD_CUDA_PLUGIN_ABI) {
      p->error = absl::StrCat("the CUDA plugin ", path, " is from another build");
      p->list = nullptr;
      p->create = nullptr;
    }
    return p;
  }();
  return *plugin;
}

}  // namespace

bool BuiltWithCuda() { return true; }

std::vector<engine::GpuInfo> ListGpus(std::string* why_none) {
  const Plugin& plugin = LoadPlugin();
  if (plugin.list == nullptr) {
    *why_none = plugin.error;
    return {};
  }
  compressd_cuda_gpu gpus[64];
  char why[512] = {0};
  const int n = plugin.list(gpus, 64, why, sizeof(why));
  std::vector<engine::GpuInfo> out;
  for (int i = 0; i < n; ++i) {
    out.push_back({gpus[i].index, gpus[i].name, gpus[i].cc_major, gpus[i].cc_minor,
                   gpus[i].total_bytes, gpus[i].free_bytes});
  }
  if (out.empty()) *why_none = why;
  return out;
}

absl::StatusOr<std::unique_ptr<engine::SolverBackend>> CreateSolver(
    const engine::DeviceSpec& device) {
  if (device.kind == engine::DeviceSpec::Kind::kCpu) return std::make_unique<engine::CpuSolver>();
  if (device.kind != engine::DeviceSpec::Kind::kCuda || device.index < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("device ", device.ToString(), " is not resolved (engine::ResolveDevice)"));
  }
  const Plugin& plugin = LoadPlugin();
  if (plugin.create == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("device ", device.ToString(), ": ", plugin.error));
  }
  int code = 0;
  char error[1024] = {0};
  void* solver = plugin.create(device.index, &code, error, sizeof(error));
  if (solver == nullptr) return absl::Status(static_cast<absl::StatusCode>(code), error);
  return std::unique_ptr<engine::SolverBackend>(static_cast<engine::SolverBackend*>(solver));
}
#else
bool BuiltWithCuda() { return false; }

std::vector<engine::GpuInfo> ListGpus(std::string* why_none) {
  *why_none = "this build has no CUDA backend (COMPRESSD_CUDA=OFF or no CUDA toolkit)";
  return {};
}

absl::StatusOr<std::unique_ptr<engine::SolverBackend>> CreateSolver(
    const engine::DeviceSpec& device) {
  if (device.kind == engine::DeviceSpec::Kind::kCpu) return std::make_unique<engine::CpuSolver>();
  return absl::FailedPreconditionError(absl::StrCat(
      "device ", device.ToString(), ": this build has no CUDA backend (COMPRESSD_CUDA=OFF)"));
}
#endif

}  // namespace compressd::cuda
