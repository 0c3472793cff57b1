#include "schemas/error.h"
#include "schemas/sha256.h"

#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>
#include <unistd.h>

#include <gtest/gtest.h>

namespace ppc {
namespace {

// Published test vectors (FIPS 180-4 examples / NIST CAVS).
const char kEmpty[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const char kAbc[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const char k448[] = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
const char k896[] = "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1";
const char kMillionA[] = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
const char kFox[] = "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592";

const char k448Msg[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
const char k896Msg[] =
    "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";

TEST(Sha256, StandardVectors) {
  EXPECT_EQ(sha256_hex(""), kEmpty);
  EXPECT_EQ(sha256_hex("abc"), kAbc);
  EXPECT_EQ(sha256_hex(k448Msg), k448);
  EXPECT_EQ(sha256_hex(k896Msg), k896);
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')), kMillionA);
  EXPECT_EQ(sha256_hex("The quick brown fox jumps over the lazy dog"), kFox);
}

TEST(Sha256, BinaryData) {
  // Embedded NULs are hashed, not treated as terminators.
  EXPECT_NE(sha256_hex(std::string("a\0b", 3)), sha256_hex("a"));
  EXPECT_EQ(sha256_hex(std::string(1, '\0')), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
}

TEST(Sha256, IncrementalMatchesOneShotAtEveryBoundary) {
  // Lengths around the 55/56/64-byte padding boundaries and across blocks,
  // fed in pieces of every size, must agree with the one-shot hash.
  std::string msg;
  for (int i = 0; i < 200; ++i) msg += static_cast<char>('A' + i % 53);
  for (std::size_t len : {0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 199}) {
    const std::string m = msg.substr(0, len);
    const std::string expected = sha256_hex(m);
    for (std::size_t piece = 1; piece <= 70; piece += 3) {
      Sha256 h;
      for (std::size_t i = 0; i < m.size(); i += piece) { h.update(m.data() + i, std::min(piece, m.size() - i)); }
      EXPECT_EQ(Sha256::to_hex(h.finish()), expected) << "len " << len << " piece " << piece;
    }
  }
}

TEST(Sha256, MillionAInChunks) {
  Sha256 h;
  const std::string chunk(1000, 'a');
  for (int i = 0; i < 1000; ++i) h.update(chunk.data(), chunk.size());
  EXPECT_EQ(Sha256::to_hex(h.finish()), kMillionA);
}

TEST(Sha256, FinishResets) {
  Sha256 h;
  h.update("garbage", 7);
  h.finish();
  h.update("abc", 3);
  EXPECT_EQ(Sha256::to_hex(h.finish()), kAbc);
  EXPECT_EQ(Sha256::to_hex(h.finish()), kEmpty);
  h.update(nullptr, 0);
  EXPECT_EQ(Sha256::to_hex(h.finish()), kEmpty);
}

TEST(Sha256, DigestBytes) {
  Sha256 h;
  h.update(std::string_view("abc"));
  auto d = h.finish();
  EXPECT_EQ(d[0], 0xba);
  EXPECT_EQ(d[31], 0xad);
}

std::string run_sha256sum(const std::string& path) {
  std::string cmd = "sha256sum '" + path + "' 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return "";
  char buf[128] = {};
  std::string out;
  if (fgets(buf, sizeof buf, p)) out = buf;
  pclose(p);
  return out.size() >= 64 ? out.substr(0, 64) : "";
}

TEST(Sha256, FileMatchesSha256sum) {
  char path[] = "/tmp/ppc_sha256_XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  std::string content;
  for (int i = 0; i < 300000; ++i) content += static_cast<char>((i * 131 + i / 7) & 0xFF);
  {
    std::ofstream out(path, std::ios::binary);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
  }
  const std::string ours = sha256_file_hex(path);
  EXPECT_EQ(ours, sha256_hex(content));
  const std::string theirs = run_sha256sum(path);
  if (theirs.empty()) {
    std::remove(path);
    GTEST_SKIP() << "sha256sum not available";
  }
  EXPECT_EQ(ours, theirs);
  std::remove(path);
}

// The CPU's SHA instructions (where it has them) and the portable code give
// the same digests: the published vectors, and data of every length up to a
// few blocks fed in pieces that split blocks anywhere.
TEST(Sha256, HardwareAndPortableAgree) {
  std::string data;
  for (int i = 0; i < 700; ++i) data += static_cast<char>((i * 131 + 7) % 256);
  auto digests = [&] {
    std::vector<std::string> out = {sha256_hex(""), sha256_hex("abc"), sha256_hex(k448Msg), sha256_hex(k896Msg),
                                    sha256_hex(std::string(1000000, 'a'))};
    for (std::size_t len = 0; len <= data.size(); len += 13) {
      Sha256 h;
      for (std::size_t i = 0; i < len; i += 97) h.update(data.data() + i, std::min<std::size_t>(97, len - i));
      out.push_back(Sha256::to_hex(h.finish()));
    }
    return out;
  };
  const bool was = Sha256::use_hardware(false);
  const std::vector<std::string> portable = digests();
  Sha256::use_hardware(true);
  const std::vector<std::string> hardware = digests();
  Sha256::use_hardware(was);
  EXPECT_EQ(portable[0], kEmpty);
  EXPECT_EQ(portable[1], kAbc);
  EXPECT_EQ(portable[4], kMillionA);
  EXPECT_EQ(hardware, portable);
}

TEST(Sha256, EmptyFile) {
  char path[] = "/tmp/ppc_sha256_XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  EXPECT_EQ(sha256_file_hex(path), kEmpty);
  std::remove(path);
}

TEST(Sha256, FileErrors) {
  try {
    sha256_file_hex("/nonexistent/weights.bin");
    ADD_FAILURE() << "expected error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "cannot read /nonexistent/weights.bin: No such file or directory");
  }
  try {
    sha256_file_hex("/tmp");
    ADD_FAILURE() << "expected error";
  } catch (const Error& e) { EXPECT_EQ(std::string(e.what()), "cannot read /tmp: Is a directory"); }
}

}  // namespace
}  // namespace ppc
