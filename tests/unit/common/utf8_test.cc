#include "common/utf8.h"

#include <string>

#include "gtest/gtest.h"

namespace compressd {
namespace {

TEST(Utf8Test, ValidTextIsKept) {
  const std::string text = "model.layers.0 \xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";  // é € 😀
  EXPECT_TRUE(IsValidUtf8(text));
  EXPECT_EQ(ToValidUtf8(text), text);
}

TEST(Utf8Test, InvalidSequencesBecomeReplacementCharacters) {
  const std::string fffd = "\xEF\xBF\xBD";
  // A stray byte, a truncated sequence, an overlong '/', a surrogate.
  EXPECT_FALSE(IsValidUtf8("key \xFF\xFE"));
  EXPECT_EQ(ToValidUtf8("key \xFF\xFE!"), "key " + fffd + fffd + "!");
  EXPECT_EQ(ToValidUtf8("a\xE2\x82"), "a" + fffd);
  EXPECT_EQ(ToValidUtf8("\xC0\xAF"), fffd);
  EXPECT_EQ(ToValidUtf8("\xED\xA0\x80x"), fffd + "x");
  EXPECT_TRUE(IsValidUtf8(ToValidUtf8(std::string("\x80\x81\xC3") + "\0z", 4)));
}

TEST(Utf8Test, CutsOnACharacterBoundary) {
  const std::string euros = "\xE2\x82\xAC\xE2\x82\xAC\xE2\x82\xAC";  // 9 bytes
  EXPECT_EQ(ToValidUtf8(euros, 9), euros);
  const std::string cut = ToValidUtf8(euros, 8);
  EXPECT_EQ(cut, "\xE2\x82\xAC...");
  EXPECT_TRUE(IsValidUtf8(cut));
  EXPECT_LE(ToValidUtf8(std::string(100000, 'x'), kMaxErrorTextBytes).size(), kMaxErrorTextBytes);
}

}  // namespace
}  // namespace compressd
