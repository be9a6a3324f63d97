#include "client/commands/describe.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/cli/output.h"
#include "client/ui/progress_bar.h"
#include "client/ui/table.h"

namespace compressd::client {
namespace {

template <typename Files>
std::string DescribeFiles(const Files& files) {
  std::vector<std::vector<std::string>> rows = {{"PATH", "SIZE", "SHA256"}};
  for (const v1::FileEntry& file : files) {
    rows.push_back({file.path(), FormatBytes(static_cast<int64_t>(file.size())), file.sha256()});
  }
  return RenderTable(rows);
}

std::string Indent(const std::string& text) {
  std::string out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    absl::StrAppend(&out, "  ", text.substr(start, end - start), "\n");
    start = end + 1;
  }
  return out;
}

std::string Field(const std::string& name, const std::string& value) {
  return absl::StrCat(name, ":", std::string(name.size() < 11 ? 11 - name.size() : 1, ' '), value,
                      "\n");
}

}  // namespace

std::string StateName(v1::JobState state) { return v1::JobState_Name(state); }

std::string DescribeModel(const v1::Model& model) {
  return absl::StrCat(
      Field("id", model.id()), Field("name", model.name()),
      Field("format", v1::ModelFormat_Name(model.format())),
      Field("size", absl::StrCat(FormatBytes(static_cast<int64_t>(model.total_bytes())), " in ",
                                 model.files_size(), " files")),
      Field("created", FormatTimeMs(model.create_time_ms())), "files:\n",
      Indent(DescribeFiles(model.files())));
}

std::string DescribeDataset(const v1::Dataset& dataset) {
  return absl::StrCat(
      Field("id", dataset.id()), Field("name", dataset.name()),
      Field("size", absl::StrCat(FormatBytes(static_cast<int64_t>(dataset.total_bytes())), " in ",
                                 dataset.files_size(), " files")),
      Field("created", FormatTimeMs(dataset.create_time_ms())), "files:\n",
      Indent(DescribeFiles(dataset.files())));
}

std::string DescribeJob(const v1::Job& job) {
  std::string text = absl::StrCat(Field("id", job.id()), Field("model", job.model_id()),
                                  Field("state", StateName(job.state())));
  if (!job.dataset_ids().empty()) {
    absl::StrAppend(&text, Field("datasets", absl::StrJoin(job.dataset_ids(), ", ")));
  }
  absl::StrAppend(&text, Field("attempts", absl::StrCat(job.attempts(), "/", job.max_attempts())));
  if (job.has_progress() && !job.progress().stage().empty()) {
    const v1::Progress& p = job.progress();
    std::string progress = absl::StrCat(p.stage(), " ", p.current(), "/", p.total());
    if (!p.message().empty()) absl::StrAppend(&progress, " ", p.message());
    absl::StrAppend(&text, Field("progress", progress));
  }
  if (!job.error().empty()) absl::StrAppend(&text, Field("error", job.error()));
  if (job.state() == v1::QUEUED && !job.waiting_reason().empty()) {
    absl::StrAppend(&text, Field("waiting", job.waiting_reason()));
  }
  absl::StrAppend(&text, Field("request_id", job.request_id()),
                  Field("created", FormatTimeMs(job.create_time_ms())),
                  Field("started", FormatTimeMs(job.start_time_ms())),
                  Field("ended", FormatTimeMs(job.end_time_ms())));
  if (!job.artifacts().empty()) {
    absl::StrAppend(&text, "artifacts:\n",
                    Indent(ArtifactTable({job.artifacts().begin(), job.artifacts().end()})));
  }
  return text;
}

std::string ModelTable(const std::vector<v1::Model>& models) {
  std::vector<std::vector<std::string>> rows = {{"ID", "NAME", "FORMAT", "SIZE", "CREATED"}};
  for (const v1::Model& m : models) {
    rows.push_back({m.id(), m.name(), v1::ModelFormat_Name(m.format()),
                    FormatBytes(static_cast<int64_t>(m.total_bytes())),
                    FormatTimeMs(m.create_time_ms())});
  }
  return RenderTable(rows);
}

std::string DatasetTable(const std::vector<v1::Dataset>& datasets) {
  std::vector<std::vector<std::string>> rows = {{"ID", "NAME", "FILES", "SIZE", "CREATED"}};
  for (const v1::Dataset& d : datasets) {
    rows.push_back({d.id(), d.name(), absl::StrCat(d.files_size()),
                    FormatBytes(static_cast<int64_t>(d.total_bytes())),
                    FormatTimeMs(d.create_time_ms())});
  }
  return RenderTable(rows);
}

std::string JobTable(const std::vector<v1::Job>& jobs) {
  std::vector<std::vector<std::string>> rows = {{"ID", "STATE", "MODEL", "ATTEMPTS", "CREATED"}};
  for (const v1::Job& j : jobs) {
    rows.push_back({j.id(), StateName(j.state()), j.model_id(),
                    absl::StrCat(j.attempts(), "/", j.max_attempts()),
                    FormatTimeMs(j.create_time_ms())});
  }
  return RenderTable(rows);
}

std::string ArtifactTable(const std::vector<v1::Artifact>& artifacts) {
  std::vector<std::vector<std::string>> rows = {{"ID", "PATH", "SIZE", "SHA256"}};
  for (const v1::Artifact& a : artifacts) {
    rows.push_back({a.id(), a.path(), FormatBytes(static_cast<int64_t>(a.size())), a.sha256()});
  }
  return RenderTable(rows);
}

}  // namespace compressd::client
