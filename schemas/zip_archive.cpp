#include "schemas/zip_archive.h"

#include <array>
#include <cstring>

#include "schemas/error.h"

namespace ppc::zip {

namespace {

constexpr uint32_t kLocal = 0x04034b50, kCentral = 0x02014b50, kEnd = 0x06054b50;
constexpr uint32_t kEnd64 = 0x06064b50, kLocator64 = 0x07064b50;
constexpr uint64_t kMax32 = 0xffffffffu;
constexpr size_t kAlign = 64;

std::array<uint32_t, 256> make_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
    t[i] = c;
  }
  return t;
}

uint64_t get(const std::string& b, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[at + static_cast<size_t>(i)]);
  return v;
}

void put(std::string& b, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) b.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

}  // namespace

uint32_t crc32(const void* data, size_t size, uint32_t crc) {
  static const std::array<uint32_t, 256> table = make_table();
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

// --- Reader ------------------------------------------------------------------

namespace {

std::string read_at(std::ifstream& in, uint64_t offset, uint64_t size, const std::string& path) {
  std::string buf(size, '\0');
  in.clear();
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(buf.data(), static_cast<std::streamsize>(size));
  if (!in)
    throw Error(path + ": truncated zip archive (cannot read " + std::to_string(size) + " bytes at offset " +
                std::to_string(offset) + ")");
  return buf;
}

// Zip64 sizes and offset from a central entry's extra field, in the order the
// format gives them (only the fields whose 32-bit value is saturated).
void apply_zip64(const std::string& extra, Entry& e, bool size_sat, bool stored_sat, bool offset_sat) {
  size_t at = 0;
  while (at + 4 <= extra.size()) {
    const uint64_t id = get(extra, at, 2), len = get(extra, at + 2, 2);
    if (at + 4 + len > extra.size()) return;
    if (id == 1) {
      size_t f = at + 4;
      auto next = [&](uint64_t& out) {
        if (f + 8 <= at + 4 + len) out = get(extra, f, 8), f += 8;
      };
      if (size_sat) next(e.size);
      if (stored_sat) next(e.stored_size);
      if (offset_sat) next(e.header_offset);
      return;
    }
    at += 4 + len;
  }
}

}  // namespace

Reader::Reader(std::string path) : path_(std::move(path)), in_(path_, std::ios::binary) {
  if (!in_) throw Error(path_ + ": cannot open");
  in_.seekg(0, std::ios::end);
  file_size_ = static_cast<uint64_t>(in_.tellg());
  if (file_size_ < 22) throw Error(path_ + ": not a zip archive (too short)");
  const uint64_t tail_size = std::min<uint64_t>(file_size_, 22 + 65535 + 20);
  const std::string tail = read_at(in_, file_size_ - tail_size, tail_size, path_);
  size_t end = std::string::npos;
  for (size_t i = tail.size() - 22 + 1; i-- > 0;)
    if (get(tail, i, 4) == kEnd) {
      end = i;
      break;
    }
  if (end == std::string::npos) throw Error(path_ + ": not a zip archive (no end of central directory)");
  uint64_t count = get(tail, end + 10, 2), cd_size = get(tail, end + 12, 4), cd_offset = get(tail, end + 16, 4);
  if (end >= 20 && get(tail, end - 20, 4) == kLocator64) {
    const uint64_t at = get(tail, end - 20 + 8, 8);
    const std::string e64 = read_at(in_, at, 56, path_);
    if (get(e64, 0, 4) != kEnd64) throw Error(path_ + ": corrupt zip64 end of central directory");
    count = get(e64, 32, 8), cd_size = get(e64, 40, 8), cd_offset = get(e64, 48, 8);
  }
  if (cd_offset > file_size_ || cd_size > file_size_ - cd_offset)
    throw Error(path_ + ": truncated zip archive (the central directory lies past the end of the file)");
  const std::string cd = read_at(in_, cd_offset, cd_size, path_);
  size_t at = 0;
  for (uint64_t k = 0; k < count; ++k) {
    if (at + 46 > cd.size() || get(cd, at, 4) != kCentral)
      throw Error(path_ + ": corrupt zip central directory (entry " + std::to_string(k) + ")");
    Entry e;
    e.method = static_cast<uint16_t>(get(cd, at + 10, 2));
    e.crc = static_cast<uint32_t>(get(cd, at + 16, 4));
    e.stored_size = get(cd, at + 20, 4);
    e.size = get(cd, at + 24, 4);
    const size_t name_len = get(cd, at + 28, 2), extra_len = get(cd, at + 30, 2), comment_len = get(cd, at + 32, 2);
    e.header_offset = get(cd, at + 42, 4);
    if (at + 46 + name_len + extra_len + comment_len > cd.size())
      throw Error(path_ + ": corrupt zip central directory (entry " + std::to_string(k) + ")");
    e.name = cd.substr(at + 46, name_len);
    apply_zip64(cd.substr(at + 46 + name_len, extra_len), e, e.size == kMax32, e.stored_size == kMax32,
                e.header_offset == kMax32);
    entries_.push_back(std::move(e));
    at += 46 + name_len + extra_len + comment_len;
  }
}

const Entry* Reader::find(const std::string& name) const {
  for (const Entry& e : entries_)
    if (e.name == name) return &e;
  return nullptr;
}

uint64_t Reader::data_offset(const Entry& e) const {
  if (e.header_offset > file_size_ || file_size_ - e.header_offset < 30)
    throw Error(path_ + ": truncated zip archive (record '" + e.name + "')");
  const std::string h = read_at(in_, e.header_offset, 30, path_);
  if (get(h, 0, 4) != kLocal) throw Error(path_ + ": corrupt zip archive (record '" + e.name + "' has no header)");
  return e.header_offset + 30 + get(h, 26, 2) + get(h, 28, 2);
}

std::string Reader::read(const Entry& e) const {
  if (e.method != 0)
    throw Error(path_ + ": record '" + e.name + "' is compressed (method " + std::to_string(e.method) +
                "); only stored records are read, as PyTorch writes them");
  const uint64_t at = data_offset(e);
  if (at > file_size_ || e.size > file_size_ - at)
    throw Error(path_ + ": truncated zip archive (record '" + e.name + "' runs past the end of the file)");
  std::string data = read_at(in_, at, e.size, path_);
  if (crc32(data.data(), data.size()) != e.crc)
    throw Error(path_ + ": record '" + e.name + "' is corrupt (CRC mismatch)");
  return data;
}

std::string Reader::read(const std::string& name) const {
  const Entry* e = find(name);
  if (!e) throw Error(path_ + ": the archive has no record '" + name + "'");
  return read(*e);
}

// --- Writer ------------------------------------------------------------------

void Writer::add(const std::string& name, const std::string& data) {
  if (finished_) throw std::logic_error("zip::Writer::add after finish");
  Entry e;
  e.name = name;
  e.size = e.stored_size = data.size();
  e.crc = crc32(data.data(), data.size());
  e.header_offset = out_.size();
  const bool z64 = data.size() >= kMax32 || out_.size() >= kMax32;
  // Local header: zip64 sizes when needed, then padding so the data starts on
  // a 64-byte boundary (an extra field of id "FB", as PyTorch's writer does).
  std::string extra;
  if (z64) { put(extra, 1, 2), put(extra, 16, 2), put(extra, e.size, 8), put(extra, e.size, 8); }
  const size_t before = out_.size() + 30 + name.size() + extra.size() + 4;
  const size_t pad = (kAlign - before % kAlign) % kAlign;
  put(extra, 0x4246, 2), put(extra, pad, 2);
  extra.append(pad, 'Z');
  put(out_, kLocal, 4), put(out_, z64 ? 45 : 20, 2), put(out_, 0, 2), put(out_, 0, 2);  // version, flags, method
  put(out_, 0, 2), put(out_, 0x21, 2), put(out_, e.crc, 4);                             // time, date (1980-01-01), crc
  put(out_, z64 ? kMax32 : e.size, 4), put(out_, z64 ? kMax32 : e.size, 4);
  put(out_, name.size(), 2), put(out_, extra.size(), 2);
  out_ += name;
  out_ += extra;
  out_ += data;
  entries_.push_back(std::move(e));
}

std::string Writer::finish() {
  if (finished_) throw std::logic_error("zip::Writer::finish twice");
  finished_ = true;
  const uint64_t cd_offset = out_.size();
  for (const Entry& e : entries_) {
    const bool z64 = e.size >= kMax32 || e.header_offset >= kMax32;
    std::string extra;
    if (z64)
      put(extra, 1, 2), put(extra, 24, 2), put(extra, e.size, 8), put(extra, e.size, 8), put(extra, e.header_offset, 8);
    put(out_, kCentral, 4), put(out_, z64 ? 45 : 20, 2), put(out_, z64 ? 45 : 20, 2);
    put(out_, 0, 2), put(out_, 0, 2), put(out_, 0, 2), put(out_, 0x21, 2), put(out_, e.crc, 4);
    put(out_, z64 ? kMax32 : e.size, 4), put(out_, z64 ? kMax32 : e.size, 4);
    put(out_, e.name.size(), 2), put(out_, extra.size(), 2), put(out_, 0, 2);  // comment length
    put(out_, 0, 2), put(out_, 0, 2), put(out_, 0, 4);                         // disk, attributes
    put(out_, z64 ? kMax32 : e.header_offset, 4);
    out_ += e.name;
    out_ += extra;
  }
  const uint64_t cd_size = out_.size() - cd_offset, n = entries_.size();
  const bool z64 = cd_offset >= kMax32 || n >= 0xffff;
  if (z64) {
    const uint64_t end64 = out_.size();
    put(out_, kEnd64, 4), put(out_, 44, 8), put(out_, 45, 2), put(out_, 45, 2), put(out_, 0, 4), put(out_, 0, 4);
    put(out_, n, 8), put(out_, n, 8), put(out_, cd_size, 8), put(out_, cd_offset, 8);
    put(out_, kLocator64, 4), put(out_, 0, 4), put(out_, end64, 8), put(out_, 1, 4);
  }
  put(out_, kEnd, 4), put(out_, 0, 2), put(out_, 0, 2);
  put(out_, z64 ? 0xffff : n, 2), put(out_, z64 ? 0xffff : n, 2);
  put(out_, z64 ? kMax32 : cd_size, 4), put(out_, z64 ? kMax32 : cd_offset, 4), put(out_, 0, 2);
  return std::move(out_);
}

}  // namespace ppc::zip
