#include "workers/engine/export/safetensors_writer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/atomic_file.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace compressd::engine {
namespace {

namespace fs = std::filesystem;

absl::Status WriteTextFile(const std::string& path, const std::string& text) {
  return WriteFileAtomically(path, text);
}

absl::Status CopyFile(const std::string& from, const std::string& to) {
  std::ifstream in(from, std::ios::binary);
  if (!in) return absl::InternalError(absl::StrCat(from, ": cannot open"));
  ASSIGN_OR_RETURN(std::unique_ptr<AtomicFile> out, AtomicFile::Create(to));
  char buf[1 << 16];
  while (in) {
    in.read(buf, sizeof(buf));
    RETURN_IF_ERROR(out->Write(absl::string_view(buf, static_cast<size_t>(in.gcount()))));
  }
  if (in.bad()) return absl::InternalError(absl::StrCat(from, ": read failed"));
  return out->Commit();
}

bool IsWeightFile(const std::string& name) {
  static const char* const kSuffixes[] = {".safetensors", ".bin",       ".pt",      ".pth",
                                          ".ckpt",        ".h5",        ".msgpack", ".gguf",
                                          ".onnx",        ".index.json"};
  for (const char* s : kSuffixes) {
    if (absl::EndsWith(name, s)) return true;
  }
  return false;
}

absl::Status WriteIndex(const HfModel& model, const std::string& out_dir) {
  nlohmann::json j = nlohmann::json::parse(model.index_json(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(model.dir(), "/", kWeightsIndexFile, ": invalid JSON"));
  }
  if (!j.contains("metadata") || !j["metadata"].is_object())
    j["metadata"] = nlohmann::json::object();
  j["metadata"]["total_size"] = model.total_tensor_bytes();
  return WriteTextFile((fs::path(out_dir) / kWeightsIndexFile).string(), j.dump(2) + "\n");
}

}  // namespace

absl::StatusOr<std::string> SafetensorsHeader(const std::string& path,
                                              std::vector<TensorSpec>* tensors,
                                              const std::map<std::string, std::string>& metadata,
                                              std::vector<uint64_t>* offsets) {
  std::sort(tensors->begin(), tensors->end(),
            [](const TensorSpec& a, const TensorSpec& b) { return a.name < b.name; });
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  offsets->clear();
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors->size(); ++i) {
    const TensorSpec& t = (*tensors)[i];
    if (t.name == "__metadata__" || (i > 0 && (*tensors)[i - 1].name == t.name)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor name \"", t.name, "\" is reserved or duplicated"));
    }
    ASSIGN_OR_RETURN(const uint64_t nbytes, TensorBytes(path, t));
    header[t.name] = {{"dtype", DTypeName(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + nbytes}}};
    offsets->push_back(offset);
    offset += nbytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((text.size() >> (8 * i)) & 0xff);
  return out + text;
}

absl::StatusOr<uint64_t> TensorBytes(const std::string& path, const TensorSpec& t) {
  uint64_t numel = 1;
  for (int64_t d : t.shape) {
    if (d < 0 || __builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel)) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": tensor \"", t.name, "\": bad shape"));
    }
  }
  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(numel, DTypeSize(t.dtype), &nbytes)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": tensor \"", t.name, "\": too large"));
  }
  return nbytes;
}

absl::Status WriteSafetensors(const std::string& path, std::vector<TensorToWrite> tensors,
                              const std::map<std::string, std::string>& metadata) {
  std::sort(tensors.begin(), tensors.end(),
            [](const TensorToWrite& a, const TensorToWrite& b) { return a.name < b.name; });
  std::vector<TensorSpec> specs;
  for (const TensorToWrite& t : tensors) {
    specs.push_back({t.name, t.dtype, t.shape});
    ASSIGN_OR_RETURN(const uint64_t nbytes, TensorBytes(path, specs.back()));
    if (nbytes != t.bytes.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor \"", t.name, "\": ", t.bytes.size(), " bytes for ",
                       nbytes / DTypeSize(t.dtype), " elements of ", DTypeName(t.dtype)));
    }
  }
  std::vector<uint64_t> offsets;
  ASSIGN_OR_RETURN(const std::string header, SafetensorsHeader(path, &specs, metadata, &offsets));
  ASSIGN_OR_RETURN(std::unique_ptr<AtomicFile> out, AtomicFile::Create(path));
  RETURN_IF_ERROR(out->Write(header));
  for (const TensorToWrite& t : tensors) {
    RETURN_IF_ERROR(out->Write(t.bytes));
  }
  return out->Commit();
}

absl::Status WriteShard(const HfModel::Shard& shard,
                        const std::map<std::string, std::string>& replaced,
                        const std::string& out_path) {
  std::vector<TensorToWrite> tensors;
  for (const TensorInfo& t : shard.file->tensors()) {
    TensorToWrite w{t.name, t.dtype, t.shape, shard.file->Bytes(t)};
    if (auto it = replaced.find(t.name); it != replaced.end()) {
      if (it->second.size() != t.nbytes()) {
        return absl::InvalidArgumentError(absl::StrCat(out_path, ": replacement for tensor \"",
                                                       t.name, "\" has ", it->second.size(),
                                                       " bytes, expected ", t.nbytes()));
      }
      w.bytes = it->second;
    }
    tensors.push_back(std::move(w));
  }
  return WriteSafetensors(out_path, std::move(tensors), shard.file->metadata());
}

absl::Status WriteModelSideFiles(const HfModel& model, const std::string& out_dir) {
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(out_dir, ": mkdir: ", ec.message()));
  std::vector<fs::path> files;
  for (const fs::directory_entry& e : fs::directory_iterator(model.dir(), ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name[0] == '.' || IsWeightFile(name) || !e.is_regular_file(ec)) continue;
    files.push_back(e.path());
  }
  if (ec) return absl::InternalError(absl::StrCat(model.dir(), ": cannot list: ", ec.message()));
  for (const fs::path& f : files) {
    RETURN_IF_ERROR(CopyFile(f.string(), (fs::path(out_dir) / f.filename()).string()));
  }
  if (model.layout() == HfModel::Layout::kIndexed) RETURN_IF_ERROR(WriteIndex(model, out_dir));
  return absl::OkStatus();
}

}  // namespace compressd::engine
