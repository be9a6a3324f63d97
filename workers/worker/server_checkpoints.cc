#include "workers/worker/server_checkpoints.h"

#include <utility>

#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/util.h"

namespace compressd {

ServerCheckpointStore::ServerCheckpointStore(WorkerClient& client, std::string task_id,
                                             std::string lease_token, Retry retry,
                                             std::function<void()> on_lease_lost)
    : client_(client),
      task_id_(std::move(task_id)),
      lease_token_(std::move(lease_token)),
      retry_(std::move(retry)),
      on_lease_lost_(std::move(on_lease_lost)) {}

absl::Status ServerCheckpointStore::Call(const std::function<absl::Status()>& call) const {
  absl::Status st = retry_ ? retry_(call) : call();
  if (st.code() == absl::StatusCode::kFailedPrecondition && on_lease_lost_) on_lease_lost_();
  return st;
}

absl::Status ServerCheckpointStore::Put(const std::string& name, const std::string& bytes) {
  RETURN_IF_ERROR(ValidatePortableRelativePath(name, "checkpoint name"));
  v1::PutCheckpointHeader header;
  header.set_task_id(task_id_);
  header.set_lease_token(lease_token_);
  header.set_name(name);
  header.set_size(bytes.size());
  header.set_sha256(Sha256Hex(bytes));
  return Call([&] { return client_.PutCheckpoint(header, bytes).status(); });
}

absl::StatusOr<std::string> ServerCheckpointStore::Get(const std::string& name) {
  RETURN_IF_ERROR(ValidatePortableRelativePath(name, "checkpoint name"));
  v1::GetCheckpointRequest req;
  req.set_task_id(task_id_);
  req.set_lease_token(lease_token_);
  req.set_name(name);
  std::string content;
  RETURN_IF_ERROR(Call([&] {
    content.clear();  // a retry reads from the start
    return client_.GetCheckpoint(req, [&](absl::string_view chunk) {
      content.append(chunk.data(), chunk.size());
      return absl::OkStatus();
    });
  }));
  return content;
}

}  // namespace compressd
