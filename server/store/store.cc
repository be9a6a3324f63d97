#include "server/store/store.h"

#include <sqlite3.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/util.h"
#include "server/store/sqlite_util.h"
#include "server/store/store_internal.h"

namespace compressd {
namespace {

using sqlite::Stmt;
using store_internal::ReadPage;
using store_internal::StartPosition;

// 1: models, datasets, jobs, tasks, events, artifacts. 2: checkpoints. 3:
// parts (the statements are idempotent, so applying them upgrades an older
// database). 4: jobs.memory_needed. 5: jobs.device_needed
// (common/device_need.h). 6: tenants, api_keys, audit; a tenant column on
// models, datasets and jobs (rows from before are tenant "default"),
// jobs.priority, and request ids unique per tenant. Columns added after 3 are
// added to an older table by kAddedColumns. 7: indexes for listing a
// tenant's or a model's jobs newest first.
constexpr int kSchemaVersion = 7;
struct AddedColumn {
  const char* table;
  const char* column;
  const char* definition;
};
constexpr AddedColumn kAddedColumns[] = {
    {"jobs", "memory_needed", "INTEGER NOT NULL DEFAULT 0"},
    {"jobs", "device_needed", "INTEGER NOT NULL DEFAULT 0"},
    {"jobs", "tenant", "TEXT NOT NULL DEFAULT 'default'"},
    {"jobs", "priority", "INTEGER NOT NULL DEFAULT 2"},
    {"models", "tenant", "TEXT NOT NULL DEFAULT 'default'"},
    {"datasets", "tenant", "TEXT NOT NULL DEFAULT 'default'"},
};

// Indexes on added columns: created once every column exists.
constexpr char kIndexes[] = R"sql(
DROP INDEX IF EXISTS jobs_by_request_id;
CREATE UNIQUE INDEX IF NOT EXISTS jobs_by_tenant_request_id ON jobs(tenant, request_id)
  WHERE request_id <> '';
CREATE INDEX IF NOT EXISTS jobs_by_tenant_state ON jobs(tenant, state);
CREATE INDEX IF NOT EXISTS models_by_tenant_time ON models(tenant, create_time_ms, id);
CREATE INDEX IF NOT EXISTS datasets_by_tenant_time ON datasets(tenant, create_time_ms, id);
CREATE INDEX IF NOT EXISTS jobs_by_tenant_time ON jobs(tenant, create_time_ms, id);
CREATE INDEX IF NOT EXISTS jobs_by_model_time ON jobs(model_id, create_time_ms, id);
INSERT OR IGNORE INTO tenants (name, create_time_ms) VALUES ('default', 0);
)sql";

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS models (
  id TEXT PRIMARY KEY,
  create_time_ms INTEGER NOT NULL,
  proto BLOB NOT NULL,
  tenant TEXT NOT NULL DEFAULT 'default');
CREATE INDEX IF NOT EXISTS models_by_time ON models(create_time_ms, id);
CREATE TABLE IF NOT EXISTS datasets (
  id TEXT PRIMARY KEY,
  create_time_ms INTEGER NOT NULL,
  proto BLOB NOT NULL,
  tenant TEXT NOT NULL DEFAULT 'default');
CREATE INDEX IF NOT EXISTS datasets_by_time ON datasets(create_time_ms, id);
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY,
  model_id TEXT NOT NULL,
  state INTEGER NOT NULL,
  request_id TEXT NOT NULL DEFAULT '',
  create_time_ms INTEGER NOT NULL,
  proto BLOB NOT NULL,
  memory_needed INTEGER NOT NULL DEFAULT 0,
  device_needed INTEGER NOT NULL DEFAULT 0,
  tenant TEXT NOT NULL DEFAULT 'default',
  priority INTEGER NOT NULL DEFAULT 2);
