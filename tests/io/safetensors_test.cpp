// Safetensors round trips, on-disk layout, atomic writes, and one clear error per corrupt file.
#include "percetrain/io/safetensors.hpp"

#include "percetrain/util/error.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

namespace percetrain {
namespace {

namespace fs = std::filesystem;

// Runs `statement` expecting a percetrain::Error whose message contains `phrase`.
#define EXPECT_ERROR_WITH(statement, phrase)                               \
  do {                                                                     \
    EXPECT_THROW(statement, ::percetrain::Error);                          \
    try {                                                                  \
      statement;                                                           \
    } catch (const ::percetrain::Error& error) {                           \
      EXPECT_NE(std::string(error.what()).find(phrase), std::string::npos) \
          << "expected \"" << (phrase) << "\" in: " << error.what();       \
    }                                                                      \
  } while (0)

std::string little_endian_u64(uint64_t value) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((value >> (8 * i)) & 0xff);
  return out;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

// Bit patterns, not values: NaN payloads and negative zeros must survive a round trip too.
at::Tensor random_bits(at::IntArrayRef shape, c10::ScalarType type, std::mt19937* rng) {
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(type));
  auto* bytes = static_cast<uint8_t*>(t.data_ptr());
  const size_t count = static_cast<size_t>(t.numel()) * t.element_size();
  for (size_t i = 0; i < count; ++i)
    bytes[i] = static_cast<uint8_t>(type == c10::ScalarType::Bool ? (*rng)() % 2 : (*rng)() % 256);
  return t;
}

bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const size_t count = static_cast<size_t>(a.numel()) * a.element_size();
  return count == 0 || std::memcmp(a.data_ptr(), b.data_ptr(), count) == 0;
}

class SafetensorsTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::path(testing::TempDir()) / "safetensors_test_XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  // A file laid out by hand: length, header exactly as given (no padding), data.
  std::string write_raw(const std::string& header, const std::string& data = "") const {
    const std::string file = path("raw.safetensors");
    write_bytes(file, little_endian_u64(header.size()) + header + data);
    return file;
  }

  std::vector<std::string> leftover_temporaries() const {
    std::vector<std::string> found;
    for (const auto& item : fs::directory_iterator(dir_))
      if (item.path().filename().string().find(".tmp.") != std::string::npos)
        found.push_back(item.path().string());
    return found;
  }

  std::string dir_;
};

const c10::ScalarType kAllTypes[] = {c10::ScalarType::Double, c10::ScalarType::Float,
                                     c10::ScalarType::Half,   c10::ScalarType::BFloat16,
                                     c10::ScalarType::Long,   c10::ScalarType::Int,
                                     c10::ScalarType::Short,  c10::ScalarType::Char,
                                     c10::ScalarType::Byte,   c10::ScalarType::Bool};

TEST_F(SafetensorsTest, RoundTripsEveryDtypeBitwise) {
  std::mt19937 rng(1234);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (c10::ScalarType type : kAllTypes) {
    const std::string dtype = safetensors_dtype_name(type);
    // Mixed element sizes one after another leave most tensors at unaligned offsets.
    tensors.emplace_back(dtype + ".matrix", random_bits({3, 5}, type, &rng));
    tensors.emplace_back(dtype + ".scalar", random_bits({}, type, &rng));
    tensors.emplace_back(dtype + ".empty", random_bits({0, 4}, type, &rng));
  }
  const std::string file = path("all.safetensors");
  write_safetensors(file, tensors);

  std::vector<at::Tensor> loaded;
  {
    SafetensorsFile reader(file);
    ASSERT_EQ(reader.entries().size(), tensors.size());
    for (const auto& [name, tensor] : tensors) {
      const TensorEntry* entry = reader.find(name);
      ASSERT_NE(entry, nullptr) << name;
      EXPECT_EQ(entry->dtype, safetensors_dtype_name(tensor.scalar_type()));
      EXPECT_EQ(entry->shape, tensor.sizes().vec());
      loaded.push_back(reader.load(name));
    }
  }  // the mapping is gone: loaded tensors must own their bytes
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_TRUE(loaded[i].device().is_cpu());
    EXPECT_TRUE(same_bits(loaded[i], tensors[i].second)) << tensors[i].first;
  }
}

