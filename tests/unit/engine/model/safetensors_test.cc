#include "workers/engine/model/safetensors.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "workers/engine/export/safetensors_writer.h"

namespace compressd::engine {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("st_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes [u64 header_len][header][data]; header_len defaults to header.size().
  std::string WriteRaw(const std::string& header, const std::string& data,
                       int64_t header_len = -1) {
    const uint64_t len = header_len < 0 ? header.size() : static_cast<uint64_t>(header_len);
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((len >> (8 * i)) & 0xff);
    const std::string path = (dir_ / "m.safetensors").string();
    std::ofstream(path, std::ios::binary) << bytes << header << data;
    return path;
  }

  absl::Status OpenStatus(const std::string& path) { return SafetensorsFile::Open(path).status(); }

  fs::path dir_;
};

TEST_F(SafetensorsTest, RoundTripKeepsDtypesShapesBytesAndMetadata) {
  const std::vector<float> values = {1.0f, -2.0f, 0.5f, 0.0f, 3.0f, -0.25f};
  std::map<DType, std::string> bytes;
  std::vector<TensorToWrite> tensors;
  for (DType d : {DType::kF32, DType::kF16, DType::kBF16}) {
    bytes[d] = *FloatsToBytes(d, values.data(), values.size());
    tensors.push_back({std::string("t_") + DTypeName(d), d, {2, 3}, bytes[d]});
  }
  const std::string raw = "\x01\x02\x03";
  tensors.push_back({"raw_i8", DType::kI8, {3}, raw});
  const std::string path = (dir_ / "out.safetensors").string();
  ASSERT_TRUE(WriteSafetensors(path, tensors, {{"format", "pt"}}).ok());

  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->data_start() % 8, 0u);
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  ASSERT_EQ((*file)->tensors().size(), 4u);
  EXPECT_EQ((*file)->tensors()[0].name, "raw_i8");  // name order
  for (DType d : {DType::kF32, DType::kF16, DType::kBF16}) {
    const TensorInfo* t = (*file)->Find(std::string("t_") + DTypeName(d));
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->dtype, d);
    EXPECT_EQ(t->shape, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(std::string((*file)->Bytes(*t)), bytes[d]);
    EXPECT_EQ(*(*file)->ReadAsFloat(*t), values);
  }
  const TensorInfo* r = (*file)->Find("raw_i8");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(std::string((*file)->Bytes(*r)), raw);
  EXPECT_EQ((*file)->ReadAsFloat(*r).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*file)->Find("missing"), nullptr);
}

TEST_F(SafetensorsTest, FileShorterThanHeaderLength) {
  const std::string path = (dir_ / "short.safetensors").string();
  std::ofstream(path, std::ios::binary) << "abc";
  absl::Status st = OpenStatus(path);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("short.safetensors"));
  EXPECT_THAT(st.message(), HasSubstr("8-byte header length"));
}

TEST_F(SafetensorsTest, HeaderLengthBeyondFile) {
  absl::Status st = OpenStatus(WriteRaw("{}", "", /*header_len=*/1000));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("m.safetensors"));
  EXPECT_THAT(st.message(), HasSubstr("header length 1000 at byte offset 0"));
}

TEST_F(SafetensorsTest, HeaderLengthOverLimitInSparseFile) {
  const std::string path = (dir_ / "huge.safetensors").string();
  const uint64_t len = kMaxSafetensorsHeaderBytes + 8;
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((len >> (8 * i)) & 0xff);
  std::ofstream(path, std::ios::binary) << bytes;
  fs::resize_file(path, len + 64);  // sparse: costs no disk
  absl::Status st = OpenStatus(path);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("exceeds the limit"));
}

TEST_F(SafetensorsTest, TruncatedHeaderJson) {
  absl::Status st = OpenStatus(WriteRaw(R"({"a": {"dtype": "F3)", ""));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("header JSON (bytes 8..27)"));
}

TEST_F(SafetensorsTest, OffsetsBeyondFile) {
  absl::Status st =
      OpenStatus(WriteRaw(R"({"w": {"dtype": "F32", "shape": [100], "data_offsets": [0, 400]}})",
                          std::string(16, 'x')));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("tensor \"w\""));
  EXPECT_THAT(st.message(), HasSubstr("data_offsets [0, 400)"));
  EXPECT_THAT(st.message(), HasSubstr("byte offset"));
  EXPECT_THAT(st.message(), HasSubstr("beyond the data section"));
}