CREATE INDEX IF NOT EXISTS jobs_by_time ON jobs(create_time_ms, id);
CREATE INDEX IF NOT EXISTS jobs_by_state_time ON jobs(state, create_time_ms, id);
CREATE INDEX IF NOT EXISTS jobs_by_model ON jobs(model_id, state);
CREATE TABLE IF NOT EXISTS tasks (
  task_id TEXT PRIMARY KEY,
  job_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  worker_id TEXT NOT NULL DEFAULT '',
  lease_token TEXT NOT NULL DEFAULT '',
  lease_expire_ms INTEGER NOT NULL DEFAULT 0,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  UNIQUE (job_id, kind));
CREATE INDEX IF NOT EXISTS tasks_by_lease_expiry ON tasks(lease_expire_ms)
  WHERE lease_expire_ms > 0;
CREATE TABLE IF NOT EXISTS events (
  job_id TEXT NOT NULL,
  sequence INTEGER NOT NULL,
  time_ms INTEGER NOT NULL,
  proto BLOB NOT NULL,
  PRIMARY KEY (job_id, sequence)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS artifacts (
  id TEXT PRIMARY KEY,
  job_id TEXT NOT NULL,
  path TEXT NOT NULL,
  proto BLOB NOT NULL,
  UNIQUE (job_id, path));
CREATE TABLE IF NOT EXISTS checkpoints (
  job_id TEXT NOT NULL,
  name TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  size INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  PRIMARY KEY (job_id, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS parts (
  part_id TEXT PRIMARY KEY,
  job_id TEXT NOT NULL,
  name TEXT NOT NULL,
  payload BLOB NOT NULL,
  result TEXT NOT NULL,
  state INTEGER NOT NULL,
  worker_id TEXT NOT NULL DEFAULT '',
  lease_token TEXT NOT NULL DEFAULT '',
  lease_expire_ms INTEGER NOT NULL DEFAULT 0,
  failures INTEGER NOT NULL DEFAULT 0,
  error TEXT NOT NULL DEFAULT '',
  seq INTEGER NOT NULL,
  UNIQUE (job_id, name));
CREATE INDEX IF NOT EXISTS parts_by_state ON parts(state, seq);
CREATE INDEX IF NOT EXISTS parts_by_lease_expiry ON parts(lease_expire_ms)
  WHERE lease_expire_ms > 0;
CREATE TABLE IF NOT EXISTS tenants (
  name TEXT PRIMARY KEY,
  create_time_ms INTEGER NOT NULL,
  max_stored_bytes INTEGER NOT NULL DEFAULT 0,
  max_queued_jobs INTEGER NOT NULL DEFAULT 0,
  max_running_jobs INTEGER NOT NULL DEFAULT 0,
  lease_turn INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS api_keys (
  key_id TEXT PRIMARY KEY,
  tenant TEXT NOT NULL,
  salt TEXT NOT NULL,
  hash TEXT NOT NULL,
  proto BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS audit (
  sequence INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant TEXT NOT NULL,
  proto BLOB NOT NULL);
)sql";

absl::Status ApplySchema(sqlite3* db) {
  RETURN_IF_ERROR(sqlite::Exec(db, "PRAGMA journal_mode=WAL"));
  RETURN_IF_ERROR(sqlite::Exec(db, "PRAGMA synchronous=FULL"));
  int64_t found = 0;
  {  // finalized before the schema changes: DROP INDEX needs no statement pending
    ASSIGN_OR_RETURN(Stmt version, Stmt::Prepare(db, "PRAGMA user_version"));
    ASSIGN_OR_RETURN(bool row, version.Step());
    found = row ? version.Int(0) : 0;
  }
  if (found > kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat("database schema version ", found,
                                                      " is newer than this server's (",
                                                      kSchemaVersion, ")"));
  }
  sqlite::Transaction txn(db);
  RETURN_IF_ERROR(txn.status());
  RETURN_IF_ERROR(sqlite::Exec(db, kSchema));
  // Checked inside the transaction: another process may have upgraded it.
  for (const AddedColumn& added : kAddedColumns) {
    ASSIGN_OR_RETURN(Stmt column,
                     Stmt::Prepare(db, absl::StrCat("SELECT COUNT(*) FROM pragma_table_info('",
                                                    added.table, "') WHERE name = ?")));
    column.Bind(1, added.column);
    ASSIGN_OR_RETURN(bool has_row, column.Step());
    if (has_row && column.Int(0) > 0) continue;
    RETURN_IF_ERROR(sqlite::Exec(db, absl::StrCat("ALTER TABLE ", added.table, " ADD COLUMN ",
                                                  added.column, " ", added.definition)));
  }
  RETURN_IF_ERROR(sqlite::Exec(db, kIndexes));
  RETURN_IF_ERROR(sqlite::Exec(db, absl::StrCat("PRAGMA user_version=", kSchemaVersion)));
  return txn.Commit();
}

template <typename T>
absl::Status InsertRecord(sqlite3* db, const char* table, const T& record) {
  if (record.id().empty()) return absl::InvalidArgumentError(absl::StrCat(table, ": empty id"));
  const std::string tenant = record.tenant().empty() ? kDefaultTenant : record.tenant();
  ASSIGN_OR_RETURN(Stmt stmt, Stmt::Prepare(db, absl::StrCat("INSERT INTO ", table,
                                                             " (id, create_time_ms, proto, tenant)"
                                                             " VALUES (?, ?, ?, ?)")));
  return stmt.Bind(1, record.id())
      .Bind(2, record.create_time_ms())
      .BindProto(3, record)
      .Bind(4, tenant)
      .Run();
}

template <typename T>
absl::StatusOr<T> GetRecord(sqlite3* db, const char* table, const char* noun,
                            const std::string& id) {
  ASSIGN_OR_RETURN(Stmt stmt,
                   Stmt::Prepare(db, absl::StrCat("SELECT proto FROM ", table, " WHERE id = ?")));
  stmt.Bind(1, id);
  ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return absl::NotFoundError(absl::StrCat(noun, " ", id, " not found"));
  T record;
  RETURN_IF_ERROR(stmt.Proto(0, &record, absl::StrCat(noun, " ", id)));
  return record;
}

// `tenant` empty: every tenant's records.
template <typename T>
absl::StatusOr<Page<T>> ListRecords(sqlite3* db, const char* table, const std::string& tenant,
                                    int page_size, const std::string& page_token) {
  ASSIGN_OR_RETURN(PagePosition start, StartPosition(page_token));
  ASSIGN_OR_RETURN(Stmt stmt,
                   Stmt::Prepare(db, absl::StrCat("SELECT proto, create_time_ms, id FROM ", table,
                                                  " WHERE (create_time_ms, id) > (?, ?)"
                                                  " AND (?4 = '' OR tenant = ?4)"
                                                  " ORDER BY create_time_ms, id"
                                                  " LIMIT ?3")));
  stmt.Bind(1, start.create_time_ms).Bind(2, start.id).Bind(3, int64_t{page_size} + 1);
  stmt.Bind(4, tenant);
  return ReadPage<T>(stmt, page_size, table);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    absl::Status status = absl::InternalError(
        absl::StrCat("cannot open database ", path, ": ", db ? sqlite3_errmsg(db) : "out of memory"));
    sqlite3_close(db);
    return status;
  }
  sqlite3_busy_timeout(db, 5000);
  absl::Status schema = ApplySchema(db);
  if (!schema.ok()) {
    sqlite3_close(db);
    return absl::Status(schema.code(), absl::StrCat(path, ": ", schema.message()));
  }
  return std::unique_ptr<Store>(new Store(db));
}

Store::~Store() {
  absl::MutexLock lock(&mu_);
  sqlite3_close(db_);
}

absl::Status Store::InsertModel(const v1::Model& model) {
  absl::MutexLock lock(&mu_);
  return InsertRecord(db_, "models", model);
}

absl::StatusOr<v1::Model> Store::GetModel(const std::string& id) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(v1::Model model, GetRecord<v1::Model>(db_, "models", "model", id));
  store_internal::FillTenant(model);
  return model;
}

absl::StatusOr<Page<v1::Model>> Store::ListModels(int page_size, const std::string& page_token,
                                                  const std::string& tenant) {
  ASSIGN_OR_RETURN(int size, NormalizePageSize(page_size));
  absl::MutexLock lock(&mu_);
  return ListRecords<v1::Model>(db_, "models", tenant, size, page_token);
}

absl::Status Store::DeleteModel(const std::string& id) {
  absl::MutexLock lock(&mu_);
  sqlite::Transaction txn(db_);
  RETURN_IF_ERROR(txn.status());
  RETURN_IF_ERROR(GetRecord<v1::Model>(db_, "models", "model", id).status());
  ASSIGN_OR_RETURN(Stmt busy, Stmt::Prepare(db_,
                                            "SELECT id FROM jobs WHERE model_id = ? AND state IN "
                                            "(?, ?) ORDER BY create_time_ms LIMIT 1"));
  busy.Bind(1, id).Bind(2, int64_t{v1::QUEUED}).Bind(3, int64_t{v1::RUNNING});
  ASSIGN_OR_RETURN(bool in_use, busy.Step());
  if (in_use) {
    return absl::FailedPreconditionError(absl::StrCat(
        "model ", id, " is used by job ", busy.Text(0), ", which is QUEUED or RUNNING"));
  }
  ASSIGN_OR_RETURN(Stmt del, Stmt::Prepare(db_, "DELETE FROM models WHERE id = ?"));
  RETURN_IF_ERROR(del.Bind(1, id).Run());
  RETURN_IF_ERROR(store_internal::DeleteCheckpoints(db_, SharedCheckpointOwner(id)));
  return txn.Commit();
}

absl::Status Store::DeleteDataset(const std::string& id) {
  absl::MutexLock lock(&mu_);
  sqlite::Transaction txn(db_);
  RETURN_IF_ERROR(txn.status());
  RETURN_IF_ERROR(GetRecord<v1::Dataset>(db_, "datasets", "dataset", id).status());
  // Jobs name their datasets inside the record: read the live ones (few).
  ASSIGN_OR_RETURN(Stmt live, Stmt::Prepare(db_,
                                            "SELECT id, proto FROM jobs WHERE state IN (?, ?)"
                                            " ORDER BY create_time_ms, id"));
  live.Bind(1, int64_t{v1::QUEUED}).Bind(2, int64_t{v1::RUNNING});
  while (true) {
    ASSIGN_OR_RETURN(bool row, live.Step());
    if (!row) break;
    v1::Job job;
    RETURN_IF_ERROR(live.Proto(1, &job, absl::StrCat("job ", live.Text(0))));
    for (const std::string& used : job.dataset_ids()) {
      if (used == id) {
        return absl::FailedPreconditionError(absl::StrCat(
            "dataset ", id, " is used by job ", job.id(), ", which is QUEUED or RUNNING"));
      }
    }
  }
  ASSIGN_OR_RETURN(Stmt del, Stmt::Prepare(db_, "DELETE FROM datasets WHERE id = ?"));
  RETURN_IF_ERROR(del.Bind(1, id).Run());
  return txn.Commit();
}

absl::Status Store::InsertDataset(const v1::Dataset& dataset) {
  absl::MutexLock lock(&mu_);
  return InsertRecord(db_, "datasets", dataset);
}

absl::StatusOr<v1::Dataset> Store::GetDataset(const std::string& id) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(v1::Dataset dataset, GetRecord<v1::Dataset>(db_, "datasets", "dataset", id));
  store_internal::FillTenant(dataset);
  return dataset;
}

