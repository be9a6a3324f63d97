// GgufFile: metadata of every type, tensor infos and alignment, and the
// malformed files the parser must reject (never crash on).
#include "workers/engine/model/gguf/gguf_file.h"

#include <random>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/engine/model/gguf_writer.h"

namespace compressd::engine {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using testing::GgufWriter;
using ::testing::HasSubstr;
using testing::Put;
using testing::PutString;

constexpr uint32_t kF32 = static_cast<uint32_t>(GgmlType::kF32);
constexpr uint32_t kQ4_0 = static_cast<uint32_t>(GgmlType::kQ4_0);

// A small valid file: metadata of several kinds and two tensors, the last
// one ending exactly at end of file.
GgufWriter ValidWriter() {
  GgufWriter w;
  w.AddString("general.architecture", "llama");
  w.AddU32("llama.block_count", 2);
  w.AddStringArray("tokenizer.ggml.tokens", {"a", "bb", ""});
  w.AddF32Tensor("a.weight", {4, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  w.AddTensor("b.weight", {32}, kQ4_0, std::string(18, '\x11'));
  return w;
}

absl::StatusOr<std::unique_ptr<GgufFile>> Parse(const std::string& bytes) {
  return GgufFile::FromBytes("mem.gguf", bytes);
}

void ExpectInvalid(const std::string& bytes, const std::string& what) {
  absl::StatusOr<std::unique_ptr<GgufFile>> f = Parse(bytes);
  ASSERT_FALSE(f.ok()) << what;
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument) << f.status();
  EXPECT_THAT(f.status().message(), HasSubstr("mem.gguf")) << what;
  EXPECT_THAT(f.status().message(), HasSubstr(what));
}

TEST(GgufFileTest, ReadsMetadataOfEveryType) {
  GgufWriter w(2);
  w.AddU8("u8", 200);
  w.AddI8("i8", -5);
  w.AddU16("u16", 60000);
  w.AddI16("i16", -300);
  w.AddU32("u32", 4000000000u);
  w.AddI32("i32", -7);
  w.AddU64("u64", 1ull << 40);
  w.AddI64("i64", -(1ll << 40));
  w.AddF32("f32", 0.25f);
  w.AddF64("f64", 1e-5);
  w.AddBool("bool", true);
  w.AddString("str", "hello");
  w.AddStringArray("strs", {"x", "", "yz"});
  w.AddI32Array("ints", {1, -2, 3});
  w.AddF32Array("floats", {0.5f, -1.5f});
  std::string nested;  // array of 2 arrays of u8: [[1, 2], []]
  Put<uint32_t>(&nested, static_cast<uint32_t>(GgufValueType::kArray));
  Put<uint64_t>(&nested, 2);
  Put<uint32_t>(&nested, static_cast<uint32_t>(GgufValueType::kU8));
  Put<uint64_t>(&nested, 2);
  nested += "\x01\x02";
  Put<uint32_t>(&nested, static_cast<uint32_t>(GgufValueType::kU8));
  Put<uint64_t>(&nested, 0);
  w.AddRawKv("nested", GgufValueType::kArray, nested);
  absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::Open(w.WriteTemp("every_type.gguf"));
  ASSERT_TRUE(f.ok()) << f.status();
  const GgufFile& g = **f;
  EXPECT_EQ(g.version(), 2u);
  EXPECT_EQ(g.metadata().size(), 16u);
  EXPECT_EQ(*g.GetU32("u8"), 200u);
  EXPECT_EQ(*g.GetI32("i8"), -5);
  EXPECT_EQ(*g.GetU32("u16"), 60000u);
  EXPECT_EQ(*g.GetI32("i16"), -300);
  EXPECT_EQ(*g.GetU32("u32"), 4000000000u);
  EXPECT_EQ(*g.GetI32("i32"), -7);
  EXPECT_EQ(*g.GetU64("u64"), 1ull << 40);
  EXPECT_EQ(*g.GetF32("f32"), 0.25f);
  EXPECT_EQ(*g.GetF32("f64"), 1e-5f);
  EXPECT_TRUE(*g.GetBool("bool"));
  EXPECT_EQ(*g.GetString("str"), "hello");
  EXPECT_THAT(*g.GetStringArray("strs"), ElementsAre("x", "", "yz"));
  EXPECT_THAT(*g.GetIntArray("ints"), ElementsAre(1, -2, 3));
  EXPECT_THAT(*g.GetF32Array("floats"), ElementsAre(0.5f, -1.5f));
  const GgufKv* kv = g.FindKv("nested");
  ASSERT_NE(kv, nullptr);
  EXPECT_EQ(kv->elem_type, GgufValueType::kArray);
  EXPECT_EQ(kv->count, 2u);
  EXPECT_TRUE(g.tensors().empty());
}

TEST(GgufFileTest, MetadataAccessorsReportTypedErrors) {
  GgufWriter w;
  w.AddI32("neg", -1);
  w.AddU64("big", 1ull << 40);
  w.AddString("s", "x");
  absl::StatusOr<std::unique_ptr<GgufFile>> f = Parse(w.Build());
  ASSERT_TRUE(f.ok()) << f.status();
  const GgufFile& g = **f;
  EXPECT_EQ(g.GetU32("missing").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(g.GetU32("missing").status().message(),
              AllOf(HasSubstr("mem.gguf"), HasSubstr("missing")));
  EXPECT_EQ(g.GetU32("neg").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(g.GetI32("big").status().code(), absl::StatusCode::kInvalidArgument);
  absl::Status wrong = g.GetU32("s").status();
  EXPECT_EQ(wrong.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(wrong.message(),
              AllOf(HasSubstr("\"s\""), HasSubstr("is string"), HasSubstr("offset")));
  EXPECT_EQ(g.GetStringArray("s").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(g.GetF32("neg").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(g.GetBool("neg").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(GgufFileTest, ReadsTensorInfosAndAlignsData) {
  GgufWriter w = ValidWriter();
  w.AddU32("general.alignment", 64);
  const std::string path = w.WriteTemp("aligned.gguf", 64);
  absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  const GgufFile& g = **f;
  EXPECT_EQ(g.path(), path);
  EXPECT_EQ(g.alignment(), 64u);
  EXPECT_EQ(g.data_start() % 64, 0u);
  ASSERT_EQ(g.tensors().size(), 2u);
  const GgufTensorInfo* a = g.FindTensor("a.weight");
  ASSERT_NE(a, nullptr);
  EXPECT_THAT(a->ne, ElementsAre(4, 2));
  EXPECT_EQ(a->numel, 8);
  EXPECT_EQ(a->nbytes, 32u);
  EXPECT_EQ(a->n_rows(), 2);
  float v[8];
  std::memcpy(v, g.TensorData(*a), sizeof(v));
  EXPECT_EQ(v[0], 1.0f);
  EXPECT_EQ(v[7], 8.0f);
  const GgufTensorInfo* b = g.FindTensor("b.weight");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->type, GgmlType::kQ4_0);
  EXPECT_EQ(b->offset, 64u);
  EXPECT_EQ(b->nbytes, 18u);
  EXPECT_EQ(g.data_start() + b->offset + b->nbytes, g.file_size());
  EXPECT_EQ(g.FindTensor("c.weight"), nullptr);
}

TEST(GgufFileTest, MissingFileIsNotFound) {
  EXPECT_EQ(GgufFile::Open(::testing::TempDir() + "/no_such.gguf").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(GgufFileTest, RejectsBadMagic) {
  std::string bytes = ValidWriter().Build();
  bytes[0] = 'X';
  ExpectInvalid(bytes, "bad magic at offset 0");
}

TEST(GgufFileTest, RejectsUnsupportedVersion) {
  ExpectInvalid(GgufWriter(1).Build(), "unsupported GGUF version 1");
  ExpectInvalid(GgufWriter(4).Build(), "unsupported GGUF version 4");
}

TEST(GgufFileTest, RejectsTruncatedHeader) {
  ExpectInvalid(ValidWriter().Build().substr(0, 10), "truncated GGUF header");
  ExpectInvalid("", "truncated GGUF header");
}

TEST(GgufFileTest, RejectsStringLengthPastEof) {
  GgufWriter w;
  std::string value;
  Put<uint64_t>(&value, 1000);  // a 1000-byte string with 3 bytes left
  value += "abc";
  w.AddRawKv("general.name", GgufValueType::kString, value);
  ExpectInvalid(w.Build(), "key \"general.name\" at offset 24: string at offset");
}

TEST(GgufFileTest, RejectsKeyLengthPastEof) {
  std::string bytes = "GGUF";
  Put<uint32_t>(&bytes, 3);
  Put<uint64_t>(&bytes, 0);
  Put<uint64_t>(&bytes, 1);
  Put<uint64_t>(&bytes, ~0ull);  // key length
  bytes += "0123456789";
  ExpectInvalid(bytes, "key string runs past end of file");
}

TEST(GgufFileTest, RejectsHugeArrayCount) {
  GgufWriter w;
  std::string value;
  Put<uint32_t>(&value, static_cast<uint32_t>(GgufValueType::kU32));
  Put<uint64_t>(&value, 1ull << 60);
  w.AddRawKv("huge", GgufValueType::kArray, value);
  ExpectInvalid(w.Build(), "declares 1152921504606846976 elements");
  GgufWriter s;  // strings: bounded by 8 bytes per element before any allocation
  value.clear();
  Put<uint32_t>(&value, static_cast<uint32_t>(GgufValueType::kString));
  Put<uint64_t>(&value, ~0ull);
  s.AddRawKv("huge", GgufValueType::kArray, value);
  ExpectInvalid(s.Build(), "elements of string");
}

TEST(GgufFileTest, RejectsHugeCounts) {
  std::string bytes = "GGUF";
  Put<uint32_t>(&bytes, 3);
  Put<uint64_t>(&bytes, 1ull << 50);  // tensors
  Put<uint64_t>(&bytes, 0);
  ExpectInvalid(bytes, "tensor count 1125899906842624 at offset 8");
  bytes = "GGUF";
  Put<uint32_t>(&bytes, 3);
  Put<uint64_t>(&bytes, 0);
  Put<uint64_t>(&bytes, ~0ull);  // kvs
  ExpectInvalid(bytes, "metadata count");
}

TEST(GgufFileTest, RejectsDeeplyNestedArrays) {
  std::string value;
  for (int i = 0; i < 100; ++i) {
    Put<uint32_t>(&value, static_cast<uint32_t>(GgufValueType::kArray));
    Put<uint64_t>(&value, 1);
  }
  GgufWriter w;
  w.AddRawKv("deep", GgufValueType::kArray, value + std::string(16, '\0'));
  ExpectInvalid(w.Build(), "nested deeper than");
}

TEST(GgufFileTest, RejectsUnknownValueType) {
  GgufWriter w;
  w.AddRawKv("k", static_cast<GgufValueType>(13), "");
  ExpectInvalid(w.Build(), "unknown value type 13");
}

TEST(GgufFileTest, RejectsDuplicateKeyAndTensor) {
  GgufWriter w;
  w.AddU32("k", 1);
  w.AddU32("k", 2);
  ExpectInvalid(w.Build(), "duplicate key");
  GgufWriter t;
  t.AddF32Tensor("x", {1}, {1});
  t.AddF32Tensor("x", {1}, {2});
  ExpectInvalid(t.Build(), "tensor info 1 \"x\"");
}

TEST(GgufFileTest, RejectsTensorOffsetPastEof) {
  GgufWriter w;
  w.AddTensor("t", {8}, kF32, std::string(32, '\0'));
  std::string bytes = w.Build();
  bytes.resize(bytes.size() - 4);
  ExpectInvalid(
      bytes, "tensor \"t\" (info at offset 24, data offset 0): 32 bytes from data section start");
  GgufWriter far;
  far.AddTensor("t", {8}, kF32, std::string(32, '\0'));
  std::string fb = far.Build();
  // Patch the stored offset (last 8 bytes of the info, just before padding) to 2^62.
  const size_t info_end = 24 + 8 + 1 + 4 + 8 + 4 + 8;
  const uint64_t huge = 1ull << 62;
  std::memcpy(&fb[info_end - 8], &huge, 8);
  ExpectInvalid(fb, "run past end of file");
}

TEST(GgufFileTest, RejectsMisalignedData) {
  GgufWriter w;
  w.AddTensor("t", {2}, kF32, std::string(8, '\0'), /*offset=*/4);
  ExpectInvalid(w.Build(), "misaligned data");
  GgufWriter a;
  a.AddU32("general.alignment", 48);
  ExpectInvalid(a.Build(), "not a power of two");
}

TEST(GgufFileTest, RejectsBadDims) {
  GgufWriter w;
  w.AddTensor("t5", {1, 1, 1, 1, 1}, kF32, std::string(4, '\0'));
  ExpectInvalid(w.Build(), "n_dims 5 outside 1..4");
  GgufWriter z;
  z.AddTensor("t0", {}, kF32, std::string(4, '\0'));
  ExpectInvalid(z.Build(), "n_dims 0");
  GgufWriter o;
  o.AddTensor("big", {1ull << 40, 1ull << 40}, kF32, "");
  ExpectInvalid(o.Build(), "overflows");
  GgufWriter n;
  n.AddTensor("neg", {~0ull}, kF32, "");
  ExpectInvalid(n.Build(), "negative");
}

TEST(GgufFileTest, RejectsUnknownTypeAndPartialBlocks) {
  GgufWriter w;
  w.AddTensor("t", {32}, 99, std::string(32, '\0'));
  ExpectInvalid(w.Build(), "tensor info 0 \"t\" at offset 24: unknown ggml type id 99");
  GgufWriter p;
  p.AddTensor("t", {16}, kQ4_0, std::string(18, '\0'));
  ExpectInvalid(p.Build(), "not a multiple of the Q4_0 block size 32");
}

TEST(GgufFileTest, RejectsOverlappingTensors) {
  GgufWriter w;
  w.AddTensor("a", {16}, kF32, std::string(64, '\0'), 0);
  w.AddTensor("b", {16}, kF32, std::string(64, '\0'), 32);
  ExpectInvalid(w.Build(), "overlaps tensor \"a\"");
}

// Every proper prefix of a valid file is rejected, cleanly.
TEST(GgufFileTest, EveryTruncationIsInvalid) {
  const std::string bytes = ValidWriter().Build();
  ASSERT_TRUE(Parse(bytes).ok());
  for (size_t n = 0; n < bytes.size(); ++n) {
    absl::StatusOr<std::unique_ptr<GgufFile>> f = Parse(bytes.substr(0, n));
    ASSERT_FALSE(f.ok()) << "prefix " << n;
    EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument) << f.status();
  }
}

// Random corruption never crashes (ASan/UBSan builds check the reads) and a
// file that parses has its tensors inside the file.
TEST(GgufFileTest, RandomCorruptionNeverCrashes) {
  const std::string bytes = ValidWriter().Build();
  std::mt19937 rng(7);
  for (int iter = 0; iter < 3000; ++iter) {
    std::string b = bytes;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < flips; ++i) b[rng() % b.size()] = static_cast<char>(rng());
    absl::StatusOr<std::unique_ptr<GgufFile>> f = Parse(b);
    if (!f.ok()) {
      EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument) << f.status();
      continue;
    }
    for (const GgufTensorInfo& t : (*f)->tensors()) {
      EXPECT_LE((*f)->data_start() + t.offset + t.nbytes, (*f)->file_size());
    }
    for (const GgufKv& kv : (*f)->metadata()) {
      (void)(*f)->GetString(kv.key);
      (void)(*f)->GetStringArray(kv.key);
      (void)(*f)->GetIntArray(kv.key);
      (void)(*f)->GetU64(kv.key);
    }
  }
}

}  // namespace
}  // namespace compressd::engine
