#include "client/cli/args.h"

#include <tuple>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace compressd::client {
namespace {

FlagSpec Flag(std::string name, FlagKind kind, std::string value_name, bool required = false,
              bool repeated = false) {
  FlagSpec flag;
  flag.name = std::move(name);
  flag.kind = kind;
  flag.value_name = std::move(value_name);
  flag.required = required;
  flag.repeated = repeated;
  return flag;
}

std::vector<CommandSpec> BuildCommands() {
  using K = FlagKind;
  return {
      {"models",
       "upload",
       {"PATH"},
       {Flag("name", K::kString, "NAME")},
       "upload an HF safetensors directory or a .gguf file; prints the model id"},
      {"models", "list", {}, {}, "list models"},
      {"models", "get", {"ID"}, {}, "show a model"},
      {"models", "delete", {"ID"}, {}, "delete a model"},
      {"datasets",
       "upload",
       {"PATH..."},
       {Flag("name", K::kString, "NAME", true)},
       "upload text files (or directories of them); prints the dataset id"},
      {"datasets", "list", {}, {}, "list datasets"},
      {"datasets", "get", {"ID"}, {}, "show a dataset"},
      {"datasets", "delete", {"ID"}, {}, "delete a dataset no queued or running job uses"},
      {"jobs",
       "submit",
       {},
       {Flag("model", K::kString, "ID", true), Flag("recipe", K::kString, "FILE", true),
        Flag("dataset", K::kString, "ID", false, true), Flag("request-id", K::kString, "R"),
        Flag("max-attempts", K::kPositiveInt, "N"), Flag("priority", K::kString, "P"),
        Flag("wait", K::kBool, "")},
       "submit a compression job; prints the job id (--wait: then watch it; "
       "P: low|normal|high within your tenant)"},
      {"jobs", "watch", {"ID"}, {}, "follow a job until it ends; exit 0 only if it succeeded"},
      {"jobs", "get", {"ID"}, {}, "show a job"},
      {"jobs",
       "list",
       {},
       {Flag("state", K::kJobState, "STATE")},
       "list jobs (STATE: queued|running|succeeded|failed|cancelled)"},
      {"jobs", "cancel", {"ID"}, {}, "cancel a job"},
      {"jobs", "delete", {"ID"}, {}, "delete a job (cancelled first if running) and its outputs"},
      {"admin tenants",
       "create",
       {"NAME"},
       {Flag("max-stored-bytes", K::kString, "N"), Flag("max-queued-jobs", K::kString, "N"),
        Flag("max-running-jobs", K::kString, "N")},
       "create a tenant (quotas: unlimited unless given)"},
      {"admin tenants", "list", {}, {}, "list tenants with their quotas and use"},
      {"admin tenants",
       "quota",
       {"NAME"},
       {Flag("max-stored-bytes", K::kString, "N"), Flag("max-queued-jobs", K::kString, "N"),
        Flag("max-running-jobs", K::kString, "N")},
       "set a tenant's quotas (0: unlimited; those not given are kept)"},
      {"admin keys",
       "create",
       {},
       {Flag("tenant", K::kString, "T"), Flag("role", K::kString, "ROLE", true),
        Flag("expires-in", K::kString, "DURATION"), Flag("description", K::kString, "TEXT")},
       "create an API key (ROLE: admin|member|viewer|worker); prints it once"},
      {"admin keys", "list", {}, {Flag("tenant", K::kString, "T")}, "list API keys"},
      {"admin keys", "revoke", {"KEY_ID"}, {}, "revoke an API key at once"},
      {"admin audit",
       "list",
       {},
       {Flag("tenant", K::kString, "T"), Flag("after", K::kString, "SEQ")},
       "list the audit trail (who created, cancelled, deleted what)"},
      {"admin", "whoami", {}, {}, "show the key in use: id, tenant and role"},
      {"artifacts", "list", {"JOB_ID"}, {}, "list a job's output files"},
      {"artifacts",
       "download",
       {"JOB_ID"},
       {Flag("out", K::kString, "DIR", true)},
       "download a job's output files into DIR (resumes partial downloads)"},
  };
}

const FlagSpec* FindFlag(const CommandSpec& command, const std::string& name) {
  for (const FlagSpec& flag : command.flags) {
    if (flag.name == name) return &flag;
  }
  return nullptr;
}

absl::Status UsageError(absl::string_view message) { return absl::InvalidArgumentError(message); }

absl::Status CheckFlagValue(const FlagSpec& flag, const std::string& value) {
  switch (flag.kind) {
    case FlagKind::kBool:
      return absl::OkStatus();
    case FlagKind::kString:
      if (value.empty()) return UsageError(absl::StrCat("--", flag.name, " must not be empty"));
      return absl::OkStatus();
    case FlagKind::kPositiveInt: {
      int parsed = 0;
      if (!absl::SimpleAtoi(value, &parsed) || parsed < 1) {
        return UsageError(
            absl::StrCat("--", flag.name, " must be a positive integer, got \"", value, "\""));
      }
      return absl::OkStatus();
    }
    case FlagKind::kJobState:
      return ParseJobState(value).status();
  }
  return absl::OkStatus();
}

// Splits "--name=value" into name and value; `has_value` tells whether '=' was present.
void SplitFlag(const std::string& arg, std::string* name, std::string* value, bool* has_value) {
  const std::string body = arg.substr(2);
  const size_t eq = body.find('=');
  *has_value = eq != std::string::npos;
  *name = *has_value ? body.substr(0, eq) : body;
  *value = *has_value ? body.substr(eq + 1) : "";
}

// Consumes global flags; returns true if `args[*i]` was one.
absl::StatusOr<bool> TakeGlobalFlag(const std::vector<std::string>& args, size_t* i,
                                    Invocation* out) {
  const std::string& arg = args[*i];
  if (arg == "--help" || arg == "-h") {
    out->help = true;
    return true;
  }
  if (arg == "--version") {
    out->version = true;
    return true;
  }
  if (arg == "--json") {
    out->json = true;
    return true;
  }
  for (const auto& [flag, what, target] :
       {std::tuple<std::string, const char*, std::string*>{"--server", "HOST:PORT", &out->server},
        {"--key-file", "FILE", &out->key_file},
        {"--ca-cert", "FILE", &out->ca_cert}}) {
    if (arg != flag && !absl::StartsWith(arg, flag + "=")) continue;
    std::string value;
    if (arg == flag) {
      if (*i + 1 >= args.size()) return UsageError(absl::StrCat(flag, " needs a value ", what));
      value = args[++*i];
    } else {
      value = arg.substr(flag.size() + 1);
    }
    if (value.empty()) return UsageError(absl::StrCat(flag, " must not be empty"));
    *target = value;
    return true;
  }
  return false;
}

absl::Status CheckPositionals(const CommandSpec& command, const std::vector<std::string>& args) {
  const bool variadic =
      !command.positionals.empty() && absl::EndsWith(command.positionals.back(), "...");
  const size_t min = command.positionals.size();
  const std::string name = absl::StrCat(command.group, " ", command.verb);
  if (args.size() < min) {
    return UsageError(absl::StrCat(name, ": missing ", command.positionals[args.size()]));
  }
  if (!variadic && args.size() > min) {
    return UsageError(absl::StrCat(name, ": unexpected argument \"", args[min], "\""));
  }
  return absl::OkStatus();
}

absl::Status CheckFlags(const CommandSpec& command, const Invocation& inv) {
  for (const FlagSpec& flag : command.flags) {
    if (flag.required && !inv.Has(flag.name)) {
      return UsageError(absl::StrCat(command.group, " ", command.verb, ": missing --", flag.name,
                                     " ", flag.value_name));
    }
  }
  return absl::OkStatus();
}

// Consumes global flags and the GROUP and VERB words; stops after the verb.
absl::Status ParseCommandWords(const std::vector<std::string>& args, size_t* i, Invocation* out) {
  for (; *i < args.size() && out->command == nullptr; ++*i) {
    const std::string& arg = args[*i];
    if (arg.size() > 1 && arg[0] == '-') {
      ASSIGN_OR_RETURN(bool global, TakeGlobalFlag(args, i, out));
      if (!global) return UsageError(absl::StrCat("unknown flag ", arg));
      continue;
    }
    if (out->group.empty() || out->group == "admin") {
      // Groups may be two words ("admin keys"); "admin whoami" is a verb.
      const std::string group = out->group.empty() ? arg : absl::StrCat(out->group, " ", arg);
      bool known = false;
      for (const CommandSpec& command : Commands()) {
        known = known || command.group == group || absl::StartsWith(command.group, group + " ");
      }
      const bool verb_of_admin = out->group == "admin" && arg == "whoami";
      if (!known && !verb_of_admin) {
        return UsageError(absl::StrCat("unknown command \"", group, "\""));
      }
      if (!verb_of_admin) {
        out->group = group;
        continue;
      }
    }
    for (const CommandSpec& command : Commands()) {
      if (command.group == out->group && command.verb == arg) out->command = &command;
    }
    if (out->command == nullptr) {
      return UsageError(absl::StrCat("unknown command \"", out->group, " ", arg, "\""));
    }
  }
  return absl::OkStatus();
}

// Consumes one command flag (and its value) at args[*i].
absl::Status TakeCommandFlag(const CommandSpec& command, const std::vector<std::string>& args,
                             size_t* i, Invocation* out) {
  const std::string& arg = args[*i];
  const std::string where = absl::StrCat(command.group, " ", command.verb, ": ");
  std::string name;
  std::string value;
  bool has_value = false;
  if (absl::StartsWith(arg, "--")) SplitFlag(arg, &name, &value, &has_value);
  const FlagSpec* flag = name.empty() ? nullptr : FindFlag(command, name);
  if (flag == nullptr) return UsageError(absl::StrCat(where, "unknown flag ", arg));
  if (flag->kind == FlagKind::kBool) {
    if (has_value) return UsageError(absl::StrCat(where, "--", name, " takes no value"));
  } else if (!has_value) {
    if (*i + 1 >= args.size() || absl::StartsWith(args[*i + 1], "--")) {
      return UsageError(absl::StrCat(where, "--", name, " needs a value ", flag->value_name));
    }
    value = args[++*i];
  }
  if (!flag->repeated && out->Has(name)) {
    return UsageError(absl::StrCat(where, "--", name, " given more than once"));
  }
  absl::Status valid = CheckFlagValue(*flag, value);
  if (!valid.ok()) return UsageError(absl::StrCat(where, valid.message()));
  out->flags[name].push_back(value);
  return absl::OkStatus();
}

}  // namespace

