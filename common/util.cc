#include "common/util.h"

#include <sys/random.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "common/utf8.h"

namespace compressd {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  size_t filled = 0;
  while (filled < bytes) {
    const ssize_t got = getrandom(raw.data() + filled, bytes - filled, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      std::abort();  // the kernel's CSPRNG is unavailable: nothing safe can be issued
    }
    filled += static_cast<size_t>(got);
  }
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * bytes);
  for (unsigned char c : raw) {
    hex.push_back(kHex[c >> 4]);
    hex.push_back(kHex[c & 15]);
  }
  return hex;
}

std::string NewId(std::string_view prefix) {
  return absl::StrCat(absl::string_view(prefix.data(), prefix.size()), RandomHex(8));
}

absl::Status ValidateRelativePath(std::string_view path, std::string_view field) {
  auto bad = [&](std::string_view why) {
    // The path as given, cut short: a message never carries megabytes of it.
    return absl::InvalidArgumentError(absl::StrCat(absl::string_view(field.data(), field.size()),
                                                   ": unsafe path \"", ToValidUtf8(path, 128),
                                                   "\": ", absl::string_view(why.data(), why.size())));
  };
  if (path.empty()) return bad("empty");
  if (path.size() > kMaxRelativePathBytes) {
    return bad(absl::StrCat(path.size(), " bytes; at most ", kMaxRelativePathBytes));
  }
  if (!IsValidUtf8(path)) return bad("not valid UTF-8");
  if (path.front() == '/') return bad("absolute paths are not allowed");
  if (path.find('\\') != std::string_view::npos) return bad("backslash");
  if (path.find('\0') != std::string_view::npos) return bad("NUL byte");
  int depth = 0;
  for (absl::string_view part : absl::StrSplit(absl::string_view(path.data(), path.size()), '/')) {
    if (part.empty() || part == "." || part == "..") {
      return bad("components may not be empty, \".\" or \"..\"");
    }
    if (++depth > kMaxRelativePathDepth) {
      return bad(absl::StrCat("more than ", kMaxRelativePathDepth, " components"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidatePortableRelativePath(std::string_view path, std::string_view field) {
  RETURN_IF_ERROR(ValidateRelativePath(path, field));
  for (size_t i = 0; i < path.size(); ++i) {
    const char c = path[i];
    if (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '/' ||
        c == '-') {
      continue;
    }
    return absl::InvalidArgumentError(absl::StrCat(
        absl::string_view(field.data(), field.size()), ": \"",
        absl::string_view(path.data(), path.size()), "\": character ", i,
        " is not one of [A-Za-z0-9._/-]"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string FormatBytes(uint64_t bytes) {
  if (bytes >= (1ull << 30)) return absl::StrFormat("%.2f GiB", bytes / double(1ull << 30));
  return absl::StrFormat("%d MiB", (bytes + (1 << 19)) >> 20);
}

}  // namespace compressd
