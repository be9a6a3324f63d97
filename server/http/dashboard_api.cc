#include "server/http/dashboard_api.h"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/recipe.h"
#include "common/roles.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "server/auth/audit_log.h"
#include "server/core/event_bus.h"
#include "server/http/dashboard_api_internal.h"
#include "server/http/http_util.h"
#include "server/jobs/job_service.h"

namespace compressd {
namespace {

using nlohmann::json;

constexpr int kEventsDefaultLimit = 500;
constexpr int kEventsMaxLimit = 2000;
constexpr int64_t kMaxWaitMs = 10000;
constexpr int kApiJobsDefaultPage = 20;
constexpr int kApiJobsMaxPage = 100;

absl::StatusOr<v1::ListJobsRequest> ParseListJobs(const httplib::Request& req) {
  v1::ListJobsRequest list;
  if (req.has_param("state") && !req.get_param_value("state").empty()) {
    v1::JobState state;
    if (!v1::JobState_Parse(req.get_param_value("state"), &state)) {
      return absl::InvalidArgumentError(
          absl::StrCat("state: unknown job state \"", req.get_param_value("state"), "\""));
    }
    list.set_state(state);
  }
  ASSIGN_OR_RETURN(int64_t page_size,
                   IntParam(req, "page_size", kApiJobsDefaultPage, 1, kApiJobsMaxPage));
  list.set_page_size(static_cast<int>(page_size));
  list.set_page_token(req.get_param_value("page_token"));
  list.set_model_id(req.get_param_value("model"));
  list.set_tenant(req.get_param_value("tenant"));
  const std::string order = req.get_param_value("order");
  if (!order.empty() && order != "newest" && order != "oldest") {
    return absl::InvalidArgumentError(
        absl::StrCat("order: must be newest or oldest, got \"", order, "\""));
  }
  list.set_newest_first(order == "newest");
  return list;
}

// Events after `after`, waiting up to `wait_ms` for the first one.
absl::StatusOr<std::vector<v1::JobEvent>> PollEvents(const ServerCore& core,
                                                     const std::string& job_id, int64_t after,
                                                     int limit, int64_t wait_ms) {
  auto published = std::make_shared<absl::Notification>();
  const int64_t token = core.bus.Subscribe(job_id, [published, after](int64_t last) {
    if (last > after && !published->HasBeenNotified()) published->Notify();
  });
  absl::StatusOr<std::vector<v1::JobEvent>> events = core.jobs.ReadEvents(job_id, after, limit);
  if (events.ok() && events->empty() && wait_ms > 0 &&
      published->WaitForNotificationWithTimeout(absl::Milliseconds(wait_ms))) {
    events = core.jobs.ReadEvents(job_id, after, limit);
  }
  core.bus.Unsubscribe(token);
  return events;
}

absl::StatusOr<std::string> JobEvents(const ServerCore& core, const httplib::Request& req,
                                      const Principal& who) {
  const std::string id = PathParam(req, 1);
  ASSIGN_OR_RETURN(int64_t after, IntParam(req, "after", 0, 0, INT64_MAX));
  ASSIGN_OR_RETURN(int64_t limit, IntParam(req, "limit", kEventsDefaultLimit, 1, kEventsMaxLimit));
  ASSIGN_OR_RETURN(int64_t wait_ms, IntParam(req, "wait_ms", 0, 0, kMaxWaitMs));
  ASSIGN_OR_RETURN(v1::Job job, core.jobs.Get(id, who.scope()));
  ASSIGN_OR_RETURN(std::vector<v1::JobEvent> events,
                   PollEvents(core, id, after, static_cast<int>(limit), wait_ms));
  if (!events.empty()) {
    ASSIGN_OR_RETURN(job, core.jobs.Get(id, who.scope()));  // as of them
  }
  std::string body = absl::StrCat("{\"job\":", ProtoJson(job), ",\"events\":[");
  for (size_t i = 0; i < events.size(); ++i) {
    absl::StrAppend(&body, i ? "," : "", ProtoJson(events[i]));
  }
  absl::StrAppend(&body, "]}");
  return body;
}

// POST /api/jobs: {"model_id", "recipe" (YAML or JSON text), "dataset_ids", "priority"}.
absl::StatusOr<std::string> SubmitFromJson(const ServerCore& core, const httplib::Request& req,
                                           const Principal& who) {
  const json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) return absl::InvalidArgumentError("body: must be a JSON object");
  v1::SubmitJobRequest submit;
  if (!body.value("model_id", json()).is_string() || !body.value("recipe", json()).is_string()) {
    return absl::InvalidArgumentError("body: model_id and recipe (YAML text) are required strings");
  }
  submit.set_model_id(body["model_id"].get<std::string>());
  ASSIGN_OR_RETURN(*submit.mutable_recipe(), ParseRecipeText(body["recipe"].get<std::string>()));
  for (const json& id : body.value("dataset_ids", json::array())) {
    if (!id.is_string()) return absl::InvalidArgumentError("dataset_ids: must be strings");
    submit.add_dataset_ids(id.get<std::string>());
  }
  if (body.contains("priority")) {
    v1::Priority priority;
    if (!body["priority"].is_string() ||
        !v1::Priority_Parse(body["priority"].get<std::string>(), &priority)) {
      return absl::InvalidArgumentError("priority: must be PRIORITY_LOW, _NORMAL or _HIGH");
    }
    submit.set_priority(priority);
  }
  ASSIGN_OR_RETURN(v1::Job job, core.jobs.Submit(submit, who.scope(), who.key_id));
  AuditLog(core.store).Record(who, "SubmitJob", job.tenant(), job.id(), "dashboard");
  return ProtoJson(job);
}

void RegisterJobRoutes(httplib::Server& server, const ServerCore& core, Authenticator* auth) {
  const std::string job = absl::StrCat("/api/jobs/", kIdPattern);
  server.Get("/api/jobs", JsonHandler(auth, "CompressionService.ListJobs",
                                      [core](const httplib::Request& req, const Principal& who)
                                          -> absl::StatusOr<std::string> {
                                        ASSIGN_OR_RETURN(v1::ListJobsRequest list,
                                                         ParseListJobs(req));
                                        ASSIGN_OR_RETURN(v1::ListJobsResponse jobs,
                                                         core.jobs.List(list, who.scope()));
                                        return ProtoJson(jobs);
                                      }));
  server.Post("/api/jobs",
              JsonHandler(auth, "CompressionService.SubmitJob",
                          [core](const httplib::Request& req, const Principal& who) {
                            return SubmitFromJson(core, req, who);
                          }));
  server.Get(job, JsonHandler(auth, "CompressionService.GetJob",
                              [core](const httplib::Request& req, const Principal& who)
                                  -> absl::StatusOr<std::string> {
                                ASSIGN_OR_RETURN(v1::Job j,
                                                 core.jobs.Get(PathParam(req, 1), who.scope()));
                                return ProtoJson(j);
                              }));
  server.Get(job + "/events", JsonHandler(auth, "CompressionService.WatchJob",
                                          [core](const httplib::Request& req,
                                                 const Principal& who) {
                                            return JobEvents(core, req, who);
                                          }));
  server.Get(job + "/recipe.yaml", JsonHandler(auth, "CompressionService.GetJob",
                                               [core](const httplib::Request& req,
                                                      const Principal& who)
                                                   -> absl::StatusOr<std::string> {
                                                 ASSIGN_OR_RETURN(
                                                     v1::Job j,
                                                     core.jobs.Get(PathParam(req, 1), who.scope()));
                                                 return json(RecipeToYaml(j.recipe())).dump();
                                               }));
  server.Post(job + "/cancel", JsonHandler(auth, "CompressionService.CancelJob",
                                           [core](const httplib::Request& req, const Principal& who)
                                               -> absl::StatusOr<std::string> {
                                             ASSIGN_OR_RETURN(v1::Job j,
                                                              core.jobs.Cancel(PathParam(req, 1),
                                                                               who.scope()));
                                             AuditLog(core.store)
                                                 .Record(who, "CancelJob", j.tenant(), j.id(),
                                                         "dashboard");
                                             return ProtoJson(j);
                                           }));
}

}  // namespace

absl::StatusOr<int64_t> IntParam(const httplib::Request& req, const char* name, int64_t fallback,
                                 int64_t lo, int64_t hi) {
  if (!req.has_param(name) || req.get_param_value(name).empty()) return fallback;
  int64_t v = 0;
  if (!absl::SimpleAtoi(req.get_param_value(name), &v) || v < lo || v > hi) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": must be an integer in [", lo, ", ", hi, "]"));
  }
  return v;
}

void RegisterDashboardApi(httplib::Server& server, const ServerCore& core, Authenticator* auth) {
  server.Get("/api/whoami", JsonHandler(auth, "AdminService.WhoAmI",
                                        [](const httplib::Request&, const Principal& who)
                                            -> absl::StatusOr<std::string> {
                                          return json{{"key_id", who.key_id},
                                                      {"tenant", who.tenant},
                                                      {"role", RoleName(who.role)}}
                                              .dump();
                                        }));
  RegisterJobRoutes(server, core, auth);
  RegisterObjectRoutes(server, core, auth);
}

}  // namespace compressd
