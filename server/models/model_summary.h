// The architecture summary of an uploaded model (Model.architecture), read
// from its files: the GGUF metadata, or an HF checkpoint's config.json and
// safetensors headers. Best effort: keys the files do not state are left out;
// values are valid UTF-8 (invalid bytes become U+FFFD) of at most 256 bytes.
#pragma once

#include <map>
#include <string>

#include "compressd/v1/compressd.pb.h"
#include "server/store/blob_store.h"

namespace compressd {

// `files` are stored in `blobs` (already verified as parseable).
std::map<std::string, std::string> SummarizeModel(
    v1::ModelFormat format, const google::protobuf::RepeatedPtrField<v1::FileEntry>& files,
    const BlobStore& blobs);

}  // namespace compressd
