#include "client/cli/context.h"

#include "common/status_macros.h"

namespace compressd::client {

absl::StatusOr<Connection*> CommandContext::connection() {
  if (connection_ == nullptr) {
    ASSIGN_OR_RETURN(connection_, Connection::Open(invocation_.server));
  }
  return connection_.get();
}

}  // namespace compressd::client
