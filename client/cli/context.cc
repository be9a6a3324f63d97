#include "client/cli/context.h"

#include "common/status_macros.h"

namespace compressd::client {

absl::StatusOr<Connection*> CommandContext::connection() {
  if (connection_ == nullptr) {
    ChannelSecurity security;
    ASSIGN_OR_RETURN(security.api_key, LoadApiKey(invocation_.key_file));
    security.ca_cert_path = invocation_.ca_cert;
    ASSIGN_OR_RETURN(connection_, Connection::Open(invocation_.server, security));
  }
  return connection_.get();
}

}  // namespace compressd::client
