// libFuzzer target: the upload path of UploadModel / UploadDataset on the
// server (server/models/upload_session.h): the header (name, format, file
// list: paths, sizes, digests, limits), the chunks in order, and at the end
// the format check of every weight file (safetensors / GGUF container) and
// the row in the store.
//
// Input: one flags byte, then messages, each a 2-byte little-endian length
// and a serialized UploadModelRequest (or UploadDatasetRequest: flags bit 0).
// Flags bit 1 rewrites the header's sizes and digests to match the chunks
// that follow, so the fuzzer gets past the sha256 check to the format check
// and the store. Bad input must come back as a clean status (never a crash,
// a hang, INTERNAL or UNKNOWN).
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/sha256.h"
#include "compressd/v1/compressd.pb.h"
#include "prometheus/registry.h"
#include "server/metrics/server_metrics.h"
#include "server/models/upload_session.h"
#include "server/store/blob_store.h"
#include "server/store/store.h"

namespace {

using compressd::v1::FileChunk;
using compressd::v1::FileEntry;

struct Env {
  Env() : metrics(registry) {
    const std::string dir =
        (std::filesystem::temp_directory_path() / ("fuzz_upload_" + std::to_string(::getpid())))
            .string();
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    static std::string to_remove = dir;
    std::atexit([] { std::filesystem::remove_all(to_remove); });
    store = *compressd::Store::Open(dir + "/state.db");
    blobs = *compressd::BlobStore::Open(dir + "/blobs");
  }
  prometheus::Registry registry;
  compressd::ServerMetrics metrics;
  std::unique_ptr<compressd::Store> store;
  std::unique_ptr<compressd::BlobStore> blobs;
};

bool Expected(const absl::Status& s) {
  return !(absl::IsInternal(s) || absl::IsUnknown(s) || absl::IsDataLoss(s));
}

// Sizes and digests of `files` set from the chunks (by file index).
void FixUp(google::protobuf::RepeatedPtrField<FileEntry>* files,
           const std::vector<FileChunk>& chunks) {
  std::map<uint32_t, std::string> content;
  for (const FileChunk& c : chunks) content[c.file_index()] += c.data();
  for (int i = 0; i < files->size(); ++i) {
    const std::string& data = content[static_cast<uint32_t>(i)];
    files->Mutable(i)->set_size(data.size());
    files->Mutable(i)->set_sha256(compressd::Sha256Hex(data));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Env* env = new Env();
  if (size < 1 || size > (1 << 18)) return 0;
  const bool dataset = data[0] & 1, fix_up = data[0] & 2;
  compressd::v1::UploadModelRequest header;  // the first header message
  bool have_header = false;
  std::vector<FileChunk> chunks;
  for (size_t at = 1; at + 2 <= size;) {
    const size_t len = data[at] | (size_t{data[at + 1]} << 8);
    at += 2;
    if (at + len > size) break;
    compressd::v1::UploadModelRequest msg;  // same wire shape as the dataset request
    if (!msg.ParseFromArray(data + at, static_cast<int>(len))) return 0;
    at += len;
    if (msg.has_chunk()) {
      chunks.push_back(msg.chunk());
    } else if (msg.has_header() && !have_header) {
      header = msg;
      have_header = true;
    }
  }
  compressd::ModelRegistry registry(*env->store, *env->blobs, env->metrics,
                                    compressd::UploadLimits{1 << 20, 4 << 20, 64});
  std::unique_ptr<compressd::UploadSession> session = registry.StartUpload();
  absl::Status st;
  if (dataset) {
    // The model header's bytes read as a dataset header: name = 1, files = 2.
    compressd::v1::UploadDatasetHeader h;
    if (!h.ParseFromString(header.header().SerializeAsString())) return 0;
    if (fix_up) FixUp(h.mutable_files(), chunks);
    st = session->OnDatasetHeader(h);
  } else {
    compressd::v1::UploadModelHeader h = header.header();
    if (fix_up) FixUp(h.mutable_files(), chunks);
    st = session->OnModelHeader(h);
  }
  for (const FileChunk& c : chunks) {
    if (!st.ok()) break;
    st = session->OnChunk(c);
  }
  if (!Expected(st)) std::abort();
  if (st.ok()) {
    st = dataset ? session->FinishDataset().status() : session->FinishModel().status();
    if (!Expected(st)) std::abort();
  }
  return 0;
}
