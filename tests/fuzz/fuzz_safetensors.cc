// libFuzzer target: the safetensors reader (SafetensorsFile::Open, which
// mmaps a path) on arbitrary bytes, through an in-memory file (memfd), then
// a float read of every convertible tensor. Failures must be
// INVALID_ARGUMENT; ASan checks that nothing past the mapping is read.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "workers/engine/model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = memfd_create("fuzz.safetensors", MFD_CLOEXEC);
  if (fd < 0) std::abort();
  if (size > 0 && write(fd, data, size) != static_cast<ssize_t>(size)) std::abort();
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  absl::StatusOr<std::unique_ptr<compressd::engine::SafetensorsFile>> f =
      compressd::engine::SafetensorsFile::Open(path);
  close(fd);
  if (!f.ok()) {
    if (!absl::IsInvalidArgument(f.status())) std::abort();
    return 0;
  }
  for (const compressd::engine::TensorInfo& t : (*f)->tensors()) {
    if (compressd::engine::IsConvertibleFloat(t.dtype) && t.numel <= (1u << 20)) (void)(*f)->ReadAsFloat(t);
  }
  return 0;
}
