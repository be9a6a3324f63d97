// Store: parts of running jobs (fan-out), leased to workers like tasks.

#include <algorithm>
#include <optional>

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "compressd/v1/worker.pb.h"
#include "server/store/sql/db.h"
#include "server/store/store.h"
#include "server/store/store_internal.h"

namespace compressd {
namespace {

using sql::Stmt;

constexpr char kColumns[] =
    "part_id, job_id, name, payload, result, state, worker_id, lease_token, lease_expire_ms,"
    " failures, error";

PartRecord ReadPart(const Stmt& stmt) {
  PartRecord part;
  part.part_id = stmt.Text(0);
  part.job_id = stmt.Text(1);
  part.name = stmt.Text(2);
  part.payload = stmt.Blob(3);
  part.result = stmt.Text(4);
  part.state = static_cast<int>(stmt.Int(5));
  part.worker_id = stmt.Text(6);
  part.lease_token = stmt.Text(7);
  part.lease_expire_ms = stmt.Int(8);
  part.failures = static_cast<int>(stmt.Int(9));
  part.error = stmt.Text(10);
  return part;
}

}  // namespace

bool IsPartId(const std::string& task_id) { return absl::StartsWith(task_id, "part-"); }

namespace store_internal {

absl::Status DeleteParts(sql::Db* db, const std::string& job_id) {
  ASSIGN_OR_RETURN(Stmt del, Stmt::Prepare(db, "DELETE FROM parts WHERE job_id = ?"));
  return del.Bind(1, job_id).Run();
}

}  // namespace store_internal

absl::StatusOr<PartRecord> Store::LoadPartLocked(const std::string& part_id) {
  ASSIGN_OR_RETURN(Stmt stmt, Stmt::Prepare(db_, absl::StrCat("SELECT ", kColumns,
                                                              " FROM parts WHERE part_id = ?")));
  stmt.Bind(1, part_id);
  ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) {
    return absl::NotFoundError(
        absl::StrCat("part ", part_id, " not found (its job is no longer running)"));
  }
  return ReadPart(stmt);
}

absl::Status Store::SavePartLocked(const PartRecord& part) {
  if (part.state == v1::PartStatus::QUEUED) RETURN_IF_ERROR(NotifyLocked(kWorkChannel, ""));
  ASSIGN_OR_RETURN(Stmt update,
                   Stmt::Prepare(db_, "UPDATE parts SET state = ?, worker_id = ?, lease_token = ?,"
                                      " lease_expire_ms = ?, failures = ?, error = ?"
                                      " WHERE part_id = ?"));
  return update.Bind(1, int64_t{part.state})
      .Bind(2, part.worker_id)
      .Bind(3, part.lease_token)
      .Bind(4, part.lease_expire_ms)
      .Bind(5, int64_t{part.failures})
      .Bind(6, part.error)
      .Bind(7, part.part_id)
      .Run();
}

absl::StatusOr<int> Store::SubmitParts(
    const std::string& job_id, const std::vector<PartRecord>& parts,
    const std::function<absl::Status(const v1::Job&, const TaskRecord&)>& check) {
  absl::MutexLock lock(&mu_);
  sql::Transaction txn(db_);
  RETURN_IF_ERROR(txn.status());
  ASSIGN_OR_RETURN(v1::Job job, LoadJobLocked(job_id));
  ASSIGN_OR_RETURN(TaskRecord task, LoadTaskLocked(job_id));
  RETURN_IF_ERROR(check(job, task));
  ASSIGN_OR_RETURN(Stmt next, Stmt::Prepare(db_, "SELECT COALESCE(MAX(seq), 0) FROM parts"));
  ASSIGN_OR_RETURN(bool row, next.Step());
  int64_t seq = row ? next.Int(0) : 0;
  int added = 0;
  for (const PartRecord& p : parts) {
    ASSIGN_OR_RETURN(Stmt insert,
                     Stmt::Prepare(db_, "INSERT INTO parts (part_id, job_id, name, payload,"
                                        " result, state, seq) VALUES (?, ?, ?, ?, ?, ?, ?)"
                                        " ON CONFLICT DO NOTHING"));
    insert.Bind(1, p.part_id)
        .Bind(2, job_id)
        .Bind(3, p.name)
        .BindBlob(4, p.payload)
        .Bind(5, p.result)
        .Bind(6, int64_t{v1::PartStatus::QUEUED})
        .Bind(7, ++seq);
    RETURN_IF_ERROR(insert.Run());
    added += db_->Changes() > 0 ? 1 : 0;
  }
  if (added > 0) RETURN_IF_ERROR(NotifyLocked(kWorkChannel, ""));
  RETURN_IF_ERROR(txn.Commit());
  return added;
}