const std::vector<CommandSpec>& Commands() {
  static const std::vector<CommandSpec>* const kCommands =
      new std::vector<CommandSpec>(BuildCommands());
  return *kCommands;
}

std::string Invocation::Get(const std::string& flag, const std::string& fallback) const {
  auto it = flags.find(flag);
  return it == flags.end() || it->second.empty() ? fallback : it->second.back();
}

std::vector<std::string> Invocation::GetAll(const std::string& flag) const {
  auto it = flags.find(flag);
  return it == flags.end() ? std::vector<std::string>{} : it->second;
}

std::string DefaultServer(const char* env_value) {
  if (env_value != nullptr && *env_value != '\0') return env_value;
  return kDefaultServer;
}

absl::StatusOr<v1::JobState> ParseJobState(std::string_view text) {
  const std::string upper = absl::AsciiStrToUpper(absl::string_view(text.data(), text.size()));
  v1::JobState state = v1::JOB_STATE_UNSPECIFIED;
  if (upper != "JOB_STATE_UNSPECIFIED" && v1::JobState_Parse(upper, &state)) return state;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown job state \"", std::string(text),
                   "\" (expected queued, running, succeeded, failed or cancelled)"));
}

absl::Status ParseCommandLine(const std::vector<std::string>& args,
                              const std::string& default_server, Invocation* out) {
  *out = Invocation();
  out->server = default_server;
  size_t i = 0;
  RETURN_IF_ERROR(ParseCommandWords(args, &i, out));
  if (out->command == nullptr) {
    if (out->help || out->version) return absl::OkStatus();
    if (out->group.empty()) return UsageError("missing command");
    return UsageError(absl::StrCat(out->group, ": missing command"));
  }
  const CommandSpec& command = *out->command;
  bool flags_done = false;
  for (; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (flags_done || arg.size() < 2 || arg[0] != '-') {
      out->args.push_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_done = true;
      continue;
    }
    ASSIGN_OR_RETURN(bool global, TakeGlobalFlag(args, &i, out));
    if (global) continue;
    RETURN_IF_ERROR(TakeCommandFlag(command, args, &i, out));
  }
  if (out->help) return absl::OkStatus();
  RETURN_IF_ERROR(CheckPositionals(command, out->args));
  return CheckFlags(command, *out);
}

