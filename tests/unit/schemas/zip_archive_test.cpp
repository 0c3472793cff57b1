#include "schemas/zip_archive.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "schemas/error.h"

namespace ppc::zip {
namespace {

std::string temp_file(const std::string& name, const std::string& bytes) {
  const auto path = std::filesystem::temp_directory_path() / ("ppc_zip_test_" + name);
  std::ofstream(path, std::ios::binary) << bytes;
  return path.string();
}

std::string error_of(const std::string& path, const std::string& record) {
  try {
    Reader r(path);
    r.read(record);
  } catch (const Error& e) { return e.what(); }
  return "";
}

TEST(Zip, Crc32CheckValue) {
  // The CRC-32 check value of the ASCII digits 1..9 (IEEE 802.3).
  EXPECT_EQ(crc32("123456789", 9), 0xCBF43926u);
  EXPECT_EQ(crc32("", 0), 0u);
  EXPECT_EQ(crc32("56789", 5, crc32("1234", 4)), 0xCBF43926u);
}

TEST(Zip, RoundTripAlignsData) {
  Writer w;
  w.add("top/a.txt", "hello");
  w.add("top/data/weight_0", std::string(1000, 'x'));
  w.add("top/empty", "");
  const std::string bytes = w.finish();
  const std::string path = temp_file("roundtrip.zip", bytes);
  Reader r(path);
  ASSERT_EQ(r.entries().size(), 3u);
  EXPECT_EQ(r.entries()[0].name, "top/a.txt");
  EXPECT_EQ(r.read("top/a.txt"), "hello");
  EXPECT_EQ(r.read("top/data/weight_0"), std::string(1000, 'x'));
  EXPECT_EQ(r.read("top/empty"), "");
  EXPECT_EQ(r.find("nope"), nullptr);
  // Each record's data starts on a 64-byte boundary of the file.
  const size_t at = bytes.find(std::string(1000, 'x'));
  ASSERT_NE(at, std::string::npos);
  EXPECT_EQ(at % 64, 0u);
  EXPECT_EQ(bytes.find("hello") % 64, 0u);
  std::filesystem::remove(path);
}

TEST(Zip, BadArchivesAreUserErrors) {
  Writer w;
  w.add("m/payload", std::string(300, 'p'));
  const std::string good = w.finish();

  const std::string not_zip = temp_file("notzip", std::string(100, 'a'));
  EXPECT_NE(error_of(not_zip, "m/payload").find("not a zip archive"), std::string::npos);

  // Cut inside the payload: the central directory is gone.
  const std::string cut = temp_file("cut", good.substr(0, 200));
  EXPECT_NE(error_of(cut, "m/payload").find("not a zip archive"), std::string::npos);

  std::string flipped = good;
  flipped[good.find("pppp") + 10] = 'q';
  const std::string corrupt = temp_file("corrupt", flipped);
  EXPECT_NE(error_of(corrupt, "m/payload").find("CRC mismatch"), std::string::npos);

  EXPECT_NE(error_of(temp_file("good", good), "m/other").find("no record 'm/other'"), std::string::npos);

  // A deflated record (method 8 in the central directory) is refused by name.
  std::string deflated = good;
  const size_t central = deflated.find(std::string("PK\x01\x02", 4));
  deflated[central + 10] = 8;
  EXPECT_NE(error_of(temp_file("deflated", deflated), "m/payload").find("is compressed (method 8)"), std::string::npos);
}

}  // namespace
}  // namespace ppc::zip
