#include "server/store/page_token.h"

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace compressd {
namespace {

constexpr char kVersion[] = "p1";

absl::Status Malformed() { return absl::InvalidArgumentError("page_token: malformed"); }

bool IsLowerHex(const std::string& s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

std::string EncodePageToken(const PagePosition& pos) {
  return absl::BytesToHexString(absl::StrCat(kVersion, ":", pos.create_time_ms, ":", pos.id));
}

absl::StatusOr<PagePosition> DecodePageToken(const std::string& token) {
  if (token.empty() || token.size() % 2 != 0 || !IsLowerHex(token)) return Malformed();
  std::string raw = absl::HexStringToBytes(token);
  absl::string_view rest(raw);
  if (!absl::ConsumePrefix(&rest, absl::StrCat(kVersion, ":"))) return Malformed();
  size_t colon = rest.find(':');
  if (colon == absl::string_view::npos) return Malformed();
  PagePosition pos;
  if (!absl::SimpleAtoi(rest.substr(0, colon), &pos.create_time_ms)) return Malformed();
  pos.id = std::string(rest.substr(colon + 1));
  if (pos.id.empty()) return Malformed();
  return pos;
}

absl::StatusOr<int> NormalizePageSize(int page_size, int default_size, int max_size) {
  if (page_size < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: must not be negative, got ", page_size));
  }
  if (page_size == 0) return default_size;
  return page_size > max_size ? max_size : page_size;
}

}  // namespace compressd