absl::StatusOr<Page<v1::Dataset>> Store::ListDatasets(int page_size, const std::string& page_token,
                                                      const std::string& tenant) {
  ASSIGN_OR_RETURN(int size, NormalizePageSize(page_size));
  absl::MutexLock lock(&mu_);
  return ListRecords<v1::Dataset>(db_, "datasets", tenant, size, page_token);
}

// ---- events ----

absl::StatusOr<int64_t> Store::AppendEventsLocked(const std::string& job_id,
                                                  std::vector<v1::JobEvent>& events) {
  if (events.empty()) return 0;
  ASSIGN_OR_RETURN(Stmt last, Stmt::Prepare(db_,
                                            "SELECT COALESCE(MAX(sequence), 0) FROM events"
                                            " WHERE job_id = ?"));
  last.Bind(1, job_id);
  ASSIGN_OR_RETURN(bool row, last.Step());
  int64_t seq = row ? last.Int(0) : 0;
  int64_t now = NowMs();
  for (v1::JobEvent& event : events) {
    event.set_sequence(++seq);
    if (event.time_ms() == 0) event.set_time_ms(now);
    ASSIGN_OR_RETURN(Stmt insert, Stmt::Prepare(db_,
                                                "INSERT INTO events (job_id, sequence, time_ms,"
                                                " proto) VALUES (?, ?, ?, ?)"));
    RETURN_IF_ERROR(
        insert.Bind(1, job_id).Bind(2, seq).Bind(3, event.time_ms()).BindProto(4, event).Run());
  }
  return seq;
}

