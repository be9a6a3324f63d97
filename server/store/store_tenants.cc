// Store: tenants and their quotas and lease turns, API keys, the audit trail,
// and the fair choice of the next job to lease.

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/util.h"
#include "server/store/store.h"
#include "server/store/store_internal.h"

namespace compressd {
namespace {

using sql::Stmt;

using store_internal::ClampToInt64;
constexpr char kTenantColumns[] =
    "name, create_time_ms, max_stored_bytes, max_queued_jobs, max_running_jobs";

v1::Tenant ReadTenant(const Stmt& stmt) {
  v1::Tenant tenant;
  tenant.set_name(stmt.Text(0));
  tenant.set_create_time_ms(stmt.Int(1));
  tenant.mutable_quota()->set_max_stored_bytes(static_cast<uint64_t>(stmt.Int(2)));
  tenant.mutable_quota()->set_max_queued_jobs(static_cast<int32_t>(stmt.Int(3)));
  tenant.mutable_quota()->set_max_running_jobs(static_cast<int32_t>(stmt.Int(4)));
  return tenant;
}

// The sum of total_bytes over the tenant's models or datasets (T).
template <typename T>
absl::StatusOr<uint64_t> SumStoredBytes(sql::Db* db, const char* table, const std::string& tenant) {
  ASSIGN_OR_RETURN(Stmt stmt, Stmt::Prepare(db, absl::StrCat("SELECT id, proto FROM ", table,
                                                             " WHERE tenant = ?")));
  stmt.Bind(1, tenant);
  uint64_t total = 0;
  while (true) {
    ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    T record;
    RETURN_IF_ERROR(stmt.Proto(1, &record, absl::StrCat(table, " ", stmt.Text(0))));
    total += record.total_bytes();
  }
  return total;
}

absl::StatusOr<TenantUsage> UsageLocked(sql::Db* db, const std::string& tenant) {
  TenantUsage usage;
  ASSIGN_OR_RETURN(uint64_t models, SumStoredBytes<v1::Model>(db, "models", tenant));
  ASSIGN_OR_RETURN(uint64_t datasets, SumStoredBytes<v1::Dataset>(db, "datasets", tenant));
  usage.stored_bytes = models + datasets;
  ASSIGN_OR_RETURN(Stmt jobs, Stmt::Prepare(db,
                                            "SELECT state, COUNT(*) FROM jobs"
                                            " WHERE tenant = ? AND state IN (?, ?)"
                                            " GROUP BY state"));
  jobs.Bind(1, tenant).Bind(2, int64_t{v1::QUEUED}).Bind(3, int64_t{v1::RUNNING});
  while (true) {
    ASSIGN_OR_RETURN(bool row, jobs.Step());
    if (!row) break;
    (jobs.Int(0) == v1::QUEUED ? usage.queued_jobs : usage.running_jobs) = jobs.Int(1);
  }
  return usage;
}

void SetUsage(const TenantUsage& usage, v1::Tenant* tenant) {
  tenant->set_stored_bytes(usage.stored_bytes);
  tenant->set_queued_jobs(static_cast<int32_t>(usage.queued_jobs));
  tenant->set_running_jobs(static_cast<int32_t>(usage.running_jobs));
}

}  // namespace

namespace store_internal {
absl::Status TakeLeaseTurn(sql::Db* db, const std::string& tenant) {
  ASSIGN_OR_RETURN(Stmt stmt, Stmt::Prepare(db,
                                            "UPDATE tenants SET lease_turn ="
                                            " (SELECT COALESCE(MAX(lease_turn), 0) + 1"
                                            "  FROM tenants) WHERE name = ?"));
  return stmt.Bind(1, tenant).Run();
}
}  // namespace store_internal

absl::StatusOr<std::optional<std::string>> Store::OldestQueuedJob(uint64_t worker_memory,
                                                                  int device_mask) {
  absl::MutexLock lock(&mu_);
  // A tenant with no row (none in practice: keys need one) takes turn 0.
  ASSIGN_OR_RETURN(Stmt stmt,
                   Stmt::Prepare(db_,
                                 "SELECT j.id FROM jobs j LEFT JOIN tenants t ON t.name = j.tenant"
                                 " WHERE j.state = ?1 AND j.memory_needed <= ?2"
                                 " AND ((1 << j.device_needed) & ?3) != 0"
                                 " AND (COALESCE(t.max_running_jobs, 0) = 0 OR"
                                 "  (SELECT COUNT(*) FROM jobs r WHERE r.tenant = j.tenant"
                                 "   AND r.state = ?4) < t.max_running_jobs)"
                                 " ORDER BY COALESCE(t.lease_turn, 0), j.priority DESC,"
                                 " j.create_time_ms, j.rowid LIMIT 1"));
  stmt.Bind(1, int64_t{v1::QUEUED})
      .Bind(2, ClampToInt64(worker_memory))
      .Bind(3, int64_t{device_mask})
      .Bind(4, int64_t{v1::RUNNING});
  ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(stmt.Text(0));
}

absl::Status Store::InsertTenant(const v1::Tenant& tenant) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Stmt stmt,
                   Stmt::Prepare(db_, absl::StrCat("INSERT INTO tenants (", kTenantColumns,
                                                   ") VALUES (?, ?, ?, ?, ?)")));
  absl::Status status = stmt.Bind(1, tenant.name())
                            .Bind(2, tenant.create_time_ms())
                            .Bind(3, ClampToInt64(tenant.quota().max_stored_bytes()))
                            .Bind(4, int64_t{tenant.quota().max_queued_jobs()})
                            .Bind(5, int64_t{tenant.quota().max_running_jobs()})
                            .Run();
  if (absl::IsAlreadyExists(status)) {
    return absl::AlreadyExistsError(absl::StrCat("tenant \"", tenant.name(), "\" already exists"));
  }
  return status;
}

