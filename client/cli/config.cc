// compressctl's config file (args.h LoadClientConfig).
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "client/cli/args.h"

namespace compressd::client {
namespace {

std::string ConfigPath() {
  if (const char* explicit_path = std::getenv("COMPRESSCTL_CONFIG");
      explicit_path != nullptr && *explicit_path != '\0') {
    return explicit_path;
  }
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg != nullptr && *xdg != '\0') {
    return absl::StrCat(xdg, "/compressctl/config.yaml");
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    return absl::StrCat(home, "/.config/compressctl/config.yaml");
  }
  return "";
}

}  // namespace

absl::StatusOr<ClientConfig> LoadClientConfig() {
  ClientConfig config;
  const std::string path = ConfigPath();
  std::error_code ec;
  if (path.empty() || !std::filesystem::exists(path, ec)) return config;
  try {
    const YAML::Node root = YAML::LoadFile(path);
    if (!root.IsMap() && !root.IsNull()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": expected a mapping"));
    }
    for (const auto& item : root) {
      const std::string key = item.first.as<std::string>();
      const std::string value = item.second.as<std::string>();
      if (key == "server") {
        config.server = value;
      } else if (key == "key_file") {
        config.key_file = value;
      } else if (key == "ca_cert") {
        config.ca_cert = value;
      } else {
        return absl::InvalidArgumentError(absl::StrCat(path, ": unknown setting \"", key,
                                                       "\" (expected server, key_file, ca_cert)"));
      }
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", e.what()));
  }
  return config;
}

}  // namespace compressd::client