// The LibTorch-free header parser (safetensors_header.cpp) sizes dtypes with its own table.
TEST(SafetensorsHeader, ElementSizesAgreeWithTorch) {
  for (c10::ScalarType type : kAllTypes)
    EXPECT_EQ(safetensors_element_size(safetensors_dtype_name(type)), c10::elementSize(type)) << c10::toString(type);
  EXPECT_EQ(safetensors_element_size("F8_E4M3"), 0u);
}

TEST_F(SafetensorsTest, EntriesAreSortedByName) {
  const std::string file = path("order.safetensors");
  write_safetensors(file,
                    {{"zeta", at::zeros({1})}, {"alpha", at::zeros({1})}, {"mid", at::zeros({1})}});
  SafetensorsFile reader(file);
  std::vector<std::string> names;
  for (const auto& entry : reader.entries()) names.push_back(entry.name);
  EXPECT_EQ(names, (std::vector<std::string>{"alpha", "mid", "zeta"}));
}

TEST_F(SafetensorsTest, LoadConvertsToRequestedDtype) {
  const std::string file = path("convert.safetensors");
  const at::Tensor values = at::tensor({1.5, -2.25, 1024.0}, at::kDouble).to(at::kBFloat16);
  write_safetensors(file, {{"w", values}});
  SafetensorsFile reader(file);
  const at::Tensor as_float = reader.load("w", at::kFloat);
  EXPECT_EQ(as_float.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(as_float, at::tensor({1.5f, -2.25f, 1024.0f})));
  EXPECT_EQ(reader.load("w", at::kBFloat16).scalar_type(), at::kBFloat16);
}

TEST_F(SafetensorsTest, ReadsHandWrittenFileWithGapsAndUnalignedOffsets) {
  // Independent of the writer: little-endian 1.0f and -2.0f after one stray byte, then a gap.
  const std::string data = std::string("\x07", 1) +
                           std::string("\x00\x00\x80\x3f\x00\x00\x00\xc0", 8) +
                           std::string("\xAA\xAA", 2) + std::string("\x2a\x00", 2);
  const std::string header =
      R"({"b":{"dtype":"F32","shape":[2],"data_offsets":[1,9],"extra":"ignored"},)"
      R"("a":{"dtype":"I16","shape":[],"data_offsets":[11,13]},)"
      R"("__metadata__":{"format":"pt"}})";
  SafetensorsFile reader(write_raw(header, data));
  ASSERT_EQ(reader.entries().size(), 2u);
  EXPECT_EQ(reader.entries()[0].name, "a");
  EXPECT_TRUE(at::equal(reader.load("b"), at::tensor({1.0f, -2.0f})));
  EXPECT_EQ(reader.load("a").item<int16_t>(), 42);
  EXPECT_EQ(reader.load("a").dim(), 0);
  EXPECT_EQ(reader.metadata().at("format"), "pt");
}

TEST_F(SafetensorsTest, MetadataRoundTrips) {
  const std::string file = path("meta.safetensors");
  const std::map<std::string, std::string> metadata = {
      {"format", "pt"}, {"step", "120"}, {"note", "ünïcode \"quoted\""}};
  write_safetensors(file, {{"x", at::ones({2})}}, metadata);
  EXPECT_EQ(SafetensorsFile(file).metadata(), metadata);

  write_safetensors(file, {{"x", at::ones({2})}});
  EXPECT_TRUE(SafetensorsFile(file).metadata().empty());
  EXPECT_EQ(read_bytes(file).find("__metadata__"), std::string::npos);
}

