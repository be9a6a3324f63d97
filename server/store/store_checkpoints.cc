// Store: checkpoints of jobs, (job_id, name) -> blob, kept across attempts;
// the blobs every row refers to (ReferencedBlobs).

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/store/lease_check.h"
#include "server/store/sql/db.h"
#include "server/store/store.h"
#include "server/store/store_internal.h"

namespace compressd {
namespace {

using sql::Stmt;

constexpr char kColumns[] = "job_id, name, sha256, size, created_ms";

CheckpointRecord ReadCheckpoint(const Stmt& stmt) {
  CheckpointRecord record;
  record.job_id = stmt.Text(0);
  record.name = stmt.Text(1);
  record.sha256 = stmt.Text(2);
  record.size = static_cast<uint64_t>(stmt.Int(3));
  record.created_ms = stmt.Int(4);
  return record;
}

// Calls `f` with the proto of every row of `table`.
template <typename T, typename F>
absl::Status ForEachProto(sql::Db* db, const char* table, F f) {
  ASSIGN_OR_RETURN(Stmt stmt, Stmt::Prepare(db, absl::StrCat("SELECT proto FROM ", table)));
  while (true) {
    ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) return absl::OkStatus();
    T record;
    RETURN_IF_ERROR(stmt.Proto(0, &record, table));
    f(record);
  }
}

}  // namespace

namespace store_internal {

absl::Status DeleteCheckpoints(sql::Db* db, const std::string& job_id) {
  ASSIGN_OR_RETURN(Stmt del, Stmt::Prepare(db, "DELETE FROM checkpoints WHERE job_id = ?"));
  return del.Bind(1, job_id).Run();
}

}  // namespace store_internal

absl::Status Store::PutCheckpoint(const CheckpointRecord& record, const JobCheck& check,
                                  const std::string& lease_task_id,
                                  const std::string& lease_job_id) {
  if (record.name.empty()) return absl::InvalidArgumentError("checkpoint: empty name");
  const std::string& job_id = lease_job_id.empty() ? record.job_id : lease_job_id;
  absl::MutexLock lock(&mu_);
  sql::Transaction txn(db_);
  RETURN_IF_ERROR(txn.status());
  ASSIGN_OR_RETURN(v1::Job job, LoadJobLocked(job_id));
  TaskRecord task;
  if (IsPartId(lease_task_id)) {
    absl::StatusOr<PartRecord> found = LoadPartLocked(lease_task_id);
    if (!found.ok()) return PartGone(found.status(), lease_task_id);
    const PartRecord& part = *found;
    if (part.job_id != job_id) {
      return absl::InvalidArgumentError(absl::StrCat("part ", lease_task_id, " is not of job ",
                                                     job_id));
    }
    task = store_internal::PartLease(part);
  } else {
    ASSIGN_OR_RETURN(task, LoadTaskLocked(job_id));
  }
  RETURN_IF_ERROR(check(job, task));
  ASSIGN_OR_RETURN(Stmt insert,
                   Stmt::Prepare(db_, absl::StrCat("INSERT INTO checkpoints (", kColumns,
                                                   ") VALUES (?, ?, ?, ?, ?)"
                                                   " ON CONFLICT (job_id, name) DO UPDATE SET"
                                                   " sha256 = excluded.sha256, size ="
                                                   " excluded.size, created_ms ="
                                                   " excluded.created_ms")));
  RETURN_IF_ERROR(insert.Bind(1, record.job_id)
                      .Bind(2, record.name)
                      .Bind(3, record.sha256)
                      .Bind(4, static_cast<int64_t>(record.size))
                      .Bind(5, record.created_ms)
                      .Run());
  return txn.Commit();
}

absl::StatusOr<CheckpointRecord> Store::GetCheckpoint(const std::string& job_id,
                                                      const std::string& name) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Stmt stmt, Stmt::Prepare(db_, absl::StrCat("SELECT ", kColumns,
                                                              " FROM checkpoints"
                                                              " WHERE job_id = ? AND name = ?")));
  stmt.Bind(1, job_id).Bind(2, name);
  ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) {
    return absl::NotFoundError(absl::StrCat("job ", job_id, " has no checkpoint \"", name, "\""));
  }
  return ReadCheckpoint(stmt);
}

absl::StatusOr<std::vector<CheckpointRecord>> Store::ListCheckpoints(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Stmt stmt, Stmt::Prepare(db_, absl::StrCat("SELECT ", kColumns,
                                                              " FROM checkpoints WHERE job_id = ?"
                                                              " ORDER BY name")));
  stmt.Bind(1, job_id);
  std::vector<CheckpointRecord> records;
  while (true) {
    ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    records.push_back(ReadCheckpoint(stmt));
  }
  return records;
}

absl::StatusOr<std::set<std::string>> Store::ReferencedBlobs() {
  absl::MutexLock lock(&mu_);
  sql::Transaction txn(db_);
  RETURN_IF_ERROR(txn.status());
  std::set<std::string> refs;
  {
    ASSIGN_OR_RETURN(Stmt stmt, Stmt::Prepare(db_, "SELECT sha256 FROM checkpoints"));
    while (true) {
      ASSIGN_OR_RETURN(bool row, stmt.Step());
      if (!row) break;
      refs.insert(stmt.Text(0));
    }
  }
  // The records whose protos name files.
  RETURN_IF_ERROR(ForEachProto<v1::Model>(db_, "models", [&](const v1::Model& m) {
    for (const v1::FileEntry& f : m.files()) refs.insert(f.sha256());
  }));
  RETURN_IF_ERROR(ForEachProto<v1::Dataset>(db_, "datasets", [&](const v1::Dataset& d) {
    for (const v1::FileEntry& f : d.files()) refs.insert(f.sha256());
  }));
  RETURN_IF_ERROR(ForEachProto<v1::Artifact>(
      db_, "artifacts", [&](const v1::Artifact& a) { refs.insert(a.sha256()); }));
  RETURN_IF_ERROR(txn.Commit());
  return refs;
}

}  // namespace compressd
