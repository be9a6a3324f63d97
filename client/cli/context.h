// What a command runs with: the parsed invocation, where to print, and the
// connection to compressd (opened on first use). Not thread-safe.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "client/cli/args.h"
#include "client/cli/connection.h"
#include "client/cli/output.h"

namespace compressd::client {

class CommandContext {
 public:
  CommandContext(const Invocation& invocation, Io io) : invocation_(invocation), io_(io) {}
  // For tests: use an already open connection.
  CommandContext(const Invocation& invocation, Io io, std::unique_ptr<Connection> connection)
      : invocation_(invocation), io_(io), connection_(std::move(connection)) {}

  const Invocation& invocation() const { return invocation_; }
  bool json() const { return invocation_.json; }
  std::ostream& out() { return io_.out; }
  std::ostream& err() { return io_.err; }
  // True when progress bars should be drawn on err() (a terminal, not --json).
  bool show_progress_bar() const { return io_.err_is_tty && !invocation_.json; }

  // Connects to invocation().server on first use (see Connection::Open).
  absl::StatusOr<Connection*> connection();

 private:
  const Invocation& invocation_;
  Io io_;
  std::unique_ptr<Connection> connection_;
};

}  // namespace compressd::client
