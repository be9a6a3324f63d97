// The JSON API behind the dashboard pages (docs/api.md, "HTTP API"): every
// endpoint mirrors a gRPC method and is authorised as that method (the same
// permissions table, the same tenant scope), so a key sees and does on the
// dashboard exactly what it could through compressctl.
//
//   GET  /api/whoami                      the caller's key id, tenant and role
//   GET  /api/jobs                        ListJobs; query: state, model, tenant (admins),
//                                         order=newest|oldest, page_size, page_token
//   POST /api/jobs                        SubmitJob; body {"model_id", "recipe" (YAML),
//                                         "dataset_ids", "priority"}
//   GET  /api/jobs/ID                     GetJob
//   GET  /api/jobs/ID/events              WatchJob as a poll: query after (a sequence),
//                                         limit, wait_ms (long-poll up to 10 s for new events);
//                                         answers {"job": Job, "events": [JobEvent]}
//   GET  /api/jobs/ID/recipe.yaml         the job's recipe as YAML
//   POST /api/jobs/ID/cancel              CancelJob
//   GET  /api/artifacts/ID                DownloadArtifact: the bytes; Range requests resume
//   GET  /api/models, /api/models/ID      ListModels; GetModel with its jobs, newest first
//   GET  /api/datasets                    ListDatasets
//   GET  /api/workers                     the connected workers (task ids of other tenants hidden)
#pragma once

#include <httplib.h>

#include "server/auth/authenticator.h"
#include "server/server_core.h"

namespace compressd {

// `auth` null: no key checks (tests of the HTTP layer alone).
void RegisterDashboardApi(httplib::Server& server, const ServerCore& core, Authenticator* auth);

}  // namespace compressd
