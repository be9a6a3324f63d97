#include "workers/engine/tokenizer/bpe_model.h"

#include <queue>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "workers/engine/tokenizer/byte_level.h"

namespace compressd::engine {
namespace {

struct Symbol {
  int32_t id;
  int32_t prev;  // index of the previous live symbol, -1 at the start
  int32_t next;  // index of the next live symbol, -1 at the end
  bool live;
};

// A candidate merge of symbols[pos] with its successor.
struct Candidate {
  int32_t rank;
  int32_t pos;
  int32_t new_id;
};

// Heap order: lowest rank first, then leftmost.
struct CandidateAfter {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  }
};

}  // namespace

absl::StatusOr<BpeModel> BpeModel::Create(
    const std::vector<std::string>& vocab,
    const std::vector<std::pair<std::string, std::string>>& merges, Options options) {
  BpeModel model;
  model.options_ = options;
  absl::flat_hash_map<std::string_view, int32_t> ids;
  ids.reserve(vocab.size());
  for (size_t id = 0; id < vocab.size(); ++id) {
    if (!vocab[id].empty()) ids.emplace(vocab[id], static_cast<int32_t>(id));
  }
  model.byte_ids_.fill(-1);
  for (int b = 0; b < 256; ++b) {
    const std::string ch = BytesToByteLevel(std::string(1, static_cast<char>(b)));
    if (const auto it = ids.find(ch); it != ids.end()) model.byte_ids_[b] = it->second;
  }
  model.merges_.reserve(merges.size());
  std::string merged;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    merged = left + right;
    const auto l = ids.find(left);
    const auto r = ids.find(right);
    const auto m = ids.find(merged);
    if (l == ids.end() || r == ids.end() || m == ids.end()) {
      const std::string& missing = l == ids.end() ? left : (r == ids.end() ? right : merged);
      return absl::InvalidArgumentError(absl::StrCat("merges[", rank, "] (\"", left, " ", right,
                                                     "\"): token \"", missing,
                                                     "\" is not in the vocabulary"));
    }
    model.merges_.insert_or_assign(PairKey(l->second, r->second),
                                   MergeInfo{static_cast<int32_t>(rank), m->second});
  }
  if (options.ignore_merges) {
    std::string bytes;
    for (const auto& [token, id] : ids) {
      if (ByteLevelToBytes(token, &bytes)) model.whole_words_.emplace(bytes, id);
    }
  }
  return model;
}

void BpeModel::EncodeWord(std::string_view word, std::vector<int32_t>* out) const {
  if (options_.ignore_merges) {
    if (const auto it = whole_words_.find(absl::string_view(word.data(), word.size()));
        it != whole_words_.end()) {
      out->push_back(it->second);
      return;
    }
  }
  absl::InlinedVector<Symbol, 32> symbols;
  bool last_was_unk = false;
  for (const char c : word) {
    int32_t id = byte_ids_[static_cast<uint8_t>(c)];
    if (id < 0) {
      if (options_.unk_id < 0 || (options_.fuse_unk && last_was_unk)) continue;
      id = options_.unk_id;
      last_was_unk = true;
    } else {
      last_was_unk = false;
    }
    const auto n = static_cast<int32_t>(symbols.size());
    symbols.push_back(Symbol{id, n - 1, -1, true});
    if (n > 0) symbols[n - 1].next = n;
  }

  std::priority_queue<Candidate, absl::InlinedVector<Candidate, 32>, CandidateAfter> heap;
  for (size_t i = 0; i + 1 < symbols.size(); ++i) {
    if (const MergeInfo* m = FindMerge(symbols[i].id, symbols[i + 1].id)) {
      heap.push(Candidate{m->rank, static_cast<int32_t>(i), m->new_id});
    }
  }
  while (!heap.empty()) {
    const Candidate top = heap.top();
    heap.pop();
    Symbol& left = symbols[top.pos];
    if (!left.live || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    // Stale entry: the pair at this position has changed since it was queued.
    const MergeInfo* now = FindMerge(left.id, right.id);
    if (now == nullptr || now->new_id != top.new_id) continue;
    left.id = top.new_id;
    right.live = false;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (left.prev >= 0) {
      if (const MergeInfo* m = FindMerge(symbols[left.prev].id, left.id)) {
        heap.push(Candidate{m->rank, left.prev, m->new_id});
      }
    }
    if (left.next >= 0) {
      if (const MergeInfo* m = FindMerge(left.id, symbols[left.next].id)) {
        heap.push(Candidate{m->rank, top.pos, m->new_id});
      }
    }
  }
  for (const Symbol& s : symbols) {
    if (s.live) out->push_back(s.id);
  }
}

}  // namespace compressd::engine
