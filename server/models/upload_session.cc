#include "server/models/upload_session.h"

#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/util.h"
#include "server/models/model_summary.h"
#include "workers/engine/model/gguf/gguf_file.h"
#include "workers/engine/model/safetensors.h"

namespace compressd {
namespace {

constexpr size_t kMaxNameLength = 256;

using Files = google::protobuf::RepeatedPtrField<v1::FileEntry>;

int CountWithSuffix(const Files& files, absl::string_view suffix) {
  int n = 0;
  for (const v1::FileEntry& f : files) n += absl::EndsWith(f.path(), suffix) ? 1 : 0;
  return n;
}

absl::Status CheckModelFormat(v1::ModelFormat format, const Files& files) {
  switch (format) {
    case v1::HF_SAFETENSORS: {
      bool has_config = false;
      for (const v1::FileEntry& f : files) has_config = has_config || f.path() == "config.json";
      if (!has_config) {
        return absl::InvalidArgumentError("header.files: an HF_SAFETENSORS model needs config.json");
      }
      if (CountWithSuffix(files, ".safetensors") == 0) {
        return absl::InvalidArgumentError(
            "header.files: an HF_SAFETENSORS model needs at least one *.safetensors file");
      }
      return absl::OkStatus();
    }
    case v1::GGUF: {
      int n = CountWithSuffix(files, ".gguf");
      if (n != 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("header.files: a GGUF model needs exactly one *.gguf file, got ", n));
      }
      return absl::OkStatus();
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("header.format: unknown model format ", static_cast<int>(format)));
  }
}

}  // namespace

VerifiedUpload::VerifiedUpload(Store& store, BlobStore& blobs, ServerMetrics& metrics,
                               UploadLimits limits, std::string tenant)
    : store_(store),
      blobs_(blobs),
      metrics_(metrics),
      limits_(limits),
      tenant_(tenant.empty() ? kDefaultTenant : std::move(tenant)) {}

absl::Status VerifiedUpload::CheckStoredQuota() const {
  absl::StatusOr<v1::Tenant> tenant = store_.GetTenant(tenant_);
  if (absl::IsNotFound(tenant.status())) return absl::OkStatus();  // no row: no quota
  RETURN_IF_ERROR(tenant.status());
  const uint64_t limit = tenant->quota().max_stored_bytes();
  if (limit > 0 && tenant->stored_bytes() + total_bytes_ > limit) {
    return absl::ResourceExhaustedError(
        absl::StrCat("quota max_stored_bytes of tenant \"", tenant_, "\": limit ", limit,
                     " bytes, ", tenant->stored_bytes(), " stored, this upload ", total_bytes_,
                     "; delete models or datasets first"));
  }
  return absl::OkStatus();
}

absl::Status VerifiedUpload::Fail(absl::Status status) {
  if (!status.ok() && error_.ok()) {
    error_ = status;
    writer_.reset();  // deletes the partial temporary file
  }
  return status;
}

std::string VerifiedUpload::FileLabel(size_t index) const {
  return absl::StrCat("header.files[", index, "] (", files_[index].path(), ")");
}

absl::Status VerifiedUpload::CheckName(const std::string& name) const {
  if (name.empty()) return absl::InvalidArgumentError("header.name: required");
  if (name.size() > kMaxNameLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("header.name: longer than ", kMaxNameLength, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status VerifiedUpload::CheckFiles(const Files& files) const {
  if (files.empty()) return absl::InvalidArgumentError("header.files: at least one file required");
  if (files.size() > limits_.max_files) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "header.files: ", files.size(), " files exceeds the limit of ", limits_.max_files));
  }
  std::set<std::string> seen;
  uint64_t total = 0;
  for (int i = 0; i < files.size(); ++i) {
    const v1::FileEntry& f = files.Get(i);
    std::string field = absl::StrCat("header.files[", i, "]");
    RETURN_IF_ERROR(ValidateRelativePath(f.path(), absl::StrCat(field, ".path")));
    if (!IsSha256Hex(f.sha256())) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".sha256: \"", f.sha256(), "\" is not 64 lowercase hex characters"));
    }
    if (f.size() > limits_.max_file_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(field, ".size: ", f.size(),
                                                       " bytes exceeds the per-file limit of ",
                                                       limits_.max_file_bytes));
    }
    if (!seen.insert(f.path()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".path: duplicate path \"", f.path(), "\""));
    }
    total += f.size();
  }
  if (total > limits_.max_total_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "header.files: ", total, " bytes in total exceeds the limit of ", limits_.max_total_bytes));
  }
  return absl::OkStatus();
}

absl::Status VerifiedUpload::StartFiles(Kind kind, const std::string& name, const Files& files,
                                        v1::ModelFormat format) {
  if (kind_ != Kind::kNone) {
    return absl::InvalidArgumentError("header: the stream carries a second header");
  }
  RETURN_IF_ERROR(CheckName(name));
  RETURN_IF_ERROR(CheckFiles(files));
  if (kind == Kind::kModel) RETURN_IF_ERROR(CheckModelFormat(format, files));
  kind_ = kind;
  format_ = format;
  name_ = name;
  files_.assign(files.begin(), files.end());
  for (const v1::FileEntry& f : files_) total_bytes_ += f.size();
  RETURN_IF_ERROR(CheckStoredQuota());
  return OpenNextFile();
}

absl::Status VerifiedUpload::OpenNextFile() {
  while (current_ < files_.size()) {
    ASSIGN_OR_RETURN(writer_, blobs_.NewWriter());
    if (files_[current_].size() > 0) return absl::OkStatus();
    RETURN_IF_ERROR(CommitCurrentFile());  // an empty file gets no chunks
  }
  return absl::OkStatus();
}

