#include "server/store/schema.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace compressd {
namespace {

using sql::Stmt;

// ---- SQLite ----
// 1: models, datasets, jobs, tasks, events, artifacts. 2: checkpoints. 3:
// parts (the statements are idempotent, so applying them upgrades an older
// database). 4: jobs.memory_needed. 5: jobs.device_needed
// (common/device_need.h). 6: tenants, api_keys, audit; a tenant column on
// models, datasets and jobs (rows from before are tenant "default"),
// jobs.priority, and request ids unique per tenant. Columns added after 3 are
// added to an older table by kAddedColumns. 7: indexes for listing a
// tenant's or a model's jobs newest first.
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
constexpr char kSqliteIndexes[] = R"sql(
DROP INDEX IF EXISTS jobs_by_request_id;
CREATE UNIQUE INDEX IF NOT EXISTS jobs_by_tenant_request_id ON jobs(tenant, request_id)
  WHERE request_id <> '';
CREATE INDEX IF NOT EXISTS jobs_by_tenant_state ON jobs(tenant, state);
CREATE INDEX IF NOT EXISTS models_by_tenant_time ON models(tenant, create_time_ms, id);
CREATE INDEX IF NOT EXISTS datasets_by_tenant_time ON datasets(tenant, create_time_ms, id);
CREATE INDEX IF NOT EXISTS jobs_by_tenant_time ON jobs(tenant, create_time_ms, id);
CREATE INDEX IF NOT EXISTS jobs_by_model_time ON jobs(model_id, create_time_ms, id);
INSERT INTO tenants (name, create_time_ms) VALUES ('default', 0) ON CONFLICT DO NOTHING;
)sql";

constexpr char kSqliteSchema[] = R"sql(
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

absl::Status ApplySqliteSchema(sql::Db* db) {
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
  sql::Transaction txn(db);
  RETURN_IF_ERROR(txn.status());
  RETURN_IF_ERROR(db->Exec(kSqliteSchema));
  // Checked inside the transaction: another process may have upgraded it.
  for (const AddedColumn& added : kAddedColumns) {
    ASSIGN_OR_RETURN(Stmt column,
                     Stmt::Prepare(db, absl::StrCat("SELECT COUNT(*) FROM pragma_table_info('",
                                                    added.table, "') WHERE name = ?")));
    column.Bind(1, added.column);
    ASSIGN_OR_RETURN(bool has_row, column.Step());
    if (has_row && column.Int(0) > 0) continue;
    RETURN_IF_ERROR(db->Exec(absl::StrCat("ALTER TABLE ", added.table, " ADD COLUMN ",
                                                  added.column, " ", added.definition)));
  }
  RETURN_IF_ERROR(db->Exec(kSqliteIndexes));
  RETURN_IF_ERROR(db->Exec(absl::StrCat("PRAGMA user_version=", kSchemaVersion)));
  return txn.Commit();
}


// ---- PostgreSQL ----
// Written out rather than derived from the SQLite text: the types differ
// column by column, and each dialect's later migrations will too.
// The same tables at schema 7, the first version PostgreSQL was supported at.
// Types: INTEGER columns are BIGINT (device_needed stays INTEGER: it is a
// shift count), BLOB is BYTEA, and jobs and api_keys get a BIGSERIAL `rowid`
// (SQLite's implicit one, which the Store orders by). Later versions append
// their statements to kPostgresMigrations.
constexpr char kPostgresSchema7[] = R"sql(
CREATE TABLE IF NOT EXISTS models (
  id TEXT PRIMARY KEY,
  create_time_ms BIGINT NOT NULL,
  proto BYTEA NOT NULL,
  tenant TEXT NOT NULL DEFAULT 'default');
CREATE INDEX IF NOT EXISTS models_by_time ON models(create_time_ms, id);
CREATE INDEX IF NOT EXISTS models_by_tenant_time ON models(tenant, create_time_ms, id);
CREATE TABLE IF NOT EXISTS datasets (
  id TEXT PRIMARY KEY,
  create_time_ms BIGINT NOT NULL,
  proto BYTEA NOT NULL,
  tenant TEXT NOT NULL DEFAULT 'default');
CREATE INDEX IF NOT EXISTS datasets_by_time ON datasets(create_time_ms, id);
CREATE INDEX IF NOT EXISTS datasets_by_tenant_time ON datasets(tenant, create_time_ms, id);
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY,
  model_id TEXT NOT NULL,
  state BIGINT NOT NULL,
  request_id TEXT NOT NULL DEFAULT '',
  create_time_ms BIGINT NOT NULL,
  proto BYTEA NOT NULL,
  memory_needed BIGINT NOT NULL DEFAULT 0,
  device_needed INTEGER NOT NULL DEFAULT 0,
  tenant TEXT NOT NULL DEFAULT 'default',
  priority BIGINT NOT NULL DEFAULT 2,
  rowid BIGSERIAL);
CREATE INDEX IF NOT EXISTS jobs_by_time ON jobs(create_time_ms, id);
CREATE INDEX IF NOT EXISTS jobs_by_state_time ON jobs(state, create_time_ms, id);
CREATE INDEX IF NOT EXISTS jobs_by_model ON jobs(model_id, state);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_by_tenant_request_id ON jobs(tenant, request_id)
  WHERE request_id <> '';
