#include "workers/engine/model/hf_model.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/util.h"
#include "nlohmann/json.hpp"

namespace compressd::engine {
namespace {

namespace fs = std::filesystem;

}  // namespace

absl::StatusOr<std::unique_ptr<HfModel>> HfModel::Open(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat(dir, ": not a model directory"));
  }
  std::unique_ptr<HfModel> model(new HfModel());
  model->dir_ = dir;
  const std::string config_path = (fs::path(dir) / kHfConfigFile).string();
  if (!fs::is_regular_file(config_path, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat(dir, ": model directory has no ", kHfConfigFile));
  }
  ASSIGN_OR_RETURN(model->config_, ReadHfConfig(config_path));

  std::vector<std::string> rel_paths;
  std::map<std::string, std::string> weight_map;
  if (fs::is_regular_file(fs::path(dir) / kWeightsIndexFile, ec)) {
    model->layout_ = Layout::kIndexed;
    RETURN_IF_ERROR(model->ReadIndex(&rel_paths, &weight_map));
  } else {
    RETURN_IF_ERROR(model->FindShardFiles(&rel_paths));
  }
  for (const std::string& rel : rel_paths) {
    Shard shard;
    shard.rel_path = rel;
    ASSIGN_OR_RETURN(shard.file, SafetensorsFile::Open((fs::path(dir) / rel).string()));
    model->shards_.push_back(std::move(shard));
  }
  RETURN_IF_ERROR(model->IndexTensors(weight_map));
  return model;
}

absl::Status HfModel::FindShardFiles(std::vector<std::string>* rel_paths) {
  std::error_code ec;
  if (fs::is_regular_file(fs::path(dir_) / kSingleWeightsFile, ec)) {
    layout_ = Layout::kSingle;
    rel_paths->push_back(kSingleWeightsFile);
    return absl::OkStatus();
  }
  layout_ = Layout::kGlob;
  for (const fs::directory_entry& e : fs::directory_iterator(dir_, ec)) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file(ec) && absl::EndsWith(name, ".safetensors")) rel_paths->push_back(name);
  }
  if (ec) return absl::InternalError(absl::StrCat(dir_, ": cannot list: ", ec.message()));
  if (rel_paths->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(dir_, ": no *.safetensors weights found"));
  }
  std::sort(rel_paths->begin(), rel_paths->end());
  return absl::OkStatus();
}

absl::Status HfModel::ReadIndex(std::vector<std::string>* rel_paths,
                                std::map<std::string, std::string>* weight_map) {
  const std::string path = (fs::path(dir_) / kWeightsIndexFile).string();
  ASSIGN_OR_RETURN(index_json_, ReadFileToString(path));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(index_json_);
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": invalid JSON: ", e.what()));
  }
  auto wm = j.is_object() ? j.find("weight_map") : j.end();
  if (wm == j.end() || !wm->is_object() || wm->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": weight_map: missing, empty or not an object"));
  }
  std::set<std::string> files;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    const std::string field = absl::StrCat("weight_map[\"", it.key(), "\"]");
    if (!it->is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": ", field, ": not a string"));
    }
    const std::string file = it->get<std::string>();
    RETURN_IF_ERROR(ValidateRelativePath(file, absl::StrCat(path, ": ", field)));
    (*weight_map)[it.key()] = file;
    files.insert(file);
  }
  rel_paths->assign(files.begin(), files.end());
  return absl::OkStatus();
}

absl::Status HfModel::IndexTensors(const std::map<std::string, std::string>& weight_map) {
  for (const Shard& shard : shards_) {
    for (const TensorInfo& t : shard.file->tensors()) {
      auto [it, inserted] = tensors_.emplace(t.name, TensorRef{&shard, &t});
      if (!inserted) {
        return absl::InvalidArgumentError(absl::StrCat(dir_, ": tensor \"", t.name,
                                                       "\" appears in both ", it->second.shard->rel_path,
                                                       " and ", shard.rel_path));
      }
    }
  }
  for (const auto& [name, file] : weight_map) {
    TensorRef ref = Find(name);
    if (ref.shard == nullptr || ref.shard->rel_path != file) {
      return absl::InvalidArgumentError(absl::StrCat(dir_, "/", kWeightsIndexFile,
                                                     ": weight_map[\"", name, "\"]: tensor not found in ",
                                                     file));
    }
  }
  return absl::OkStatus();
}

HfModel::TensorRef HfModel::Find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? TensorRef{} : it->second;
}

uint64_t HfModel::total_tensor_bytes() const {
  uint64_t total = 0;
  for (const auto& [name, ref] : tensors_) total += ref.info->nbytes();
  return total;
}

}  // namespace compressd::engine
