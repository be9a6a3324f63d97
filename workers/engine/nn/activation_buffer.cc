#include "workers/engine/nn/activation_buffer.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace compressd::engine {

ActivationBuffer::~ActivationBuffer() { Reset(); }

ActivationBuffer::ActivationBuffer(ActivationBuffer&& other) noexcept { *this = std::move(other); }

ActivationBuffer& ActivationBuffer::operator=(ActivationBuffer&& other) noexcept {
  if (this != &other) {
    Reset();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    mapped_bytes_ = std::exchange(other.mapped_bytes_, 0);
    heap_ = std::exchange(other.heap_, nullptr);
  }
  return *this;
}

void ActivationBuffer::Reset() {
  if (mapped_bytes_ > 0) munmap(data_, mapped_bytes_);
  delete[] heap_;
  data_ = heap_ = nullptr;
  size_ = mapped_bytes_ = 0;
}

ActivationBuffer ActivationBuffer::InMemory(size_t n) {
  ActivationBuffer b;
  b.heap_ = new float[n > 0 ? n : 1]();
  b.data_ = b.heap_;
  b.size_ = n;
  return b;
}

absl::StatusOr<ActivationBuffer> ActivationBuffer::InFile(const std::string& dir, size_t n,
                                                          const std::string& what) {
  const size_t bytes = (n > 0 ? n : 1) * sizeof(float);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);  // the job's output directory, maybe not made yet
  std::string path = (std::filesystem::path(dir) / "activations-XXXXXX").string();
  std::vector<char> name(path.begin(), path.end());
  name.push_back('\0');
  const int fd = mkstemp(name.data());
  auto fail = [&](const char* step, int err) {
    const std::string message = absl::StrCat(what, ": cannot ", step, " a scratch file of ", bytes,
                                             " bytes in ", dir, ": ", std::strerror(err));
    return err == ENOSPC || err == EDQUOT ? absl::ResourceExhaustedError(message)
                                          : absl::InternalError(message);
  };
  if (fd < 0) return fail("create", errno);
  unlink(name.data());
  if (const int err = posix_fallocate(fd, 0, static_cast<off_t>(bytes)); err != 0) {
    close(fd);
    return fail("reserve", err);
  }
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int map_err = errno;
  close(fd);  // the mapping keeps the file
  if (p == MAP_FAILED) return fail("map", map_err);
  ActivationBuffer b;
  b.data_ = static_cast<float*>(p);
  b.size_ = n;
  b.mapped_bytes_ = bytes;
  return b;
}

void ActivationBuffer::Release(size_t begin, size_t end) const {
  if (mapped_bytes_ == 0 || end <= begin) return;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t first = (begin * sizeof(float) + page - 1) / page * page;
  const size_t last = std::min(end * sizeof(float), mapped_bytes_) / page * page;
  if (last > first) madvise(reinterpret_cast<char*>(data_) + first, last - first, MADV_DONTNEED);
}

}  // namespace compressd::engine
