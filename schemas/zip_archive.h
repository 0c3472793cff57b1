// Zip archives of stored (uncompressed) records, as PyTorch writes them
// (torch.save, torch.jit.save, torch.export.save): read by name, and written
// with each record's data aligned to 64 bytes. Zip64 is read and written where
// sizes or offsets need it. No torch, no zlib.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace ppc::zip {

/// CRC-32 (IEEE 802.3), as zip records it; `crc` continues an earlier value.
uint32_t crc32(const void* data, size_t size, uint32_t crc = 0);

struct Entry {
  std::string name;
  uint64_t size = 0;         ///< uncompressed
  uint64_t stored_size = 0;  ///< as stored (== size for stored records)
  uint16_t method = 0;       ///< 0 = stored
  uint32_t crc = 0;
  uint64_t header_offset = 0;
};

/// Reads a zip file's central directory; records are read on demand. Every
/// problem is a ppc::Error naming the file (and the record).
class Reader {
 public:
  explicit Reader(std::string path);
  const std::string& path() const { return path_; }
  const std::vector<Entry>& entries() const { return entries_; }
  /// The entry named `name`, or nullptr.
  const Entry* find(const std::string& name) const;
  /// The bytes of a stored record (throws for compressed ones, for a record
  /// that runs past the end of the file, and for a CRC mismatch).
  std::string read(const Entry& e) const;
  std::string read(const std::string& name) const;

 private:
  uint64_t data_offset(const Entry& e) const;
  std::string path_;
  mutable std::ifstream in_;
  uint64_t file_size_ = 0;
  std::vector<Entry> entries_;
};

/// Builds a zip in memory: records in the order added, data aligned to 64
/// bytes (PyTorch maps weights in place), no timestamps (the bytes depend on
/// the records only).
class Writer {
 public:
  void add(const std::string& name, const std::string& data);
  /// The finished archive (central directory appended); the writer is spent.
  std::string finish();

 private:
  std::string out_;
  std::vector<Entry> entries_;
  bool finished_ = false;
};

}  // namespace ppc::zip
