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

// `target` is HOST:PORT, a gRPC target URI (dns:///name:port, whose several
// records a "round_robin" policy in `args` spreads over), or a comma-separated
// list of IP:PORT (several replicas: ListTarget). With a list, the channel
// uses the policy `args` names: gRPC's default pick_first connects to the
// first replica that answers and moves to the next when it goes away (what a
// worker wants: its registration lives on one replica); compressctl asks for
// round_robin. INVALID_ARGUMENT naming the flag for a file that cannot be read
// or a client certificate without its key.
absl::StatusOr<std::shared_ptr<grpc::Channel>> OpenChannel(const std::string& target,
                                                           const ChannelSecurity& security,
                                                           const grpc::ChannelArguments& args);

// "10.0.0.1:50051,10.0.0.2:50051" -> "ipv4:10.0.0.1:50051,10.0.0.2:50051" (and
// [v6]:port lists -> "ipv6:..."); a target without a comma is returned as it
// is. INVALID_ARGUMENT for a list with a host name or mixed families.
absl::StatusOr<std::string> ListTarget(const std::string& target);

// The API key: the content of `key_file` when given, else $COMPRESSD_KEY,
// else the file named by $COMPRESSD_KEY_FILE, else "" (none). A key file
// readable by group or others is FAILED_PRECONDITION.
absl::StatusOr<std::string> LoadApiKey(const std::string& key_file);

}  // namespace compressd
