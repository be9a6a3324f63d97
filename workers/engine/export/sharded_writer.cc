#include "workers/engine/export/sharded_writer.h"

#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "workers/engine/model/hf_model.h"

namespace compressd::engine {

namespace fs = std::filesystem;

absl::StatusOr<std::unique_ptr<ShardedSafetensorsWriter>> ShardedSafetensorsWriter::Create(
    const std::string& out_dir, std::vector<TensorSpec> tensors,
    const std::map<std::string, std::string>& metadata, uint64_t max_shard_bytes) {
  // Which tensors go to which shard, in the given order.
  std::vector<std::vector<TensorSpec>> groups(1);
  uint64_t in_group = 0;
  for (TensorSpec& t : tensors) {
    ASSIGN_OR_RETURN(const uint64_t n, TensorBytes(out_dir, t));
    if (in_group > 0 && in_group + n > max_shard_bytes) {
      groups.emplace_back();
      in_group = 0;
    }
    in_group += n;
    groups.back().push_back(std::move(t));
  }
  auto w = std::unique_ptr<ShardedSafetensorsWriter>(new ShardedSafetensorsWriter());
  w->out_dir_ = out_dir;
  const size_t n_shards = groups.size();
  for (size_t s = 0; s < n_shards; ++s) {
    const std::string name =
        n_shards == 1 ? std::string(kSingleWeightsFile)
                      : absl::StrFormat("model-%05d-of-%05d.safetensors", s + 1, n_shards);
    const std::string path = (fs::path(out_dir) / name).string();
    std::vector<uint64_t> offsets;
    ASSIGN_OR_RETURN(const std::string header,
                     SafetensorsHeader(path, &groups[s], metadata, &offsets));
    ASSIGN_OR_RETURN(std::unique_ptr<AtomicFile> file, AtomicFile::Create(path));
    RETURN_IF_ERROR(file->Write(header));
    for (size_t i = 0; i < groups[s].size(); ++i) {
      const TensorSpec& t = groups[s][i];
      ASSIGN_OR_RETURN(const uint64_t nbytes, TensorBytes(path, t));
      if (!w->placed_
               .emplace(t.name,
                        Placement{static_cast<int>(s), header.size() + offsets[i], nbytes, 0})
               .second) {
        return absl::InvalidArgumentError(
            absl::StrCat(out_dir, ": tensor \"", t.name, "\" appears twice"));
      }
      w->total_bytes_ += nbytes;
    }
    w->names_.push_back(name);
    w->files_.push_back(std::move(file));
  }
  return w;
}

absl::Status ShardedSafetensorsWriter::WritePart(const std::string& name, uint64_t offset,
                                                 absl::string_view bytes) {
  auto it = placed_.find(name);
  if (it == placed_.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat(out_dir_, ": tensor \"", name, "\" is not part of the output"));
  }
  Placement& p = it->second;
  if (offset != p.written || p.written + bytes.size() > p.bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(out_dir_, ": tensor \"", name, "\": ", bytes.size(), " bytes at ", offset,
                     " do not continue its ", p.written, " of ", p.bytes, " bytes written"));
  }
  RETURN_IF_ERROR(files_[p.shard]->WriteAt(p.offset + offset, bytes));
  p.written += bytes.size();
  return absl::OkStatus();
}

absl::Status ShardedSafetensorsWriter::Write(const std::string& name, absl::string_view bytes) {
  auto it = placed_.find(name);
  if (it != placed_.end() && bytes.size() != it->second.bytes) {
    return absl::InvalidArgumentError(absl::StrCat(out_dir_, ": tensor \"", name,
                                                   "\": ", bytes.size(), " bytes, expected ",
                                                   it->second.bytes));
  }
  return WritePart(name, 0, bytes);
}

absl::Status ShardedSafetensorsWriter::Commit() {
  nlohmann::json weight_map = nlohmann::json::object();
  for (const auto& [name, p] : placed_) {
    if (p.written != p.bytes) {
      return absl::FailedPreconditionError(absl::StrCat(
          out_dir_, ": tensor \"", name, "\" has ", p.written, " of ", p.bytes, " bytes written"));
    }
    weight_map[name] = names_[p.shard];
  }
  for (std::unique_ptr<AtomicFile>& f : files_) RETURN_IF_ERROR(f->Commit());
  if (files_.size() == 1) return absl::OkStatus();
  const nlohmann::json index = {{"metadata", {{"total_size", total_bytes_}}},
                                {"weight_map", weight_map}};
  return WriteFileAtomically((fs::path(out_dir_) / kWeightsIndexFile).string(),
                             index.dump(2) + "\n");
}

}  // namespace compressd::engine