absl::StatusOr<v1::Tenant> Store::GetTenant(const std::string& name) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Stmt stmt, Stmt::Prepare(db_, absl::StrCat("SELECT ", kTenantColumns,
                                                              " FROM tenants WHERE name = ?")));
  stmt.Bind(1, name);
  ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return absl::NotFoundError(absl::StrCat("tenant \"", name, "\" not found"));
  v1::Tenant tenant = ReadTenant(stmt);
  ASSIGN_OR_RETURN(TenantUsage usage, UsageLocked(db_, name));
  SetUsage(usage, &tenant);
  return tenant;
}

absl::StatusOr<std::vector<v1::Tenant>> Store::ListTenants() {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Stmt stmt, Stmt::Prepare(db_, absl::StrCat("SELECT ", kTenantColumns,
                                                              " FROM tenants ORDER BY name")));
  std::vector<v1::Tenant> tenants;
  while (true) {
    ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    tenants.push_back(ReadTenant(stmt));
  }
  for (v1::Tenant& tenant : tenants) {
    ASSIGN_OR_RETURN(TenantUsage usage, UsageLocked(db_, tenant.name()));
    SetUsage(usage, &tenant);
  }
  return tenants;
}

absl::Status Store::SetQuota(const std::string& tenant, const v1::Quota& quota) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Stmt stmt, Stmt::Prepare(db_,
                                            "UPDATE tenants SET max_stored_bytes = ?,"
                                            " max_queued_jobs = ?, max_running_jobs = ?"
                                            " WHERE name = ?"));
  RETURN_IF_ERROR(stmt.Bind(1, ClampToInt64(quota.max_stored_bytes()))
                      .Bind(2, int64_t{quota.max_queued_jobs()})
                      .Bind(3, int64_t{quota.max_running_jobs()})
                      .Bind(4, tenant)
                      .Run());
  if (db_->Changes() == 0) {
    return absl::NotFoundError(absl::StrCat("tenant \"", tenant, "\" not found"));
  }
  return absl::OkStatus();
}

absl::StatusOr<TenantUsage> Store::Usage(const std::string& tenant) {
  absl::MutexLock lock(&mu_);
  return UsageLocked(db_, tenant);
}

absl::StatusOr<std::vector<std::pair<std::string, int>>> Store::TenantsAtRunningLimit() {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Stmt stmt, Stmt::Prepare(db_,
                                            "SELECT t.name, t.max_running_jobs FROM tenants t"
                                            " WHERE t.max_running_jobs > 0 AND"
                                            " (SELECT COUNT(*) FROM jobs r WHERE"
                                            "  r.tenant = t.name AND r.state = ?)"
                                            " >= t.max_running_jobs ORDER BY t.name"));
  stmt.Bind(1, int64_t{v1::RUNNING});
  std::vector<std::pair<std::string, int>> full;
  while (true) {
    ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    full.emplace_back(stmt.Text(0), static_cast<int>(stmt.Int(1)));
  }
  return full;
}

