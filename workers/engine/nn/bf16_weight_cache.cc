// Packed BF16 weights of recent Linear calls; see bf16_weight_cache.h.
#include "workers/engine/nn/bf16_weight_cache.h"

#include <cstring>

namespace compressd::engine {

void Bf16WeightCache::Erase(std::unordered_map<const float*, Entry>::iterator it) {
  bytes_ -= it->second.bytes();
  entries_.erase(it);
}

bool Bf16WeightCache::MakeRoom(size_t need) {
  while (bytes_ + need > max_bytes_) {
    auto oldest = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (oldest == entries_.end() || it->second.last_use < oldest->second.last_use) oldest = it;
    }
    if (oldest == entries_.end() || clock_ - oldest->second.last_use < kStaleCalls) return false;
    Erase(oldest);
  }
  return true;
}

const Bf16PackedWeights* Bf16WeightCache::Get(const float* w, const uint16_t* rounded, int64_t t,
                                              int64_t in, int64_t out) {
  ++clock_;
  const size_t n = static_cast<size_t>(in * out);
  auto it = entries_.find(w);
  if (it != entries_.end()) {
    Entry& e = it->second;
    if (e.packed->in() == in && e.packed->out() == out &&
        std::memcmp(e.rounded.data(), rounded, n * sizeof(uint16_t)) == 0) {
      e.last_use = clock_;
      ++hits_;
      return e.packed.get();
    }
    Erase(it);  // rewritten in place, or another shape at this address
  }
  // The packed copy is about the size of the rounded one.
  if (2 * n * sizeof(uint16_t) > max_bytes_ || !MakeRoom(2 * n * sizeof(uint16_t))) return nullptr;
  Entry e;
  e.packed = Bf16PackedWeights::Pack(rounded, t, in, out);
  if (e.packed == nullptr) return nullptr;
  ++packs_;
  e.rounded.assign(rounded, rounded + n);
  e.last_use = clock_;
  bytes_ += e.bytes();
  return entries_.emplace(w, std::move(e)).first->second.packed.get();
}

}  // namespace compressd::engine
