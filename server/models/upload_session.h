// The UploadSession behind ModelRegistry::StartUpload: checks the header,
// streams each file into a BlobStore writer that verifies its size and
// sha256, and records the model or dataset only when every file is complete.
// Not thread-safe (one per upload stream); errors are sticky.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "server/models/model_registry.h"

namespace compressd {

class VerifiedUpload : public UploadSession {
 public:
  // The model or dataset will belong to `tenant` (empty: the default one)
  // and counts against its max_stored_bytes quota.
  VerifiedUpload(Store& store, BlobStore& blobs, ServerMetrics& metrics, UploadLimits limits,
                 std::string tenant = "");

  absl::Status OnModelHeader(const v1::UploadModelHeader& header) override;
  absl::Status OnDatasetHeader(const v1::UploadDatasetHeader& header) override;
  absl::Status OnChunk(const v1::FileChunk& chunk) override;
  absl::StatusOr<v1::Model> FinishModel() override;
  absl::StatusOr<v1::Dataset> FinishDataset() override;

 private:
  enum class Kind { kNone, kModel, kDataset };

  // Records `status` as the session's final error and returns it.
  absl::Status Fail(absl::Status status);
  absl::Status CheckName(const std::string& name) const;
  absl::Status CheckFiles(const google::protobuf::RepeatedPtrField<v1::FileEntry>& files) const;
  // Validates a header (`format` is checked for models only) and opens the first file.
  absl::Status StartFiles(Kind kind, const std::string& name,
                          const google::protobuf::RepeatedPtrField<v1::FileEntry>& files,
                          v1::ModelFormat format);
  // Opens the writer for the next incomplete file, committing empty files on the way.
  absl::Status OpenNextFile();
  absl::Status CommitCurrentFile();
  // Checks the stream is complete and of the `want` kind before persisting.
  absl::Status CheckComplete(Kind want);
  // The container of every weight file (*.safetensors header and tensor
  // table, *.gguf header, metadata and tensor infos, each against the file's
  // size) parses: a malformed model is INVALID_ARGUMENT at upload, naming the
  // file and offset, instead of a failure in a worker.
  absl::Status CheckWeightFiles() const;
  std::string FileLabel(size_t index) const;
  // RESOURCE_EXHAUSTED naming the quota if this upload would take the
  // tenant over its max_stored_bytes.
  absl::Status CheckStoredQuota() const;

  Store& store_;
  BlobStore& blobs_;
  ServerMetrics& metrics_;
  const UploadLimits limits_;
  const std::string tenant_;

  Kind kind_ = Kind::kNone;
  absl::Status error_;
  bool finished_ = false;
  std::string name_;
  v1::ModelFormat format_ = v1::MODEL_FORMAT_UNSPECIFIED;
  std::vector<v1::FileEntry> files_;
  uint64_t total_bytes_ = 0;
  size_t current_ = 0;  // index of the file now receiving bytes
  std::unique_ptr<BlobStore::Writer> writer_;
};

}  // namespace compressd