CREATE INDEX IF NOT EXISTS jobs_by_tenant_state ON jobs(tenant, state);
CREATE INDEX IF NOT EXISTS jobs_by_tenant_time ON jobs(tenant, create_time_ms, id);
CREATE INDEX IF NOT EXISTS jobs_by_model_time ON jobs(model_id, create_time_ms, id);
CREATE TABLE IF NOT EXISTS tasks (
  task_id TEXT PRIMARY KEY,
  job_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  worker_id TEXT NOT NULL DEFAULT '',
  lease_token TEXT NOT NULL DEFAULT '',
  lease_expire_ms BIGINT NOT NULL DEFAULT 0,
  cancel_requested BIGINT NOT NULL DEFAULT 0,
  UNIQUE (job_id, kind));
CREATE INDEX IF NOT EXISTS tasks_by_lease_expiry ON tasks(lease_expire_ms)
  WHERE lease_expire_ms > 0;
CREATE TABLE IF NOT EXISTS events (
  job_id TEXT NOT NULL,
  sequence BIGINT NOT NULL,
  time_ms BIGINT NOT NULL,
  proto BYTEA NOT NULL,
  PRIMARY KEY (job_id, sequence));
CREATE TABLE IF NOT EXISTS artifacts (
  id TEXT PRIMARY KEY,
  job_id TEXT NOT NULL,
  path TEXT NOT NULL,
  proto BYTEA NOT NULL,
  UNIQUE (job_id, path));
CREATE TABLE IF NOT EXISTS checkpoints (
  job_id TEXT NOT NULL,
  name TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  size BIGINT NOT NULL,
  created_ms BIGINT NOT NULL,
  PRIMARY KEY (job_id, name));
CREATE TABLE IF NOT EXISTS parts (
  part_id TEXT PRIMARY KEY,
  job_id TEXT NOT NULL,
  name TEXT NOT NULL,
  payload BYTEA NOT NULL,
  result TEXT NOT NULL,
  state BIGINT NOT NULL,
  worker_id TEXT NOT NULL DEFAULT '',
  lease_token TEXT NOT NULL DEFAULT '',
  lease_expire_ms BIGINT NOT NULL DEFAULT 0,
  failures BIGINT NOT NULL DEFAULT 0,
  error TEXT NOT NULL DEFAULT '',
  seq BIGINT NOT NULL,
  UNIQUE (job_id, name));
CREATE INDEX IF NOT EXISTS parts_by_state ON parts(state, seq);
CREATE INDEX IF NOT EXISTS parts_by_lease_expiry ON parts(lease_expire_ms)
  WHERE lease_expire_ms > 0;
CREATE TABLE IF NOT EXISTS tenants (
  name TEXT PRIMARY KEY,
  create_time_ms BIGINT NOT NULL,
  max_stored_bytes BIGINT NOT NULL DEFAULT 0,
  max_queued_jobs BIGINT NOT NULL DEFAULT 0,
  max_running_jobs BIGINT NOT NULL DEFAULT 0,
  lease_turn BIGINT NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS api_keys (
  key_id TEXT PRIMARY KEY,
  tenant TEXT NOT NULL,
  salt TEXT NOT NULL,
  hash TEXT NOT NULL,
  proto BYTEA NOT NULL,
  rowid BIGSERIAL);
CREATE TABLE IF NOT EXISTS audit (
  sequence BIGINT PRIMARY KEY,
  tenant TEXT NOT NULL,
  proto BYTEA NOT NULL);
INSERT INTO tenants (name, create_time_ms) VALUES ('default', 0) ON CONFLICT DO NOTHING;
)sql";

struct Migration {
  int version;
  const char* statements;
};
constexpr Migration kPostgresMigrations[] = {{7, kPostgresSchema7}};

absl::Status ApplyPostgresSchema(sql::Db* db) {
  sql::Transaction txn(db);  // the write lock: one replica migrates, the others wait
  RETURN_IF_ERROR(txn.status());
  RETURN_IF_ERROR(db->Exec("CREATE TABLE IF NOT EXISTS compressd_schema (version BIGINT NOT NULL)"));
  int64_t found = 0;
  {
    ASSIGN_OR_RETURN(Stmt version, Stmt::Prepare(db, "SELECT MAX(version) FROM compressd_schema"));
    ASSIGN_OR_RETURN(bool row, version.Step());
    found = row ? version.Int(0) : 0;
  }
  if (found > kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat("database schema version ", found,
                                                      " is newer than this server's (",
                                                      kSchemaVersion, ")"));
  }
  for (const Migration& migration : kPostgresMigrations) {
    if (migration.version <= found) continue;
    RETURN_IF_ERROR(db->Exec(migration.statements));
  }
  RETURN_IF_ERROR(db->Exec("DELETE FROM compressd_schema"));
  RETURN_IF_ERROR(
      db->Exec(absl::StrCat("INSERT INTO compressd_schema (version) VALUES (", kSchemaVersion, ")")));
  return txn.Commit();
}

}  // namespace

absl::Status ApplySchema(sql::Db* db) {
  return db->dialect() == sql::Dialect::kPostgres ? ApplyPostgresSchema(db)
                                                  : ApplySqliteSchema(db);
}

}  // namespace compressd
