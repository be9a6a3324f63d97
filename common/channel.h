// Client channels to compressd, shared by compressctl and compress-worker:
// plaintext or TLS (a CA bundle to verify the server, optionally a client
// certificate for mTLS), and the API key sent as "authorization: Bearer
// <key>" on every call by a client interceptor.
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/support/channel_arguments.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace compressd {

struct ChannelSecurity {
  std::string api_key;       // empty: no authorization header
  std::string ca_cert_path;  // empty: plaintext
  std::string cert_path;     // client certificate (mTLS); needs key_path
  std::string key_path;
};

// INVALID_ARGUMENT naming the flag for a file that cannot be read or a
// client certificate without its key.
absl::StatusOr<std::shared_ptr<grpc::Channel>> OpenChannel(const std::string& target,
                                                           const ChannelSecurity& security,
                                                           const grpc::ChannelArguments& args);

// The API key: the content of `key_file` when given, else $COMPRESSD_KEY,
// else the file named by $COMPRESSD_KEY_FILE, else "" (none). A key file
// readable by group or others is FAILED_PRECONDITION.
absl::StatusOr<std::string> LoadApiKey(const std::string& key_file);

}  // namespace compressd