TEST_F(SafetensorsTest, HeaderIsPaddedToEightBytesWithContiguousOffsetsInGivenOrder) {
  // Names of every length mod 8, so some headers need padding and some do not.
  for (size_t length = 1; length <= 8; ++length) {
    SCOPED_TRACE("name length " + std::to_string(length));
    const std::string file = path("padded.safetensors");
    const std::string first(length, 'z');
    write_safetensors(file,
                      {{first, at::ones({3}, at::kHalf)}, {"a", at::ones({2, 2}, at::kLong)}});
    const std::string bytes = read_bytes(file);
    ASSERT_GE(bytes.size(), 8u);
    uint64_t header_size = 0;
    for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | static_cast<uint8_t>(bytes[i]);
    EXPECT_EQ(header_size % 8, 0u);
    ASSERT_EQ(bytes.size(), 8 + header_size + 3 * 2 + 4 * 8);
    const std::string header = bytes.substr(8, header_size);
    const size_t json_end = header.find_last_not_of(' ') + 1;
    EXPECT_LT(header.size() - json_end, 8u);  // only padding, and no more than needed
    const auto parsed = nlohmann::ordered_json::parse(header);
    ASSERT_EQ(parsed.size(), 2u);
    EXPECT_EQ(parsed.begin().key(), first);  // given order, not sorted
    EXPECT_EQ(parsed[first]["data_offsets"], nlohmann::ordered_json::array({0, 6}));
    EXPECT_EQ(parsed["a"]["data_offsets"], nlohmann::ordered_json::array({6, 38}));
    EXPECT_EQ(parsed["a"]["dtype"], "I64");
  }
}

TEST_F(SafetensorsTest, WriteReplacesExistingFileAndLeavesNoTemporary) {
  const std::string file = path("model.safetensors");
  write_bytes(file, "an older file that is not safetensors at all");
  write_safetensors(file, {{"x", at::arange(4, at::kInt)}});
  EXPECT_TRUE(at::equal(SafetensorsFile(file).load("x"), at::arange(4, at::kInt)));
  EXPECT_TRUE(leftover_temporaries().empty());
}

TEST_F(SafetensorsTest, FailedRenameRemovesTemporary) {
  // rename() cannot put a file over a non-empty directory, so the failure comes after the
  // temporary file has been written in full.
  const std::string target = path("model.safetensors");
  fs::create_directory(target);
  write_bytes(target + "/keep", "x");
  EXPECT_ERROR_WITH(write_safetensors(target, {{"x", at::ones({2})}}), "could not rename");
  EXPECT_TRUE(leftover_temporaries().empty());
}

TEST_F(SafetensorsTest, WriteRejectsDuplicateNamesAndKeepsTheOldFile) {
  const std::string file = path("model.safetensors");
  write_safetensors(file, {{"old", at::ones({1})}});
  const std::string before = read_bytes(file);
  EXPECT_ERROR_WITH(write_safetensors(file, {{"w", at::ones({1})}, {"w", at::zeros({1})}}),
                    "duplicate tensor name 'w'");
  EXPECT_EQ(read_bytes(file), before);
  EXPECT_TRUE(leftover_temporaries().empty());
}

TEST_F(SafetensorsTest, WriteRejectsUnsupportedDtypeAndReservedName) {
  const std::string file = path("model.safetensors");
  EXPECT_ERROR_WITH(write_safetensors(file, {{"c", at::ones({1}, at::kComplexFloat)}}),
                    "'c' has dtype");
  EXPECT_ERROR_WITH(write_safetensors(file, {{"__metadata__", at::ones({1})}}), "__metadata__");
  EXPECT_FALSE(fs::exists(file));
  EXPECT_TRUE(leftover_temporaries().empty());
}

TEST_F(SafetensorsTest, DtypeNamesMapBothWays) {
  for (c10::ScalarType type : kAllTypes)
    EXPECT_EQ(scalar_type_from_safetensors(safetensors_dtype_name(type), "test"), type);
  EXPECT_EQ(safetensors_dtype_name(at::kBFloat16), "BF16");
  EXPECT_ERROR_WITH(scalar_type_from_safetensors("F8_E4M3", "test"), "unsupported dtype 'F8_E4M3'");
  EXPECT_ERROR_WITH(safetensors_dtype_name(at::kComplexDouble), "no safetensors name");
}

TEST_F(SafetensorsTest, LoadOfAbsentTensorNamesIt) {
  const std::string file = path("model.safetensors");
  write_safetensors(file, {{"present", at::ones({1})}});
  SafetensorsFile reader(file);
  EXPECT_EQ(reader.find("missing"), nullptr);
  EXPECT_ERROR_WITH(reader.load("missing"), "tensor 'missing' is absent");
}

// --- Corrupt and hostile files: each must be refused with a message naming the problem. ---

TEST_F(SafetensorsTest, MissingFile) {
  EXPECT_ERROR_WITH(SafetensorsFile{path("nope.safetensors")}, "cannot open");
}

