#include "workers/engine/tokenizer/added_tokens.h"

#include <algorithm>

#include "workers/engine/tokenizer/unicode_props.h"

namespace compressd::engine {
namespace {

bool IsWhitespaceAt(std::string_view text, size_t pos, size_t* len) {
  const Utf8Char c = DecodeUtf8(text, pos);
  *len = c.len;
  return (c.cls & kClassWhitespace) != 0;
}

// Start of the whitespace run that ends at `end`, not before `floor`.
size_t WhitespaceRunStart(std::string_view text, size_t end, size_t floor) {
  size_t start = end;
  while (start > floor) {
    size_t prev = start - 1;
    while (prev > floor && (static_cast<uint8_t>(text[prev]) & 0xC0) == 0x80 && start - prev < 4) {
      --prev;
    }
    size_t len = 0;
    if (!IsWhitespaceAt(text, prev, &len) || prev + len != start) break;
    start = prev;
  }
  return start;
}

// End of the whitespace run that starts at `start`.
size_t WhitespaceRunEnd(std::string_view text, size_t start) {
  size_t len = 0;
  while (start < text.size() && IsWhitespaceAt(text, start, &len)) start += len;
  return start;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(const std::vector<AddedToken>& tokens) {
  for (const AddedToken& token : tokens) {
    if (token.content.empty()) continue;
    Pass& pass = token.normalized ? normalized_ : raw_;
    const auto first = static_cast<uint8_t>(token.content[0]);
    pass.first_byte[first] = true;
    pass.by_first_byte[first].push_back(token);
    empty_ = false;
  }
  for (Pass* pass : {&raw_, &normalized_}) {
    for (auto& group : pass->by_first_byte) {
      std::stable_sort(group.begin(), group.end(), [](const AddedToken& a, const AddedToken& b) {
        return a.content.size() > b.content.size();
      });
    }
  }
}

bool AddedTokenMatcher::FindLeftmostLongest(const Pass& pass, std::string_view text, size_t from,
                                            bool match_special, Match* match) {
  for (size_t pos = from; pos < text.size(); ++pos) {
    const auto b = static_cast<uint8_t>(text[pos]);
    if (!pass.first_byte[b]) continue;
    for (const AddedToken& token : pass.by_first_byte[b]) {
      if (token.special && !match_special) continue;
      if (text.compare(pos, token.content.size(), token.content) == 0) {
        *match = Match{pos, pos + token.content.size(), &token};
        return true;
      }
    }
  }
  return false;
}

void AddedTokenMatcher::SplitPass(const Pass& pass, std::string_view text, bool match_special,
                                  std::vector<Segment>* out) {
  size_t done = 0;  // end of the last match
  size_t search = 0;
  Match m{};
  while (FindLeftmostLongest(pass, text, search, match_special, &m)) {
    search = m.end;
    if (m.token->lstrip) m.start = WhitespaceRunStart(text, m.start, done);
    if (m.token->rstrip) m.end = WhitespaceRunEnd(text, m.end);
    if (m.start > done) out->push_back(Segment{text.substr(done, m.start - done), -1});
    out->push_back(Segment{text.substr(m.start, m.end - m.start), m.token->id});
    done = m.end;
    search = std::max(search, done);
  }
  if (done < text.size()) out->push_back(Segment{text.substr(done), -1});
}

void AddedTokenMatcher::Split(std::string_view text, bool match_special,
                              std::vector<Segment>* out) const {
  if (empty_) {
    if (!text.empty()) out->push_back(Segment{text, -1});
    return;
  }
  std::vector<Segment> first;
  SplitPass(raw_, text, match_special, &first);
  for (const Segment& seg : first) {
    if (seg.id >= 0) {
      out->push_back(seg);
    } else {
      SplitPass(normalized_, seg.text, match_special, out);
    }
  }
}

}  // namespace compressd::engine
