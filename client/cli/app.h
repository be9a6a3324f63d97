// compressctl's top level: parse the command line, run the command, print
// errors, and choose the exit code.
#pragma once

#include <string>
#include <vector>

#include "client/cli/output.h"

namespace compressd::client {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // an RPC or local error, or a job that did not succeed
inline constexpr int kExitUsage = 2;    // bad command line

// True if `group verb` has an implementation (every entry of Commands() must).
bool HasHandler(const std::string& group, const std::string& verb);

// `args` excludes the program name; `env_server` is $COMPRESSD_SERVER (may be null).
int RunCompressctl(const std::vector<std::string>& args, Io io, const char* env_server);

}  // namespace compressd::client
