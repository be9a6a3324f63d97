// Byte-level BPE model: HF tokenizers' `BPE` with byte_fallback off, no
// continuing-subword prefix or end-of-word suffix and no dropout.
//
// A word (one pre-tokenized piece, raw bytes) starts as one symbol per byte
// (the vocabulary id of the byte's byte-level character). Then, repeatedly,
// the adjacent pair with the lowest merge rank is merged, the leftmost one on
// ties; a min-heap of candidate pairs with lazy invalidation gives
// O(n log n) per word (the algorithm of HF's word.rs, which it matches
// exactly). With ignore_merges a word that is itself a vocabulary token maps
// straight to it (Llama 3).
//
// Immutable after Create(): thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace compressd::engine {

class BpeModel {
 public:
  struct Options {
    bool ignore_merges = false;
    int32_t unk_id = -1;    // replaces bytes with no vocabulary entry; -1 drops them
    bool fuse_unk = false;  // consecutive unknown bytes become one unk
  };

  // `vocab`: id -> token in byte-level form ("" for an unused id).
  // `merges`: (left, right) in byte-level form, in rank order; left, right and
  // left+right must all be in the vocabulary. A repeated pair takes its last
  // rank (as HF does).
  static absl::StatusOr<BpeModel> Create(
      const std::vector<std::string>& vocab,
      const std::vector<std::pair<std::string, std::string>>& merges, Options options);

  // Appends the ids of `word` (raw bytes, non-empty).
  void EncodeWord(std::string_view word, std::vector<int32_t>* out) const;

  size_t num_merges() const { return merges_.size(); }

 private:
  struct MergeInfo {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t PairKey(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }
  const MergeInfo* FindMerge(int32_t left, int32_t right) const {
    const auto it = merges_.find(PairKey(left, right));
    return it == merges_.end() ? nullptr : &it->second;
  }

  Options options_;
  std::array<int32_t, 256> byte_ids_{};  // -1 when the byte has no token
  absl::flat_hash_map<uint64_t, MergeInfo> merges_;
  absl::flat_hash_map<std::string, int32_t> whole_words_;  // raw bytes -> id (ignore_merges)
};

}  // namespace compressd::engine