namespace {

// "models upload PATH [--name NAME]"
std::string CommandSynopsis(const CommandSpec& command) {
  std::string line = absl::StrCat(command.group, " ", command.verb);
  for (const std::string& positional : command.positionals) absl::StrAppend(&line, " ", positional);
  for (const FlagSpec& flag : command.flags) {
    std::string text = absl::StrCat("--", flag.name);
    if (flag.kind != FlagKind::kBool) absl::StrAppend(&text, " ", flag.value_name);
    if (!flag.required) text = absl::StrCat("[", text, "]");
    if (flag.repeated) absl::StrAppend(&text, "...");
    absl::StrAppend(&line, " ", text);
  }
  return line;
}

constexpr char kGlobalFlags[] =
    "global flags:\n"
    "  --server HOST:PORT  compressd address (default: $COMPRESSD_SERVER or localhost:50051)\n"
    "  --key-file FILE     API key (default: $COMPRESSD_KEY, $COMPRESSD_KEY_FILE, config)\n"
    "  --ca-cert FILE      use TLS, verifying the server with this CA bundle\n"
    "  --json              print responses in protobuf's JSON mapping\n"
    "  --help              show usage\n";

}  // namespace

std::string CommandUsage(const CommandSpec& command) {
  return absl::StrCat("usage: compressctl [global flags] ", CommandSynopsis(command), "\n  ",
                      command.summary, "\n\n", kGlobalFlags);
}

std::string GroupUsage(const std::string& group) {
  std::string text = absl::StrCat("usage: compressctl [global flags] ", group, " VERB ...\n\n");
  for (const CommandSpec& command : Commands()) {
    if (command.group != group) continue;
    absl::StrAppend(&text, "  ", CommandSynopsis(command), "\n      ", command.summary, "\n");
  }
  return absl::StrCat(text, "\n", kGlobalFlags);
}

std::string UsageText() {
  std::string text = "usage: compressctl [global flags] GROUP VERB [args] [flags]\n\ncommands:\n";
  for (const CommandSpec& command : Commands()) {
    absl::StrAppend(&text, "  ", CommandSynopsis(command), "\n      ", command.summary, "\n");
  }
  return absl::StrCat(text, "\n", kGlobalFlags);
}

}  // namespace compressd::client