absl::StatusOr<std::vector<std::string>> Store::QueuedJobsOfTenant(const std::string& tenant,
                                                                   int limit) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Stmt stmt, Stmt::Prepare(db_,
                                            "SELECT id FROM jobs WHERE tenant = ? AND state = ?"
                                            " ORDER BY create_time_ms, rowid LIMIT ?"));
  stmt.Bind(1, tenant).Bind(2, int64_t{v1::QUEUED}).Bind(3, int64_t{limit});
  return store_internal::ReadFirstColumn(stmt);
}

absl::Status Store::InsertKey(const ApiKeyRecord& record) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Stmt stmt, Stmt::Prepare(db_,
                                            "INSERT INTO api_keys (key_id, tenant, salt, hash,"
                                            " proto) VALUES (?, ?, ?, ?, ?)"));
  return stmt.Bind(1, record.key.key_id())
      .Bind(2, record.key.tenant())
      .Bind(3, record.salt)
      .Bind(4, record.hash)
      .BindProto(5, record.key)
      .Run();
}

absl::StatusOr<ApiKeyRecord> Store::GetKey(const std::string& key_id) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Stmt stmt,
                   Stmt::Prepare(db_, "SELECT salt, hash, proto FROM api_keys WHERE key_id = ?"));
  stmt.Bind(1, key_id);
  ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return absl::NotFoundError(absl::StrCat("key ", key_id, " not found"));
  ApiKeyRecord record;
  record.salt = stmt.Text(0);
  record.hash = stmt.Text(1);
  RETURN_IF_ERROR(stmt.Proto(2, &record.key, absl::StrCat("key ", key_id)));
  return record;
}

absl::StatusOr<std::vector<v1::ApiKey>> Store::ListKeys(const std::string& tenant) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Stmt stmt, Stmt::Prepare(db_,
                                            "SELECT key_id, proto FROM api_keys"
                                            " WHERE ?1 = '' OR tenant = ?1 ORDER BY rowid"));
  stmt.Bind(1, tenant);
  std::vector<v1::ApiKey> keys;
  while (true) {
    ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    RETURN_IF_ERROR(stmt.Proto(1, &keys.emplace_back(), absl::StrCat("key ", stmt.Text(0))));
  }
  return keys;
}

absl::Status Store::UpdateKey(const v1::ApiKey& key) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Stmt stmt, Stmt::Prepare(db_, "UPDATE api_keys SET proto = ? WHERE key_id = ?"));
  RETURN_IF_ERROR(stmt.BindProto(1, key).Bind(2, key.key_id()).Run());
  if (db_->Changes() == 0) {
    return absl::NotFoundError(absl::StrCat("key ", key.key_id(), " not found"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> Store::AppendAudit(v1::AuditEvent event) {
  if (event.time_ms() == 0) event.set_time_ms(NowMs());
  absl::MutexLock lock(&mu_);
  sql::Transaction txn(db_);
  RETURN_IF_ERROR(txn.status());
  ASSIGN_OR_RETURN(Stmt next,
                   Stmt::Prepare(db_, "SELECT COALESCE(MAX(sequence), 0) + 1 FROM audit"));
  ASSIGN_OR_RETURN(bool row, next.Step());
  event.set_sequence(row ? next.Int(0) : 1);
  ASSIGN_OR_RETURN(
      Stmt insert,
      Stmt::Prepare(db_, "INSERT INTO audit (sequence, tenant, proto) VALUES (?, ?, ?)"));
  RETURN_IF_ERROR(
      insert.Bind(1, event.sequence()).Bind(2, event.tenant()).BindProto(3, event).Run());
  RETURN_IF_ERROR(txn.Commit());
  return event.sequence();
}

absl::StatusOr<std::vector<v1::AuditEvent>> Store::ListAudit(const std::string& tenant,
                                                             int64_t after_sequence, int limit) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Stmt stmt, Stmt::Prepare(db_,
                                            "SELECT sequence, proto FROM audit"
                                            " WHERE sequence > ?1 AND (?2 = '' OR tenant = ?2)"
                                            " ORDER BY sequence LIMIT ?3"));
  stmt.Bind(1, after_sequence).Bind(2, tenant).Bind(3, int64_t{limit});
  std::vector<v1::AuditEvent> events;
  while (true) {
    ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    RETURN_IF_ERROR(
        stmt.Proto(1, &events.emplace_back(), absl::StrCat("audit event ", stmt.Int(0))));
  }
  return events;
}

}  // namespace compressd
