#include "client/cli/app.h"

#include <functional>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "client/cli/args.h"
#include "client/cli/context.h"
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