absl::StatusOr<std::optional<PartRecord>> Store::LeaseQueuedPart(
    const std::string& job_id, const std::string& worker_id, const std::string& lease_token,
    int64_t expire_ms,
    const std::function<absl::Status(const v1::Job&, const TaskRecord&)>& check) {
  absl::MutexLock lock(&mu_);
  sql::Transaction txn(db_);
  RETURN_IF_ERROR(txn.status());
  if (!job_id.empty()) {
    ASSIGN_OR_RETURN(v1::Job job, LoadJobLocked(job_id));
    ASSIGN_OR_RETURN(TaskRecord task, LoadTaskLocked(job_id));
    if (check) RETURN_IF_ERROR(check(job, task));
  }
  ASSIGN_OR_RETURN(Stmt stmt,
                   Stmt::Prepare(db_, absl::StrCat("SELECT ", kColumns, " FROM parts WHERE state = ?",
                                                   job_id.empty() ? "" : " AND job_id = ?",
                                                   " ORDER BY seq LIMIT 1")));
  stmt.Bind(1, int64_t{v1::PartStatus::QUEUED});
  if (!job_id.empty()) stmt.Bind(2, job_id);
  ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return std::optional<PartRecord>();
  PartRecord part = ReadPart(stmt);
  part.state = v1::PartStatus::LEASED;
  part.worker_id = worker_id;
  part.lease_token = lease_token;
  part.lease_expire_ms = expire_ms;
  RETURN_IF_ERROR(SavePartLocked(part));
  RETURN_IF_ERROR(txn.Commit());
  return std::optional<PartRecord>(std::move(part));
}

absl::StatusOr<std::vector<PartRecord>> Store::GetParts(const std::string& job_id,
                                                        const std::vector<std::string>& names) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Stmt stmt, Stmt::Prepare(db_, absl::StrCat("SELECT ", kColumns,
                                                              " FROM parts WHERE job_id = ?"
                                                              " ORDER BY seq")));
  stmt.Bind(1, job_id);
  std::vector<PartRecord> all;
  while (true) {
    ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    all.push_back(ReadPart(stmt));
  }
  if (names.empty()) return all;
  std::vector<PartRecord> out;
  for (const std::string& name : names) {
    auto it = std::find_if(all.begin(), all.end(),
                           [&](const PartRecord& p) { return p.name == name; });
    if (it == all.end()) {
      return absl::NotFoundError(absl::StrCat("names: job ", job_id, " has no part \"", name,
                                              "\" in its current attempt"));
    }
    out.push_back(*it);
  }
  return out;
}

absl::StatusOr<PartRecord> Store::GetPart(const std::string& part_id) {
  absl::MutexLock lock(&mu_);
  return LoadPartLocked(part_id);
}

absl::Status Store::UpdatePart(const std::string& part_id, const PartMutation& fn) {
  absl::MutexLock lock(&mu_);
  sql::Transaction txn(db_);
  RETURN_IF_ERROR(txn.status());
  ASSIGN_OR_RETURN(PartRecord part, LoadPartLocked(part_id));
  ASSIGN_OR_RETURN(v1::Job job, LoadJobLocked(part.job_id));
  RETURN_IF_ERROR(fn(job, part));
  RETURN_IF_ERROR(SavePartLocked(part));
  return txn.Commit();
}

absl::StatusOr<std::vector<PartRecord>> Store::ExpiredParts(int64_t now_ms) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Stmt stmt, Stmt::Prepare(db_, absl::StrCat("SELECT ", kColumns,
                                                              " FROM parts WHERE lease_expire_ms"
                                                              " > 0 AND lease_expire_ms <= ?"
                                                              " ORDER BY lease_expire_ms")));
  stmt.Bind(1, now_ms);
  std::vector<PartRecord> parts;
  while (true) {
    ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    parts.push_back(ReadPart(stmt));
  }
  return parts;
}

}  // namespace compressd
