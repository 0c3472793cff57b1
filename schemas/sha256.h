// SHA-256 (FIPS 180-4), implemented here so that content hashing needs no
// crypto library dependency.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ppc {

/// Incremental SHA-256. Call update() any number of times, then finish() once;
/// after finish() the object is reset and may hash a new message.
class Sha256 {
 public:
  Sha256();

  /// Appends `size` bytes at `data` to the message. `data` may be null only
  /// when `size` is 0.
  void update(const void* data, std::size_t size);
  void update(std::string_view data) { update(data.data(), data.size()); }

  /// Returns the 32-byte digest of everything passed to update() and resets.
  std::array<std::uint8_t, 32> finish();

  /// Lowercase hexadecimal form of a digest (64 characters).
  static std::string to_hex(const std::array<std::uint8_t, 32>& digest);

  /// Whether blocks are hashed with the CPU's SHA instructions (x86 SHA
  /// extensions, used where the CPU has them; the digests are the same).
  /// `use_hardware(false)` selects the portable code (tests compare both);
  /// returns the previous setting. Not for use while other threads hash.
  static bool use_hardware(bool on);

 private:
  void reset();
  void compress(const std::uint8_t* block);
  void compress_blocks(const std::uint8_t* blocks, std::size_t count);  ///< `count` 64-byte blocks

  std::array<std::uint32_t, 8> state_;
  std::array<std::uint8_t, 64> buffer_;
  std::size_t buffered_ = 0;  // bytes in buffer_
  std::uint64_t total_ = 0;   // message length in bytes
};

/// Lowercase hex SHA-256 of `data`.
std::string sha256_hex(std::string_view data);

/// Lowercase hex SHA-256 of the file's contents. Throws ppc::Error "cannot
/// read <path>: <strerror>" if the file cannot be opened or read: the paths
/// hashed are the user's (a model, an artifact named by a manifest).
std::string sha256_file_hex(const std::string& path);

}  // namespace ppc
