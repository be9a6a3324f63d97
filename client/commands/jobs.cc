#include "client/commands/jobs.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/commands/describe.h"
#include "client/commands/watch.h"
#include "common/recipe.h"
#include "common/status_macros.h"
#include "common/util.h"

namespace compressd::client {

using Stub = v1::CompressionService::Stub;

absl::StatusOr<v1::SubmitJobRequest> BuildSubmitRequest(const Invocation& invocation) {
  v1::SubmitJobRequest request;
  // Parsed here (syntax and field names, reported with the file's line);
  // defaults and validation are the server's (SubmitJob), so the recipe is
  // sent as written.
  ASSIGN_OR_RETURN(*request.mutable_recipe(), ParseRecipeFile(invocation.Get("recipe")));
  request.set_model_id(invocation.Get("model"));
  for (const std::string& dataset : invocation.GetAll("dataset")) {
    request.add_dataset_ids(dataset);
  }
  request.set_request_id(invocation.Get("request-id", NewId("req-")));
  if (invocation.Has("max-attempts")) {
    int max_attempts = 0;
    if (!absl::SimpleAtoi(invocation.Get("max-attempts"), &max_attempts) || max_attempts < 1) {
      return absl::InvalidArgumentError("--max-attempts must be a positive integer");
    }
    request.set_max_attempts(max_attempts);
  }
  if (invocation.Has("priority")) {
    const std::string p = invocation.Get("priority");
    if (p == "low") {
      request.set_priority(v1::PRIORITY_LOW);
    } else if (p == "normal") {
      request.set_priority(v1::PRIORITY_NORMAL);
    } else if (p == "high") {
      request.set_priority(v1::PRIORITY_HIGH);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("--priority: \"", p, "\" is not low, normal or high"));
    }
  }
  return request;
}

absl::StatusOr<v1::Job> SubmitWithRetry(Connection& connection, const v1::SubmitJobRequest& request,
                                        const RetryPolicy& policy, std::ostream& err) {
  std::chrono::milliseconds backoff = policy.initial_backoff;
  for (int attempt = 0;; ++attempt) {
    absl::StatusOr<v1::Job> job = Call<v1::Job>(connection, &Stub::SubmitJob, request);
    const bool retryable = job.status().code() == absl::StatusCode::kUnavailable ||
                           job.status().code() == absl::StatusCode::kDeadlineExceeded;
    if (job.ok() || !retryable || attempt >= policy.max_retries) return job;
    err << "SubmitJob: " << job.status().message() << "; retrying in " << backoff.count()
        << " ms (request_id " << request.request_id() << ")\n";
    std::this_thread::sleep_for(backoff);
    connection.WaitForConnected(kConnectTimeout);
    backoff *= 2;
  }
}

absl::Status JobsSubmit(CommandContext& context) {
  ASSIGN_OR_RETURN(v1::SubmitJobRequest request, BuildSubmitRequest(context.invocation()));
  ASSIGN_OR_RETURN(Connection * connection, context.connection());
  absl::StatusOr<v1::Job> submitted =
      SubmitWithRetry(*connection, request, RetryPolicy(), context.err());
  // The server names a recipe error "recipe: <field>: ..."; the user's recipe is a file.
  constexpr absl::string_view kRecipePrefix = "recipe: ";
  if (submitted.status().code() == absl::StatusCode::kInvalidArgument &&
      absl::StartsWith(submitted.status().message(), kRecipePrefix)) {
    return absl::InvalidArgumentError(
        absl::StrCat(context.invocation().Get("recipe"), ": ",
                     submitted.status().message().substr(kRecipePrefix.size())));
  }
  ASSIGN_OR_RETURN(v1::Job job, std::move(submitted));
  context.out() << (context.json() ? ToJson(job) : job.id()) << "\n";
  context.out().flush();
  if (!context.invocation().Has("wait")) return absl::OkStatus();
  return WatchUntilDone(context, job.id(), WatchOptions());
}

absl::Status JobsGet(CommandContext& context) {
  ASSIGN_OR_RETURN(Connection * connection, context.connection());
  v1::GetJobRequest request;
  request.set_job_id(context.invocation().args[0]);
  ASSIGN_OR_RETURN(v1::Job job, Call<v1::Job>(*connection, &Stub::GetJob, request));
  context.out() << (context.json() ? ToJson(job) + "\n" : DescribeJob(job));
  return absl::OkStatus();
}

absl::Status JobsList(CommandContext& context) {
  v1::ListJobsRequest request;
  if (context.invocation().Has("state")) {
    ASSIGN_OR_RETURN(v1::JobState state, ParseJobState(context.invocation().Get("state")));
    request.set_state(state);
  }
  ASSIGN_OR_RETURN(Connection * connection, context.connection());
  v1::ListJobsResponse all;
  do {
    ASSIGN_OR_RETURN(v1::ListJobsResponse page,
                     Call<v1::ListJobsResponse>(*connection, &Stub::ListJobs, request));
    for (v1::Job& job : *page.mutable_jobs()) *all.add_jobs() = std::move(job);
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty());
  if (context.json()) {
    context.out() << ToJson(all) << "\n";
  } else {
    context.out() << JobTable({all.jobs().begin(), all.jobs().end()});
  }
  return absl::OkStatus();
}

absl::Status JobsCancel(CommandContext& context) {
  ASSIGN_OR_RETURN(Connection * connection, context.connection());
  v1::CancelJobRequest request;
  request.set_job_id(context.invocation().args[0]);
  ASSIGN_OR_RETURN(v1::Job job, Call<v1::Job>(*connection, &Stub::CancelJob, request));
  if (context.json()) {
    context.out() << ToJson(job) << "\n";
  } else {
    context.out() << job.id() << " " << StateName(job.state()) << "\n";
  }
  return absl::OkStatus();
}

absl::Status JobsDelete(CommandContext& context) {
  ASSIGN_OR_RETURN(Connection * connection, context.connection());
  v1::DeleteJobRequest request;
  request.set_job_id(context.invocation().args[0]);
  ASSIGN_OR_RETURN(v1::DeleteJobResponse response,
                   Call<v1::DeleteJobResponse>(*connection, &Stub::DeleteJob, request));
  context.out() << (context.json() ? ToJson(response) : "deleted " + request.job_id()) << "\n";
  return absl::OkStatus();
}

}  // namespace compressd::client
