// Command-line parsing for compressctl, independent of the network so it can
// be unit-tested. The grammar is
//   compressctl [global flags] GROUP VERB [args] [flags]
// Global flags (--server, --json, --help) are accepted anywhere; flags take
// their value as "--flag VALUE" or "--flag=VALUE"; "--" ends flag parsing.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "compressd/v1/compressd.pb.h"

namespace compressd::client {

inline constexpr char kDefaultServer[] = "localhost:50051";

enum class FlagKind {
  kBool,         // present or not
  kString,       // non-empty value
  kPositiveInt,  // integer >= 1
  kJobState,     // queued|running|succeeded|failed|cancelled, any case
};

struct FlagSpec {
  std::string name;  // without the leading "--"
  FlagKind kind = FlagKind::kString;
  bool required = false;
  bool repeated = false;
  std::string value_name;  // for usage, e.g. "ID"
};

struct CommandSpec {
  std::string group;  // "models"
  std::string verb;   // "upload"
  // Positional argument names for usage; a trailing "..." (e.g. "PATH...")
  // means one or more.
  std::vector<std::string> positionals;
  std::vector<FlagSpec> flags;
  std::string summary;
};

// Every command compressctl knows (constant data).
const std::vector<CommandSpec>& Commands();

struct Invocation {
  std::string server;
  std::string key_file;  // --key-file (else $COMPRESSD_KEY, $COMPRESSD_KEY_FILE, the config file)
  std::string ca_cert;   // --ca-cert: TLS, verifying the server with this CA bundle
  bool json = false;
  bool help = false;                     // --help / -h: print usage and exit 0
  bool version = false;                  // --version
  std::string group;                     // set as soon as it is recognised, even on error
  const CommandSpec* command = nullptr;  // set once GROUP VERB is recognised
  std::vector<std::string> args;         // positional arguments
  std::map<std::string, std::vector<std::string>> flags;  // name -> values ("" for kBool)

  bool Has(const std::string& flag) const { return flags.count(flag) > 0; }
  // The last value of `flag`, or `fallback` when absent.
  std::string Get(const std::string& flag, const std::string& fallback = "") const;
  std::vector<std::string> GetAll(const std::string& flag) const;
};

// Parses `args` (without the program name). `default_server` is used when
// --server is absent. On a usage error returns INVALID_ARGUMENT and leaves in
// `out` whatever was recognised (for a command-specific usage message).
absl::Status ParseCommandLine(const std::vector<std::string>& args,
                              const std::string& default_server, Invocation* out);

// $COMPRESSD_SERVER when set and non-empty, else kDefaultServer.
std::string DefaultServer(const char* env_value);

// compressctl's config file (YAML: server, key_file, ca_cert), read when a
// setting has no flag or environment variable: $COMPRESSCTL_CONFIG, else
// $XDG_CONFIG_HOME/compressctl/config.yaml, else
// ~/.config/compressctl/config.yaml. A missing file is no settings.
struct ClientConfig {
  std::string server;
  std::string key_file;
  std::string ca_cert;
};
absl::StatusOr<ClientConfig> LoadClientConfig();

// "succeeded" / "SUCCEEDED" -> v1::SUCCEEDED; INVALID_ARGUMENT otherwise.
absl::StatusOr<v1::JobState> ParseJobState(std::string_view text);

// The whole usage text, the usage of one group, or of one command.
std::string UsageText();
std::string GroupUsage(const std::string& group);
std::string CommandUsage(const CommandSpec& command);

}  // namespace compressd::client
