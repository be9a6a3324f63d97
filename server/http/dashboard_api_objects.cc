#include <algorithm>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "common/util.h"
#include "nlohmann/json.hpp"
#include "server/http/dashboard_api_internal.h"
#include "server/http/http_auth.h"
#include "server/http/http_util.h"
#include "server/jobs/job_service.h"
#include "server/metrics/server_metrics.h"
#include "server/models/model_registry.h"
#include "server/scheduler/scheduler.h"
#include "server/store/blob_store.h"
#include "server/store/store.h"
#include "server/auth/permissions.h"

namespace compressd {
namespace {

using nlohmann::json;

constexpr int kModelJobs = 200;      // jobs shown with a model
constexpr size_t kChunk = 1 << 20;   // artifact bytes per read

// The job a worker's task or part belongs to ("" when unknown).
std::string JobOfTask(Store& store, const std::string& task_id) {
  if (task_id.empty()) return "";
  if (IsPartId(task_id)) {
    absl::StatusOr<PartRecord> part = store.GetPart(task_id);
    return part.ok() ? part->job_id : "";
  }
  absl::StatusOr<TaskRecord> task = store.GetTask(task_id);
  return task.ok() ? task->job_id : "";
}

absl::StatusOr<std::string> Workers(const ServerCore& core, const Principal& who) {
  const int64_t now = NowMs();
  json out = json::array();
  for (const WorkerView& w : core.scheduler.Workers()) {
    std::string job_id = JobOfTask(core.store, w.task_id);
    // Another tenant's work stays hidden: only that the worker is busy shows.
    const bool visible = !job_id.empty() && core.jobs.Get(job_id, who.scope()).ok();
    out.push_back({{"worker_id", w.worker_id},
                   {"name", w.info.name()},
                   {"device", w.info.device()},
                   {"device_name", w.info.device_name()},
                   {"device_memory_bytes", w.info.device_memory_bytes()},
                   {"threads", w.info.threads()},
                   {"memory_bytes", w.info.memory_bytes()},
                   {"busy", !w.task_id.empty()},
                   {"task_id", visible ? w.task_id : ""},
                   {"job_id", visible ? job_id : ""},
                   {"lease_age_ms", w.task_id.empty() ? 0 : now - w.task_since_ms},
                   {"busy_ms", w.busy_ms},
                   {"connected_ms", now - w.registered_ms},
                   {"last_seen_ms", now - w.last_seen_ms}});
  }
  return json{{"workers", out},
              {"queue_depth", core.metrics.queue_depth().Value()}}
      .dump();
}

absl::StatusOr<std::string> ModelWithJobs(const ServerCore& core, const std::string& id,
                                          const Principal& who) {
  ASSIGN_OR_RETURN(v1::Model model, core.models.GetModel(id, who.scope()));
  v1::ListJobsRequest list;
  list.set_model_id(id);
  list.set_newest_first(true);
  list.set_page_size(kModelJobs);
  ASSIGN_OR_RETURN(v1::ListJobsResponse jobs, core.jobs.List(list, who.scope()));
  return absl::StrCat("{\"model\":", ProtoJson(model), ",\"jobs\":", ProtoJson(jobs), "}");
}

void DownloadArtifact(const ServerCore& core, Authenticator* auth, const httplib::Request& req,
                      httplib::Response& res) {
  absl::StatusOr<Principal> who = HttpPrincipal(auth, req);
  if (who.ok() && auth != nullptr) {
    absl::Status allowed = CheckPermission(who->role, "CompressionService.DownloadArtifact");
    if (!allowed.ok()) who = allowed;
  }
  if (!who.ok()) return SendJsonError(who.status(), res);
  const std::string id = PathParam(req, 1);
  absl::StatusOr<v1::Artifact> artifact = core.store.GetArtifact(id);
  if (artifact.ok() && !core.jobs.Get(artifact->job_id(), who->scope()).ok()) {
    artifact = absl::NotFoundError(absl::StrCat("artifact ", id, " not found"));
  }
  if (!artifact.ok()) return SendJsonError(artifact.status(), res);
  // cpp-httplib 0.11 serves a range starting past the end as 206: refuse it.
  const std::string range_header = req.get_header_value("Range");
  absl::string_view range = range_header;
  uint64_t first = 0;
  if (absl::ConsumePrefix(&range, "bytes=") &&
      absl::SimpleAtoi(range.substr(0, range.find('-')), &first) && first >= artifact->size()) {
    res.set_header("Content-Range", absl::StrCat("bytes */", artifact->size()));
    return SendJsonError(absl::OutOfRangeError(absl::StrCat("Range: starts at byte ", first,
                                                            ", past the end of artifact ", id,
                                                            " (", artifact->size(), " bytes)")),
                         res);
  }
  const std::string name = artifact->path().substr(artifact->path().rfind('/') + 1);
  res.set_header("Content-Disposition", absl::StrCat("attachment; filename=\"", name, "\""));
  res.set_header("Accept-Ranges", "bytes");
  res.set_header("X-Content-Sha256", artifact->sha256());
  BlobStore& blobs = core.blobs;
  const std::string sha = artifact->sha256();
  // cpp-httplib answers Range requests (206, or 416 for an unsatisfiable
  // range) by asking the provider for just those bytes.
  res.set_content_provider(
      artifact->size(), "application/octet-stream",
      [&blobs, sha](size_t offset, size_t length, httplib::DataSink& sink) {
        std::string chunk;
        if (!blobs.ReadAt(sha, offset, std::min(length, kChunk), &chunk).ok() ||
            chunk.empty()) {
          return false;  // the connection is closed: a short download, never wrong bytes
        }
        return sink.write(chunk.data(), chunk.size());
      });
}

}  // namespace

void RegisterObjectRoutes(httplib::Server& server, const ServerCore& core, Authenticator* auth) {
  server.Get("/api/models", JsonHandler(auth, "CompressionService.ListModels",
                                        [core](const httplib::Request& req, const Principal& who)
                                            -> absl::StatusOr<std::string> {
                                          v1::ListModelsRequest list;
                                          list.set_page_token(req.get_param_value("page_token"));
                                          ASSIGN_OR_RETURN(v1::ListModelsResponse models,
                                                           core.models.ListModels(list, who.scope()));
                                          return ProtoJson(models);
                                        }));
  server.Get(absl::StrCat("/api/models/", kIdPattern),
             JsonHandler(auth, "CompressionService.GetModel",
                         [core](const httplib::Request& req, const Principal& who) {
                           return ModelWithJobs(core, PathParam(req, 1), who);
                         }));
  server.Get("/api/datasets", JsonHandler(auth, "CompressionService.ListDatasets",
                                          [core](const httplib::Request& req, const Principal& who)
                                              -> absl::StatusOr<std::string> {
                                            v1::ListDatasetsRequest list;
                                            list.set_page_token(req.get_param_value("page_token"));
                                            ASSIGN_OR_RETURN(
                                                v1::ListDatasetsResponse sets,
                                                core.models.ListDatasets(list, who.scope()));
                                            return ProtoJson(sets);
                                          }));
  server.Get("/api/workers", JsonHandler(auth, "CompressionService.ListJobs",
                                         [core](const httplib::Request&, const Principal& who) {
                                           return Workers(core, who);
                                         }));
  server.Get(absl::StrCat("/api/artifacts/", kIdPattern),
             [core, auth](const httplib::Request& req, httplib::Response& res) {
               DownloadArtifact(core, auth, req, res);
             });
}

}  // namespace compressd