absl::Status VerifiedUpload::CommitCurrentFile() {
  const v1::FileEntry& f = files_[current_];
  RETURN_IF_ERROR(writer_->Commit(f.size(), f.sha256(), FileLabel(current_)).status());
  writer_.reset();
  ++current_;
  return absl::OkStatus();
}

absl::Status VerifiedUpload::OnModelHeader(const v1::UploadModelHeader& header) {
  RETURN_IF_ERROR(error_);
  return Fail(StartFiles(Kind::kModel, header.name(), header.files(), header.format()));
}

absl::Status VerifiedUpload::OnDatasetHeader(const v1::UploadDatasetHeader& header) {
  RETURN_IF_ERROR(error_);
  return Fail(StartFiles(Kind::kDataset, header.name(), header.files(),
                         v1::MODEL_FORMAT_UNSPECIFIED));
}

absl::Status VerifiedUpload::OnChunk(const v1::FileChunk& chunk) {
  RETURN_IF_ERROR(error_);
  if (kind_ == Kind::kNone) return Fail(absl::InvalidArgumentError("chunk before the header"));
  if (current_ >= files_.size()) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "chunk.file_index: ", chunk.file_index(), ": every declared file is already complete")));
  }
  if (chunk.file_index() != current_) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("chunk.file_index: got ", chunk.file_index(), ", expected ", current_, " (",
                     files_[current_].path(), "); files are sent whole, in header order")));
  }
  const v1::FileEntry& f = files_[current_];
  uint64_t after = writer_->bytes_written() + chunk.data().size();
  if (after > f.size()) {
    return Fail(absl::InvalidArgumentError(absl::StrCat("chunk: ", FileLabel(current_),
                                                        " is declared as ", f.size(),
                                                        " bytes but data runs to ", after)));
  }
  RETURN_IF_ERROR(Fail(writer_->Append(chunk.data())));
  metrics_.bytes_uploaded().Increment(static_cast<double>(chunk.data().size()));
  if (after < f.size()) return absl::OkStatus();
  RETURN_IF_ERROR(Fail(CommitCurrentFile()));
  return Fail(OpenNextFile());
}

absl::Status VerifiedUpload::CheckComplete(Kind want) {
  RETURN_IF_ERROR(error_);
  if (finished_) return absl::FailedPreconditionError("upload already finished");
  if (kind_ == Kind::kNone) {
    return Fail(absl::InvalidArgumentError("upload stream ended without a header"));
  }
  if (kind_ != want) {
    return Fail(absl::InvalidArgumentError(
        kind_ == Kind::kModel ? "a model upload cannot finish as a dataset"
                              : "a dataset upload cannot finish as a model"));
  }
  if (current_ < files_.size()) {
    const v1::FileEntry& f = files_[current_];
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("truncated upload: file ", f.path(), " has ",
                     writer_ ? writer_->bytes_written() : 0, " of ", f.size(), " bytes")));
  }
  return absl::OkStatus();
}

absl::Status VerifiedUpload::CheckWeightFiles() const {
  for (const v1::FileEntry& f : files_) {
    const std::string blob = blobs_.PathFor(f.sha256());
    absl::Status parsed;
    if (absl::EndsWith(f.path(), ".safetensors")) {
      parsed = engine::SafetensorsFile::Open(blob).status();
    } else if (absl::EndsWith(f.path(), ".gguf")) {
      parsed = engine::GgufFile::Open(blob).status();
    }
    if (!parsed.ok()) {
      // The parsers name the file they read: name the uploaded path instead.
      return absl::InvalidArgumentError(absl::StrCat(
          "files: ", f.path(), " is not a valid model file: ",
          absl::StrReplaceAll(parsed.message(), {{blob, f.path()}})));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Model> VerifiedUpload::FinishModel() {
  RETURN_IF_ERROR(CheckComplete(Kind::kModel));
  RETURN_IF_ERROR(Fail(CheckWeightFiles()));
  v1::Model model;
  model.set_id(NewId("mdl-"));
  model.set_name(name_);
  model.set_format(format_);
  for (const v1::FileEntry& f : files_) *model.add_files() = f;
  model.set_total_bytes(total_bytes_);
  model.set_create_time_ms(NowMs());
  model.set_tenant(tenant_);
  for (auto& [key, value] : SummarizeModel(format_, model.files(), blobs_)) {
    (*model.mutable_architecture())[key] = std::move(value);
  }
  RETURN_IF_ERROR(Fail(CheckStoredQuota()));  // again: uploads run concurrently
  RETURN_IF_ERROR(Fail(store_.InsertModel(model)));
  finished_ = true;
  return model;
}

absl::StatusOr<v1::Dataset> VerifiedUpload::FinishDataset() {
  RETURN_IF_ERROR(CheckComplete(Kind::kDataset));
  v1::Dataset dataset;
  dataset.set_id(NewId("ds-"));
  dataset.set_name(name_);
  for (const v1::FileEntry& f : files_) *dataset.add_files() = f;
  dataset.set_total_bytes(total_bytes_);
  dataset.set_create_time_ms(NowMs());
  dataset.set_tenant(tenant_);
  RETURN_IF_ERROR(Fail(CheckStoredQuota()));
  RETURN_IF_ERROR(Fail(store_.InsertDataset(dataset)));
  finished_ = true;
  return dataset;
}

}  // namespace compressd