TEST_F(SafetensorsTest, OverlappingTensors) {
  absl::Status st =
      OpenStatus(WriteRaw(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},)"
                          R"( "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}})",
                          std::string(24, 'x')));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("tensor \"b\""));
  EXPECT_THAT(st.message(), HasSubstr("overlaps tensor \"a\""));
  EXPECT_THAT(st.message(), HasSubstr("byte offset"));
}

TEST_F(SafetensorsTest, SizeDoesNotMatchDtypeAndShape) {
  absl::Status st = OpenStatus(WriteRaw(
      R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", std::string(8, 'x')));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("tensor \"w\""));
  EXPECT_THAT(st.message(), HasSubstr("holds 8 bytes but 3 elements of F32 need 12"));
}

TEST_F(SafetensorsTest, ShapeNumelOverflow) {
  absl::Status st = OpenStatus(WriteRaw(
      R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296, 16], "data_offsets": [0, 0]}})",
      ""));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("overflows"));
}

TEST_F(SafetensorsTest, RejectsBadEntries) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"w": {"dtype": "Q4", "shape": [1], "data_offsets": [0, 4]}})", "unknown dtype \"Q4\""},
      {R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", "shape entry -1"},
      {R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}})", "begin is after end"},
      {R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0]}})", "data_offsets"},
      {R"({"w": [1, 2]})", "not a JSON object"},
      {R"({"__metadata__": {"k": 1}})", "__metadata__"},
      {R"([1, 2])", "header JSON is not an object"},
  };
  for (const auto& [header, expected] : cases) {
    absl::Status st = OpenStatus(WriteRaw(header, std::string(8, 'x')));
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << header;
    EXPECT_THAT(st.message(), HasSubstr(expected)) << header;
  }
}

// Random header corruption and truncation: every outcome is OK or
// INVALID_ARGUMENT, and an accepted file's tensors are readable.
TEST_F(SafetensorsTest, CorruptedFilesNeverCrash) {
  const std::vector<float> v(16, 1.5f);
  const std::string f32 = *FloatsToBytes(DType::kF32, v.data(), v.size());
  const std::string bf16 = *FloatsToBytes(DType::kBF16, v.data(), v.size());
  const std::string path = (dir_ / "good.safetensors").string();
  ASSERT_TRUE(WriteSafetensors(path,
                               {{"a", DType::kF32, {4, 4}, f32}, {"b", DType::kBF16, {16}, bf16}},
                               {{"k", "v"}})
                  .ok());
  std::ifstream in(path, std::ios::binary);
  const std::string good((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::mt19937 rng(42);
  const char kJsonChars[] = "0123456789[]{},:";
  int accepted = 0;
  for (int iter = 0; iter < 300; ++iter) {
    std::string bytes = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < flips; ++i) {
      const size_t pos = rng() % std::min<size_t>(bytes.size(), 160);  // mostly the header
      bytes[pos] = rng() % 2 ? static_cast<char>(rng() % 256) : kJsonChars[rng() % 16];
    }
    if (rng() % 4 == 0) bytes.resize(rng() % bytes.size());
    const std::string p = (dir_ / "fuzz.safetensors").string();
    std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(p);
    if (!file.ok()) {
      ASSERT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument) << file.status();
      continue;
    }
    ++accepted;
    for (const TensorInfo& t : (*file)->tensors()) {
      ASSERT_LE((*file)->data_start() + t.end, bytes.size());
      if (IsConvertibleFloat(t.dtype)) {
        ASSERT_TRUE((*file)->ReadAsFloat(t).ok());
      }
    }
  }
  EXPECT_LT(accepted, 300);  // the corruption did bite
}

TEST_F(SafetensorsTest, MissingFileIsNotFound) {
  EXPECT_EQ(OpenStatus((dir_ / "nope.safetensors").string()).code(), absl::StatusCode::kNotFound);
}

TEST_F(SafetensorsTest, WriterRejectsWrongByteCount) {
  const std::string four(4, '\0');
  absl::Status st =
      WriteSafetensors((dir_ / "x.safetensors").string(), {{"w", DType::kF32, {2}, four}}, {});
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(dir_ / "x.safetensors"));
}

}  // namespace
}  // namespace compressd::engine
