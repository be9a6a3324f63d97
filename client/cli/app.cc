#include "client/cli/app.h"

#include <cstdlib>
#include <functional>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "client/cli/args.h"
#include "client/cli/context.h"
#include "client/commands/admin.h"
#include "client/commands/artifacts.h"
#include "client/commands/datasets.h"
#include "client/commands/jobs.h"
#include "client/commands/models.h"
#include "client/commands/watch.h"

namespace compressd::client {
namespace {

constexpr char kVersion[] = "compressctl 0.1.0";

using CommandFn = std::function<absl::Status(CommandContext&)>;

const std::map<std::pair<std::string, std::string>, CommandFn>& Handlers() {
  static const auto* const kHandlers = new std::map<std::pair<std::string, std::string>, CommandFn>{
      {{"models", "upload"}, ModelsUpload},
      {{"models", "list"}, ModelsList},
      {{"models", "get"}, ModelsGet},
      {{"models", "delete"}, ModelsDelete},
      {{"datasets", "upload"}, DatasetsUpload},
      {{"datasets", "list"}, DatasetsList},
      {{"datasets", "get"}, DatasetsGet},
      {{"datasets", "delete"}, DatasetsDelete},
      {{"jobs", "submit"}, JobsSubmit},
      {{"jobs", "watch"}, JobsWatch},
      {{"jobs", "get"}, JobsGet},
      {{"jobs", "list"}, JobsList},
      {{"jobs", "cancel"}, JobsCancel},
      {{"jobs", "delete"}, JobsDelete},
      {{"admin tenants", "create"}, AdminTenantsCreate},
      {{"admin tenants", "list"}, AdminTenantsList},
      {{"admin tenants", "quota"}, AdminTenantsQuota},
      {{"admin keys", "create"}, AdminKeysCreate},
      {{"admin keys", "list"}, AdminKeysList},
      {{"admin keys", "revoke"}, AdminKeysRevoke},
      {{"admin audit", "list"}, AdminAuditList},
      {{"admin", "whoami"}, AdminWhoAmI},
      {{"artifacts", "list"}, ArtifactsList},
      {{"artifacts", "download"}, ArtifactsDownload},
  };
  return *kHandlers;
}

std::string UsageFor(const Invocation& invocation) {
  if (invocation.command != nullptr) return CommandUsage(*invocation.command);
  if (!invocation.group.empty()) return GroupUsage(invocation.group);
  return UsageText();
}

}  // namespace

bool HasHandler(const std::string& group, const std::string& verb) {
  return Handlers().count({group, verb}) > 0;
}

int RunCompressctl(const std::vector<std::string>& args, Io io, const char* env_server) {
  Invocation invocation;
  absl::Status parsed = ParseCommandLine(args, DefaultServer(env_server), &invocation);
  if (parsed.ok() && invocation.version) {
    io.out << kVersion << "\n";
    return kExitOk;
  }
  if (parsed.ok() && invocation.help) {
    io.out << UsageFor(invocation);
    return kExitOk;
  }
  if (!parsed.ok()) {
    io.err << FormatError(parsed) << "\n\n" << UsageFor(invocation);
    return kExitUsage;
  }
  // Settings without a flag or environment variable come from the config file.
  absl::StatusOr<ClientConfig> config = LoadClientConfig();
  if (!config.ok()) {
    io.err << FormatError(config.status()) << "\n";
    return kExitUsage;
  }
  const bool env_server_set = env_server != nullptr && *env_server != '\0';
  if (!env_server_set && invocation.server == kDefaultServer && !config->server.empty()) {
    invocation.server = config->server;
  }
  const char* env_key = std::getenv("COMPRESSD_KEY");
  const char* env_key_file = std::getenv("COMPRESSD_KEY_FILE");
  const bool env_key_set = (env_key != nullptr && *env_key != '\0') ||
                           (env_key_file != nullptr && *env_key_file != '\0');
  if (invocation.key_file.empty() && !env_key_set) invocation.key_file = config->key_file;
  if (invocation.ca_cert.empty()) invocation.ca_cert = config->ca_cert;
  auto handler = Handlers().find({invocation.command->group, invocation.command->verb});
  if (handler == Handlers().end()) {
    io.err << "error: UNIMPLEMENTED: " << invocation.command->group << " "
           << invocation.command->verb << "\n";
    return kExitFailure;
  }
  CommandContext context(invocation, io);
  absl::Status status = handler->second(context);
  io.out.flush();
  if (!status.ok()) {
    io.err << FormatError(status) << "\n";
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace compressd::client
