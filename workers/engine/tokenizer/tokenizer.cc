#include "workers/engine/tokenizer/tokenizer.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "workers/engine/tokenizer/byte_level.h"

namespace compressd::engine {
namespace {

constexpr int64_t kMaxVocab = int64_t{1} << 24;

// Memoises BPE results of repeated words within one Encode call.
class WordCache {
 public:
  explicit WordCache(const BpeModel& bpe) : bpe_(bpe) {}

  void Encode(std::string_view word, std::vector<int32_t>* out) {
    const absl::string_view key(word.data(), word.size());
    if (const auto it = map_.find(key); it != map_.end()) {
      out->insert(out->end(), ids_.begin() + it->second.first,
                  ids_.begin() + it->second.first + it->second.second);
      return;
    }
    const size_t before = out->size();
    bpe_.EncodeWord(word, out);
    if (ids_.size() > kMaxCachedIds) {
      map_.clear();
      ids_.clear();
    }
    const auto offset = static_cast<uint32_t>(ids_.size());
    ids_.insert(ids_.end(), out->begin() + before, out->end());
    map_.emplace(std::string(word),
                 std::make_pair(offset, static_cast<uint32_t>(out->size() - before)));
  }

 private:
  static constexpr size_t kMaxCachedIds = size_t{1} << 22;
  const BpeModel& bpe_;
  absl::flat_hash_map<std::string, std::pair<uint32_t, uint32_t>> map_;  // word -> (offset, count)
  std::vector<int32_t> ids_;
};

absl::Status ValidateId(int64_t id, int64_t n, absl::string_view what) {
  if (id < 0 || id >= n) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", id, " is outside the vocabulary (size ", n, ")"));
  }
  return absl::OkStatus();
}

absl::Status ValidatePreTokenizer(const std::vector<PreTokenizerStep>& steps) {
  const auto byte_level = std::count_if(steps.begin(), steps.end(), [](const auto& s) {
    return s.kind == PreTokenizerStep::Kind::kByteLevel;
  });
  if (steps.empty() || byte_level != 1 || steps.back().kind != PreTokenizerStep::Kind::kByteLevel) {
    return absl::InvalidArgumentError(
        "pre_tokenizer: a byte-level BPE tokenizer needs exactly one ByteLevel step, last");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Tokenizer> Tokenizer::Create(TokenizerSpec spec) {
  if (spec.vocab.empty()) return absl::InvalidArgumentError("vocab is empty");
  RETURN_IF_ERROR(ValidatePreTokenizer(spec.pre_tokenizer));
  int64_t n = static_cast<int64_t>(spec.vocab.size());
  for (size_t i = 0; i < spec.added_tokens.size(); ++i) {
    const AddedToken& t = spec.added_tokens[i];
    if (t.content.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("added_tokens[", i, "]: empty content"));
    }
    if (t.id < 0 || t.id >= kMaxVocab) {
      return absl::InvalidArgumentError(
          absl::StrCat("added_tokens[", i, "] (\"", t.content, "\"): bad id ", t.id));
    }
    n = std::max<int64_t>(n, int64_t{t.id} + 1);
  }
  if (n > kMaxVocab) return absl::InvalidArgumentError(absl::StrCat("vocab too large: ", n));
  // Ids index dense tables: refuse a few tokens with huge ids.
  const int64_t defined = std::count_if(spec.vocab.begin(), spec.vocab.end(),
                                        [](const std::string& t) { return !t.empty(); }) +
                          static_cast<int64_t>(spec.added_tokens.size());
  if (n > 2 * defined + 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("token ids are sparse: ", n, " ids for ", defined, " tokens"));
  }
  if (spec.bos_id >= 0 || spec.add_bos) RETURN_IF_ERROR(ValidateId(spec.bos_id, n, "bos id"));
  if (spec.eos_id >= 0 || spec.add_eos) RETURN_IF_ERROR(ValidateId(spec.eos_id, n, "eos id"));
  if (spec.unk_id >= 0) RETURN_IF_ERROR(ValidateId(spec.unk_id, n, "unk id"));

  BpeModel::Options options;
  options.ignore_merges = spec.ignore_merges;
  options.unk_id = spec.unk_id;
  options.fuse_unk = spec.fuse_unk;
  ASSIGN_OR_RETURN(BpeModel bpe, BpeModel::Create(spec.vocab, spec.merges, options));

  Tokenizer tok;
  tok.bpe_ = std::make_unique<BpeModel>(std::move(bpe));
  tok.pre_tokenizer_ = std::move(spec.pre_tokenizer);
  tok.added_ = AddedTokenMatcher(spec.added_tokens);
  tok.id_bytes_.resize(n);
  tok.id_valid_.assign(n, false);
  for (size_t id = 0; id < spec.vocab.size(); ++id) {
    const std::string& token = spec.vocab[id];
    if (token.empty()) continue;
    // A token outside the byte-level alphabet decodes as its own UTF-8 text
    // (what HF's ByteLevel decoder does).
    if (!ByteLevelToBytes(token, &tok.id_bytes_[id])) tok.id_bytes_[id] = token;
    tok.id_valid_[id] = true;
  }
  for (const AddedToken& t : spec.added_tokens) {
    tok.id_bytes_[t.id] = t.content;
    tok.id_valid_[t.id] = true;
  }
  tok.bos_id_ = spec.bos_id;
  tok.eos_id_ = spec.eos_id;
  tok.add_bos_ = spec.add_bos;
  tok.add_eos_ = spec.add_eos;
  return tok;
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool add_special,
                                       bool parse_special) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 4 + 2);
  if (add_special && add_bos_) ids.push_back(bos_id_);
  std::vector<AddedTokenMatcher::Segment> segments;
  added_.Split(text, parse_special, &segments);
  WordCache cache(*bpe_);
  for (const AddedTokenMatcher::Segment& seg : segments) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
      continue;
    }
    PreTokenize(pre_tokenizer_, seg.text,
                [&cache, &ids](std::string_view piece) { cache.Encode(piece, &ids); });
  }
  if (add_special && add_eos_) ids.push_back(eos_id_);
  return ids;
}

absl::StatusOr<std::string> Tokenizer::Decode(absl::Span<const int32_t> ids) const {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    if (id < 0 || id >= vocab_size() || !id_valid_[id]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "ids[", i, "] = ", id, " is not a token id (vocab size ", vocab_size(), ")"));
    }
    out += id_bytes_[id];
  }
  return out;
}

std::string_view Tokenizer::TokenBytes(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return {};
  return id_bytes_[id];
}

}  // namespace compressd::engine
