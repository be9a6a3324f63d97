#include "client/commands/watch.h"

#include <grpcpp/client_context.h>

#include <algorithm>
#include <optional>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/ui/event_lines.h"
#include "client/ui/progress_bar.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "common/util.h"

namespace compressd::client {
namespace {

using Stub = v1::CompressionService::Stub;

bool IsTerminal(v1::JobState state) {
  return state == v1::SUCCEEDED || state == v1::FAILED || state == v1::CANCELLED;
}

// Prints events as they arrive; owns the progress bar. Not thread-safe.
class EventPrinter {
 public:
  EventPrinter(CommandContext& context, int64_t start_ms) : context_(context), start_ms_(start_ms) {
    if (context.show_progress_bar()) bar_.emplace(context.err(), TerminalWidth());
  }

  void Print(const v1::JobEvent& event) {
    if (context_.json()) {
      context_.out() << ToJson(event) << "\n" << std::flush;
      return;
    }
    if (event.has_state() && event.state().to() == v1::RUNNING && event.time_ms() > 0) {
      start_ms_ = event.time_ms();
    }
    if (event.has_progress()) ShowProgress(event.progress());
    PrintLines(lines_.Add(event));
  }

  void Finish() {
    if (context_.json()) return;
    PrintLines(lines_.Flush());
    if (bar_) bar_->Finish();
  }

  // Notes written to stderr between events (reconnects).
  void Note(const std::string& text) {
    PrintLines(lines_.Flush());
    if (bar_) bar_->Clear();
    context_.err() << text << "\n" << std::flush;
    if (bar_) bar_->Redraw();
  }

 private:
  void ShowProgress(const v1::Progress& progress) {
    if (!bar_) {
      if (!context_.json()) context_.err() << FormatEvent(ProgressEvent(progress)) << "\n";
      return;
    }
    ProgressView view;
    view.stage = progress.stage();
    view.current = progress.current();
    view.total = progress.total();
    view.message = progress.message();
    view.elapsed_seconds = static_cast<double>(std::max<int64_t>(0, NowMs() - start_ms_)) / 1000.0;
    bar_->Update(view);
  }

  static v1::JobEvent ProgressEvent(const v1::Progress& progress) {
    v1::JobEvent event;
    *event.mutable_progress() = progress;
    return event;
  }

  void PrintLines(const std::vector<std::string>& lines) {
    if (lines.empty()) return;
    if (bar_) bar_->Clear();
    for (const std::string& line : lines) context_.out() << line << "\n";
    context_.out() << std::flush;
    if (bar_) bar_->Redraw();
  }

  CommandContext& context_;
  int64_t start_ms_;
  EventLines lines_;
  std::optional<ProgressBar> bar_;
};

// Reads one WatchJob stream from after `*last_sequence`; skips duplicates.
// Returns the stream's final status; *received tells whether any new event came.
absl::Status ReadStream(Connection& connection, const std::string& job_id, int64_t* last_sequence,
                        EventPrinter& printer, bool* received) {
  grpc::ClientContext rpc;  // no deadline: a job may run for hours
  v1::WatchJobRequest request;
  request.set_job_id(job_id);
  request.set_after_sequence(*last_sequence);
  auto reader = connection.stub().WatchJob(&rpc, request);
  v1::JobEvent event;
  while (reader->Read(&event)) {
    if (event.sequence() <= *last_sequence) continue;
    *last_sequence = event.sequence();
    *received = true;
    printer.Print(event);
  }
  return FromGrpcStatus(reader->Finish());
}

absl::Status JobOutcome(const v1::Job& job) {
  switch (job.state()) {
    case v1::SUCCEEDED:
      return absl::OkStatus();
    case v1::FAILED:
      return absl::AbortedError(absl::StrCat("job ", job.id(), " FAILED: ", job.error()));
    case v1::CANCELLED:
      return absl::CancelledError(absl::StrCat("job ", job.id(), " CANCELLED: ", job.error()));
    default:
      return absl::InternalError(
          absl::StrCat("job ", job.id(), " is still ", v1::JobState_Name(job.state())));
  }
}

}  // namespace

absl::Status WatchUntilDone(CommandContext& context, const std::string& job_id,
                            const WatchOptions& options) {
  ASSIGN_OR_RETURN(Connection * connection, context.connection());
  v1::GetJobRequest get;
  get.set_job_id(job_id);
  ASSIGN_OR_RETURN(v1::Job job, Call<v1::Job>(*connection, &Stub::GetJob, get));

  EventPrinter printer(context, job.start_time_ms() > 0 ? job.start_time_ms() : NowMs());
  int64_t last_sequence = 0;
  int failures = 0;
  std::chrono::milliseconds backoff = options.initial_backoff;
  while (true) {
    bool received = false;
    absl::Status stream = ReadStream(*connection, job_id, &last_sequence, printer, &received);
    if (received) {
      failures = 0;
      backoff = options.initial_backoff;
    }
    if (stream.ok() || stream.code() == absl::StatusCode::kUnavailable) {
      // The server closes the stream once the job has ended; make sure.
      absl::StatusOr<v1::Job> latest = Call<v1::Job>(*connection, &Stub::GetJob, get);
      if (latest.ok() && IsTerminal(latest->state()) && stream.ok()) {
        job = *std::move(latest);
        break;
      }
      if (!latest.ok() && latest.status().code() != absl::StatusCode::kUnavailable) {
        printer.Finish();
        return latest.status();
      }
    } else {
      printer.Finish();
      return stream;
    }
    if (++failures > options.max_reconnects) {
      printer.Finish();
      return stream.ok() ? absl::UnavailableError(absl::StrCat(
                               "watch ", job_id, ": stream keeps ending before the job ends"))
                         : stream;
    }
    printer.Note(absl::StrCat(
        "watch: stream interrupted (", stream.ok() ? "ended early" : std::string(stream.message()),
        "); reconnecting in ", backoff.count(), " ms after event ", last_sequence));
    std::this_thread::sleep_for(backoff);
    connection->WaitForConnected(kConnectTimeout);
    backoff = std::min(backoff * 2, options.max_backoff);
  }
  printer.Finish();
  return JobOutcome(job);
}

absl::Status JobsWatch(CommandContext& context) {
  return WatchUntilDone(context, context.invocation().args[0], WatchOptions());
}

}  // namespace compressd::client
