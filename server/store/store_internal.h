// Helpers shared by the Store's .cc files; not part of Store's API (nothing
// outside server/store/ includes this header).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/status_macros.h"
#include "server/store/page_token.h"
#include "server/store/sql/db.h"
#include "server/store/store.h"

namespace compressd::store_internal {

// SQLite integers are signed.
inline int64_t ClampToInt64(uint64_t v) {
  return v > uint64_t{INT64_MAX} ? INT64_MAX : static_cast<int64_t>(v);
}

// Rows written before schema 6 carry no tenant in their proto: they are the
// default tenant's (as their tenant column says).
template <typename T>
void FillTenant(T& record) {
  if (record.tenant().empty()) record.set_tenant(kDefaultTenant);
}

// Reads one page from `stmt`, which selects (proto, create_time_ms, id) in
// (create_time_ms, id) order with LIMIT page_size + 1; the extra row only
// signals that another page exists.
template <typename T>
absl::StatusOr<Page<T>> ReadPage(sql::Stmt& stmt, int page_size, std::string_view what) {
  Page<T> page;
  PagePosition last;
  while (true) {
    ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    if (static_cast<int>(page.items.size()) == page_size) {
      page.next_page_token = EncodePageToken(last);
      break;
    }
    T item;
    RETURN_IF_ERROR(stmt.Proto(0, &item, what));
    FillTenant(item);
    last.create_time_ms = stmt.Int(1);
    last.id = stmt.Text(2);
    page.items.push_back(std::move(item));
  }
  return page;
}

// The position a list starts after: the token's, or before everything.
inline absl::StatusOr<PagePosition> StartPosition(const std::string& page_token) {
  if (page_token.empty()) return PagePosition{INT64_MIN, ""};
  return DecodePageToken(page_token);
}

// Deletes every checkpoint row of the job (within the caller's transaction).
absl::Status DeleteCheckpoints(sql::Db* db, const std::string& job_id);
// A part's lease as a TaskRecord (kind "part").
inline TaskRecord PartLease(const PartRecord& part) {
  TaskRecord task;
  task.task_id = part.part_id;
  task.job_id = part.job_id;
  task.kind = "part";
  task.worker_id = part.worker_id;
  task.lease_token = part.lease_token;
  task.lease_expire_ms = part.lease_expire_ms;
  return task;
}

// The first column (text) of every row `stmt` selects, in order.
inline absl::StatusOr<std::vector<std::string>> ReadFirstColumn(sql::Stmt& stmt) {
  std::vector<std::string> values;
  while (true) {
    ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    values.push_back(stmt.Text(0));
  }
  return values;
}

// Gives `tenant` the newest lease turn (fair scheduling: Store::OldestQueuedJob).
absl::Status TakeLeaseTurn(sql::Db* db, const std::string& tenant);

// Deletes every part of the job (within the caller's transaction).
absl::Status DeleteParts(sql::Db* db, const std::string& job_id);

}  // namespace compressd::store_internal
