#include "client/cli/connection.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace compressd::client {

namespace {
constexpr int kMaxReceiveMessageBytes = 64 << 20;
}  // namespace

Connection::Connection(std::string target, std::shared_ptr<grpc::Channel> channel)
    : target_(std::move(target)),
      channel_(std::move(channel)),
      stub_(v1::CompressionService::NewStub(channel_)),
      admin_(v1::AdminService::NewStub(channel_)) {}

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(
    const std::string& target, const ChannelSecurity& security,
    std::chrono::milliseconds connect_timeout) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxReceiveMessageBytes);
  // Calls spread over the replicas of a list (or of a DNS name's records).
  args.SetLoadBalancingPolicyName("round_robin");
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel, OpenChannel(target, security, args));
  std::unique_ptr<Connection> connection(new Connection(target, std::move(channel)));
  if (!connection->WaitForConnected(connect_timeout)) {
    return absl::UnavailableError(absl::StrCat("cannot reach compressd at ", target));
  }
  return connection;
}

bool Connection::WaitForConnected(std::chrono::milliseconds timeout) {
  return channel_->WaitForConnected(std::chrono::system_clock::now() + timeout);
}

void SetUnaryDeadline(grpc::ClientContext* context) {
  context->set_deadline(std::chrono::system_clock::now() + kUnaryDeadline);
}

}  // namespace compressd::client