TEST_F(SafetensorsTest, EmptyFile) {
  write_bytes(path("empty.safetensors"), "");
  EXPECT_ERROR_WITH(SafetensorsFile{path("empty.safetensors")}, "file is empty");
}

TEST_F(SafetensorsTest, FileShorterThanEightBytes) {
  write_bytes(path("short.safetensors"), std::string("\x02\x00\x00", 3));
  EXPECT_ERROR_WITH(SafetensorsFile{path("short.safetensors")},
                    "shorter than the 8-byte header length");
}

TEST_F(SafetensorsTest, HeaderLengthBeyondFile) {
  const std::string file = path("beyond.safetensors");
  write_bytes(file, little_endian_u64(1000) + "{}");
  EXPECT_ERROR_WITH(SafetensorsFile{file}, "goes beyond the end of the file");
  write_bytes(file, little_endian_u64(~0ull) + "{}");  // would wrap around if added to a pointer
  EXPECT_ERROR_WITH(SafetensorsFile{file}, "header length");
}

TEST_F(SafetensorsTest, HeaderLengthOverLimit) {
  const std::string file = path("huge.safetensors");
  write_bytes(file, little_endian_u64(100'000'001) + "{}");
  EXPECT_ERROR_WITH(SafetensorsFile{file}, "exceeds the limit");
}

TEST_F(SafetensorsTest, HeaderLengthZero) {
  EXPECT_ERROR_WITH(SafetensorsFile{write_raw("", "data")}, "header length is 0");
}

TEST_F(SafetensorsTest, HeaderNotJson) {
  EXPECT_ERROR_WITH(SafetensorsFile{write_raw("{not json")}, "not valid JSON");
  EXPECT_ERROR_WITH(SafetensorsFile{write_raw("{} trailing")}, "not valid JSON");
  EXPECT_ERROR_WITH(SafetensorsFile{write_raw("{\"\xff\xfe\":1}")}, "not valid JSON");  // bad UTF-8
}

TEST_F(SafetensorsTest, HeaderNotAnObject) {
  EXPECT_ERROR_WITH(SafetensorsFile{write_raw("[1, 2]")}, "not a JSON object");
  EXPECT_ERROR_WITH(SafetensorsFile{write_raw(R"({"x": [1, 2]})")}, "'x' is not a JSON object");
}

TEST_F(SafetensorsTest, HeaderNestedTooDeepOrWithDuplicateKeys) {
  EXPECT_ERROR_WITH(SafetensorsFile{write_raw(R"({"x":{"shape":[[[1]]]}})")}, "nested");
  EXPECT_ERROR_WITH(SafetensorsFile{write_raw(std::string(5000, '[') + std::string(5000, ']'))},
                    "nested");
  const std::string twice = R"({"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                            R"("x":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})";
  EXPECT_ERROR_WITH(SafetensorsFile{write_raw(twice, "ab")}, "key 'x' twice");
}

TEST_F(SafetensorsTest, EntryMissingDtype) {
  EXPECT_ERROR_WITH(
      SafetensorsFile{write_raw(R"({"x":{"shape":[1],"data_offsets":[0,4]}})", "abcd")},
      "tensor 'x' has no string \"dtype\"");
  EXPECT_ERROR_WITH(
      SafetensorsFile{write_raw(R"({"x":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", "abcd")},
      "\"dtype\"");
}

TEST_F(SafetensorsTest, UnknownDtype) {
  EXPECT_ERROR_WITH(SafetensorsFile{write_raw(
                        R"({"x":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}})", "abcd")},
                    "unsupported dtype 'F8_E4M3'");
}

TEST_F(SafetensorsTest, NegativeShape) {
  EXPECT_ERROR_WITH(
      SafetensorsFile{write_raw(R"({"x":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}})")},
      "non-negative integers");
}

TEST_F(SafetensorsTest, NonIntegerShape) {
  for (const std::string dim :
       {"1.5", "\"4\"", "null", "18446744073709551616", "1e30", "9223372036854775808"}) {
    SCOPED_TRACE(dim);
    EXPECT_ERROR_WITH(
        SafetensorsFile{write_raw(
            R"({"x":{"dtype":"U8","shape":[)" + dim + R"(],"data_offsets":[0,4]}})", "abcd")},
        "non-negative integers");
  }
  EXPECT_ERROR_WITH(
      SafetensorsFile{write_raw(R"({"x":{"dtype":"U8","shape":4,"data_offsets":[0,4]}})", "abcd")},
      "no \"shape\" array");
}

