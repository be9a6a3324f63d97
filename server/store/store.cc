#include "server/store/store.h"


#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "common/util.h"
#include "server/store/schema.h"
#include "server/store/sql/db.h"
#include "server/store/store_internal.h"

namespace compressd {
namespace {

using sql::Stmt;
using store_internal::ReadPage;
using store_internal::StartPosition;

template <typename T>
absl::Status InsertRecord(sql::Db* db, const char* table, const T& record) {
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
absl::StatusOr<T> GetRecord(sql::Db* db, const char* table, const char* noun,
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
absl::StatusOr<Page<T>> ListRecords(sql::Db* db, const char* table, const std::string& tenant,
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

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& target) {
  absl::StatusOr<std::unique_ptr<sql::Db>> db = sql::Open(target);
  if (!db.ok()) return db.status();
  absl::Status schema = ApplySchema(db->get());
  if (!schema.ok()) {
    return absl::Status(schema.code(),
                        absl::StrCat(sql::IsPostgresTarget(target) ? "postgresql" : target, ": ",
                                     schema.message()));
  }
  return std::unique_ptr<Store>(new Store(std::move(*db), target));
}

Store::Store(std::unique_ptr<sql::Db> db, std::string target)
    : owned_db_(std::move(db)), db_(owned_db_.get()), target_(std::move(target)),
      shared_(owned_db_->dialect() == sql::Dialect::kPostgres), origin_(NewId("store-")) {}

Store::~Store() { StopListening(); }

absl::Status Store::NotifyLocked(const char* channel, const std::string& what) {
  if (!shared_) return absl::OkStatus();
  return db_->Notify(channel, absl::StrCat(origin_, " ", what));
}

absl::Status Store::ListenForChanges(ChangeHandlers handlers) {
  if (!shared_) return absl::OkStatus();
  auto on_notify = [this, handlers](const std::string& channel, const std::string& payload) {
    std::vector<std::string> words = absl::StrSplit(payload, ' ');
    if (words.empty() || words[0] == origin_) return;  // our own, already handled here
    if (channel == kWorkChannel) {
      if (handlers.on_work) handlers.on_work();
      return;
    }
    int64_t seq = 0;
    if (words.size() == 3 && absl::SimpleAtoi(words[2], &seq) && handlers.on_events) {
      handlers.on_events(words[1], seq);
    }
  };
  auto listener = std::make_unique<sql::Listener>(
      target_, std::vector<std::string>{kEventsChannel, kWorkChannel}, on_notify,
      handlers.on_reconnect ? handlers.on_reconnect : [] {});
  RETURN_IF_ERROR(listener->Start());
  absl::MutexLock lock(&listener_mu_);
  listener_ = std::move(listener);
  return absl::OkStatus();
}

void Store::StopListening() {
  std::unique_ptr<sql::Listener> listener;
  {
    absl::MutexLock lock(&listener_mu_);
    listener = std::move(listener_);
  }
  if (listener) listener->Stop();
}

absl::StatusOr<bool> Store::RunExclusive(int64_t duty, const std::function<void()>& fn) {
  {
    absl::MutexLock lock(&mu_);
    ASSIGN_OR_RETURN(bool taken, db_->TryLock(duty));
    if (!taken) return false;
  }
  fn();
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(db_->Unlock(duty));
  return true;
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
  sql::Transaction txn(db_);
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
  sql::Transaction txn(db_);
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
  RETURN_IF_ERROR(NotifyLocked(kEventsChannel, absl::StrCat(job_id, " ", seq)));
  return seq;
}

absl::StatusOr<int64_t> Store::AppendEvents(const std::string& job_id,
                                            std::vector<v1::JobEvent> events) {
  absl::MutexLock lock(&mu_);
  sql::Transaction txn(db_);
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
                                            "INSERT INTO artifacts (id, job_id, path, proto)"
                                            " VALUES (?, ?, ?, ?) ON CONFLICT (job_id, path)"
                                            " DO UPDATE SET id = excluded.id,"
                                            " proto = excluded.proto"));
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