absl::StatusOr<int64_t> Store::AppendEvents(const std::string& job_id,
                                            std::vector<v1::JobEvent> events) {
  absl::MutexLock lock(&mu_);
  sqlite::Transaction txn(db_);
  RETURN_IF_ERROR(txn.status());
  ASSIGN_OR_RETURN(Stmt exists, Stmt::Prepare(db_, "SELECT 1 FROM jobs WHERE id = ?"));
  exists.Bind(1, job_id);
  ASSIGN_OR_RETURN(bool found, exists.Step());
  if (!found) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  ASSIGN_OR_RETURN(int64_t seq, AppendEventsLocked(job_id, events));
  RETURN_IF_ERROR(txn.Commit());
  return seq;
}

absl::StatusOr<std::vector<v1::JobEvent>> Store::ReadEvents(const std::string& job_id,
                                                            int64_t after_sequence, int limit) {
  if (limit <= 0) limit = 1000;
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Stmt stmt, Stmt::Prepare(db_,
                                            "SELECT proto FROM events WHERE job_id = ? AND"
                                            " sequence > ? ORDER BY sequence LIMIT ?"));
  stmt.Bind(1, job_id).Bind(2, after_sequence).Bind(3, int64_t{limit});
  std::vector<v1::JobEvent> events;
  while (true) {
    ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    RETURN_IF_ERROR(stmt.Proto(0, &events.emplace_back(), absl::StrCat("event of job ", job_id)));
  }
  return events;
}

// ---- artifacts ----

absl::Status Store::InsertArtifact(const v1::Artifact& artifact) {
  if (artifact.id().empty()) return absl::InvalidArgumentError("artifact: empty id");
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Stmt stmt, Stmt::Prepare(db_,
                                            "INSERT OR REPLACE INTO artifacts (id, job_id, path,"
                                            " proto) VALUES (?, ?, ?, ?)"));
  return stmt.Bind(1, artifact.id())
      .Bind(2, artifact.job_id())
      .Bind(3, artifact.path())
      .BindProto(4, artifact)
      .Run();
}

absl::StatusOr<v1::Artifact> Store::GetArtifact(const std::string& id) {
  absl::MutexLock lock(&mu_);
  return GetRecord<v1::Artifact>(db_, "artifacts", "artifact", id);
}

}  // namespace compressd