TEST_F(SafetensorsTest, ShapeWhoseByteCountOverflows) {
  // 2^32 * 2^32 * 4 bytes wraps to 0 in 64 bits, which would match empty offsets.
  EXPECT_ERROR_WITH(
      SafetensorsFile{write_raw(
          R"({"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})")},
      "overflows");
}

TEST_F(SafetensorsTest, MalformedOffsets) {
  for (const std::string offsets :
       {"[0]", "[0,4,8]", "[-1,3]", "[0,4.0]", "\"0-4\"", "[0,18446744073709551616]"}) {
    SCOPED_TRACE(offsets);
    EXPECT_ERROR_WITH(
        SafetensorsFile{write_raw(
            R"({"x":{"dtype":"U8","shape":[4],"data_offsets":)" + offsets + "}}", "abcd")},
        "two non-negative integers");
  }
  EXPECT_ERROR_WITH(SafetensorsFile{write_raw(
                        R"({"x":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}})", "abcd")},
                    "begin after they end");
}

TEST_F(SafetensorsTest, OffsetsOutOfRange) {
  const std::string data(64, '\0');
  EXPECT_ERROR_WITH(SafetensorsFile{write_raw(
                        R"({"x":{"dtype":"F32","shape":[25],"data_offsets":[0,100]}})", data)},
                    "tensor 'x' has data_offsets [0, 100) but the data section holds 64 bytes");
  // An empty tensor placed past the end is still out of range.
  EXPECT_ERROR_WITH(SafetensorsFile{write_raw(
                        R"({"x":{"dtype":"F32","shape":[0],"data_offsets":[65,65]}})", data)},
                    "data section holds 64 bytes");
}

TEST_F(SafetensorsTest, OverlappingTensors) {
  const std::string header = R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                             R"("b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})";
  EXPECT_ERROR_WITH(SafetensorsFile{write_raw(header, std::string(24, '\0'))},
                    "'a' and 'b' overlap");
  // Same range twice, and a range nested inside another.
  const std::string same = R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                           R"("b":{"dtype":"I32","shape":[],"data_offsets":[0,4]}})";
  EXPECT_ERROR_WITH(SafetensorsFile{write_raw(same, "abcd")}, "overlap");
  const std::string nested = R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]},)"
                             R"("c":{"dtype":"U8","shape":[0],"data_offsets":[3,3]}})";
  EXPECT_ERROR_WITH(SafetensorsFile{write_raw(nested, "abcdefgh")}, "'a' and 'b' overlap");
}

TEST_F(SafetensorsTest, ShapeByteCountMismatch) {
  EXPECT_ERROR_WITH(
      SafetensorsFile{write_raw(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})",
                                std::string(16, '\0'))},
      "which needs 12 bytes, but its data_offsets [0, 16) span 16");
}

TEST_F(SafetensorsTest, TruncatedData) {
  const std::string file = path("cut.safetensors");
  write_safetensors(file, {{"first", at::ones({8})}, {"second", at::ones({8})}});
  fs::resize_file(file, fs::file_size(file) - 4);
  EXPECT_ERROR_WITH(
      SafetensorsFile{file},
      "tensor 'second' has data_offsets [32, 64) but the data section holds 60 bytes");
}

TEST_F(SafetensorsTest, MetadataMustMapStringsToStrings) {
  EXPECT_ERROR_WITH(SafetensorsFile{write_raw(R"({"__metadata__":{"step":12}})")},
                    "'step' is not a string");
  EXPECT_ERROR_WITH(SafetensorsFile{write_raw(R"({"__metadata__":"pt"})")},
                    "__metadata__ is not a JSON object");
}

TEST_F(SafetensorsTest, BoolTensorHoldingOtherBytes) {
  SafetensorsFile reader(write_raw(R"({"mask":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}})",
                                   std::string("\x01\x02\x00", 3)));
  EXPECT_ERROR_WITH(reader.load("mask"), "other than 0 or 1");
}

}  // namespace
}  // namespace percetrain
