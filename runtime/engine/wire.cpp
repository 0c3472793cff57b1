#include "runtime/engine/wire.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>

#include "schemas/error.h"

namespace ppc::runtime::wire {

at::Tensor encode_header(const std::vector<at::Tensor>& tensors) {
  at::Tensor h = at::zeros({static_cast<int64_t>(tensors.size()) * kHeaderSlot}, at::kLong);
  int64_t* p = h.data_ptr<int64_t>();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const at::Tensor& t = tensors[i];
    if (t.dim() > kMaxDims)
      throw Error("cannot send a tensor of " + std::to_string(t.dim()) + " dimensions (at most " +
                  std::to_string(kMaxDims) + ")");
    int64_t* slot = p + i * kHeaderSlot;
    slot[0] = static_cast<int64_t>(t.scalar_type());
    slot[1] = t.dim();
    for (int64_t d = 0; d < t.dim(); ++d) slot[2 + d] = t.size(d);
  }
  return h;
}

at::Tensor header_buffer(int n) { return at::empty({static_cast<int64_t>(n) * kHeaderSlot}, at::kLong); }

std::vector<at::Tensor> allocate_from_header(const at::Tensor& header, int n) {
  if (header.numel() != static_cast<int64_t>(n) * kHeaderSlot) throw Error("malformed tensor header (wrong length)");
  const int64_t* p = header.data_ptr<int64_t>();
  std::vector<at::Tensor> out;
  for (int i = 0; i < n; ++i) {
    const int64_t* slot = p + i * kHeaderSlot;
    int64_t type = slot[0], ndim = slot[1];
    if (type < 0 || type >= static_cast<int64_t>(at::ScalarType::NumOptions) || ndim < 0 || ndim > kMaxDims)
      throw Error("malformed tensor header (dtype " + std::to_string(type) + ", rank " + std::to_string(ndim) + ")");
    std::vector<int64_t> sizes(slot + 2, slot + 2 + ndim);
    for (int64_t s : sizes)
      if (s < 0) throw Error("malformed tensor header (negative size)");
    out.push_back(at::empty(sizes, at::TensorOptions().dtype(static_cast<at::ScalarType>(type))));
  }
  return out;
}

namespace {
int64_t aligned(int64_t n) { return (n + kPackAlign - 1) / kPackAlign * kPackAlign; }
int64_t nbytes_of(const std::vector<int64_t>& shape, at::ScalarType t) {
  int64_t n = static_cast<int64_t>(c10::elementSize(t));
  for (int64_t d : shape) n *= d;
  return n;
}
}  // namespace

int64_t packed_bytes(const std::vector<std::vector<int64_t>>& shapes, const std::vector<at::ScalarType>& dtypes) {
  int64_t total = 0;
  for (size_t k = 0; k < shapes.size(); ++k) total = aligned(total) + nbytes_of(shapes[k], dtypes.at(k));
  return total;
}

at::Tensor pack(const std::vector<at::Tensor>& tensors) {
  std::vector<std::vector<int64_t>> shapes;
  std::vector<at::ScalarType> dtypes;
  for (const auto& t : tensors) {
    shapes.push_back(t.sizes().vec());
    dtypes.push_back(t.scalar_type());
  }
  at::Tensor bytes = at::empty({packed_bytes(shapes, dtypes)}, tensors.at(0).options().dtype(at::kByte));
  auto views = unpack(bytes, shapes, dtypes);
  for (size_t k = 0; k < tensors.size(); ++k) views[k].copy_(tensors[k]);
  return bytes;
}

std::vector<at::Tensor> unpack(const at::Tensor& bytes, const std::vector<std::vector<int64_t>>& shapes,
                               const std::vector<at::ScalarType>& dtypes) {
  const int64_t want = packed_bytes(shapes, dtypes);
  if (bytes.scalar_type() != at::kByte || bytes.dim() != 1 || bytes.numel() != want)
    throw Error("packed message of " + std::to_string(bytes.numel()) + " bytes, expected " + std::to_string(want));
  std::vector<at::Tensor> out;
  int64_t off = 0;
  for (size_t k = 0; k < shapes.size(); ++k) {
    off = aligned(off);
    const int64_t n = nbytes_of(shapes[k], dtypes[k]);
    out.push_back(bytes.narrow(0, off, n).view(dtypes[k]).view(shapes[k]));
    off += n;
  }
  return out;
}

namespace {
at::Tensor as_bytes_if_bool(const at::Tensor& t) { return t.scalar_type() == at::kBool ? t.view(at::kByte) : t; }

template <typename T>
std::vector<T> pick(const std::vector<T>& v, const std::vector<int>& idx) {
  std::vector<T> out;
  for (int i : idx) out.push_back(v.at(static_cast<size_t>(i)));
  return out;
}
}  // namespace

Layout layout(const std::vector<std::vector<int64_t>>& shapes, const std::vector<at::ScalarType>& dtypes) {
  Layout l;
  for (size_t k = 0; k < shapes.size(); ++k)
    (nbytes_of(shapes[k], dtypes.at(k)) >= kUnpackBytes ? l.alone : l.packed).push_back(static_cast<int>(k));
  return l;
}

namespace {
constexpr uint64_t kMagic = 0x3130455249574350ULL;     // "PCWIRE01"
constexpr uint64_t kRedirect = 0x5244455249574350ULL;  // "PCWIREDR": the tensors follow under slot 2
enum Word { kMagicWord, kStep, kDirMb, kEdge, kDigest, kBytes, kPayloadSum, kHeaderSum };

uint64_t mix(uint64_t h, uint64_t v) { return (h ^ v) * 0x100000001b3ULL + 0x9e3779b97f4a7c15ULL; }

// A checksum of `n` bytes, 8 at a time (a few GB/s: the frame holds small tensors only).
uint64_t checksum(const uint8_t* p, int64_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = mix(h, w);
  }
  for (; i < n; ++i) h = mix(h, p[i]);
  return mix(h, static_cast<uint64_t>(n));
}

uint64_t header_sum(const uint64_t* w) {
  uint64_t h = 0x84222325cbf29ce4ULL;
  for (int k = 0; k < kHeaderSum; ++k) h = mix(h, w[k]);
  return h;
}

uint64_t digest(const std::vector<std::vector<int64_t>>& shapes, const std::vector<at::ScalarType>& dtypes) {
  uint64_t h = mix(0, shapes.size());
  for (size_t k = 0; k < shapes.size(); ++k) {
    h = mix(h, static_cast<uint64_t>(dtypes[k]));
    h = mix(h, shapes[k].size());
    for (int64_t d : shapes[k]) h = mix(h, static_cast<uint64_t>(d));
  }
  return h;
}

int64_t total_bytes(const std::vector<std::vector<int64_t>>& shapes, const std::vector<at::ScalarType>& dtypes) {
  int64_t n = 0;
  for (size_t k = 0; k < shapes.size(); ++k) n += nbytes_of(shapes[k], dtypes[k]);
  return n;
}

int64_t frame_bytes(int64_t packed) { return kFrameHeader + (packed + 7) / 8 * 8 + 8; }

void fill_header(uint64_t* w, const MessageId& id, uint64_t dig, int64_t bytes) {
  w[kMagicWord] = kMagic;
  w[kStep] = static_cast<uint64_t>(id.step);
  w[kDirMb] = (static_cast<uint64_t>(id.direction) << 32) | static_cast<uint32_t>(id.microbatch);
  w[kEdge] = (static_cast<uint64_t>(static_cast<uint32_t>(id.producer)) << 32) | static_cast<uint32_t>(id.consumer);
  w[kDigest] = dig;
  w[kBytes] = static_cast<uint64_t>(bytes);
}

// The payload's checksum, the header's own, and the end mark that repeats it.
void seal(at::Tensor& frame, uint64_t* w, int64_t packed) {
  uint8_t* base = frame.data_ptr<uint8_t>();
  std::memset(base + kFrameHeader + packed, 0, static_cast<size_t>(frame.numel() - kFrameHeader - packed));
  w[kPayloadSum] = checksum(base + kFrameHeader, packed);
  w[kHeaderSum] = header_sum(w);
  std::memcpy(base, w, kFrameHeader);
  std::memcpy(base + frame.numel() - 8, &w[kHeaderSum], 8);
}
}  // namespace

std::vector<at::Tensor> outgoing(const std::vector<at::Tensor>& tensors, const MessageId& id) {
  std::vector<std::vector<int64_t>> shapes;
  std::vector<at::ScalarType> dtypes;
  for (const auto& t : tensors) {
    shapes.push_back(t.sizes().vec());
    dtypes.push_back(t.scalar_type());
  }
  const Layout l = layout(shapes, dtypes);
  const auto small_shapes = pick(shapes, l.packed);
  const auto small_dtypes = pick(dtypes, l.packed);
  const int64_t packed = packed_bytes(small_shapes, small_dtypes);
  at::Tensor frame = at::empty({frame_bytes(packed)}, at::kByte);
  if (!l.packed.empty()) {
    auto views = unpack(frame.narrow(0, kFrameHeader, packed), small_shapes, small_dtypes);
    for (size_t k = 0; k < views.size(); ++k) views[k].copy_(tensors[l.packed[k]]);
  }
  uint64_t w[kFrameHeader / 8] = {};
  fill_header(w, id, digest(shapes, dtypes), total_bytes(shapes, dtypes));
  seal(frame, w, packed);
  std::vector<at::Tensor> out{frame};
  for (int k : l.alone) out.push_back(as_bytes_if_bool(tensors[k].contiguous()));
  return out;
}

// Exactly the messages a receive posted with these shapes expects (same
// sizes and dtypes: a Gloo receive takes a message of its size), the frame
// marked as a redirect and checked like any other.
std::vector<at::Tensor> redirect(const std::vector<std::vector<int64_t>>& shapes,
                                 const std::vector<at::ScalarType>& dtypes, const MessageId& id) {
  const Layout l = layout(shapes, dtypes);
  const int64_t packed = packed_bytes(pick(shapes, l.packed), pick(dtypes, l.packed));
  at::Tensor frame = at::zeros({frame_bytes(packed)}, at::kByte);
  uint64_t w[kFrameHeader / 8] = {};
  fill_header(w, id, digest(shapes, dtypes), total_bytes(shapes, dtypes));
  w[kMagicWord] = kRedirect;
  seal(frame, w, packed);
  std::vector<at::Tensor> out{frame};
  for (int k : l.alone)
    out.push_back(at::empty(shapes[k], at::TensorOptions().dtype(dtypes[k] == at::kBool ? at::kByte : dtypes[k])));
  return out;
}

Incoming::Incoming(std::vector<std::vector<int64_t>> shapes, std::vector<at::ScalarType> dtypes, RecvPool& pool)
    : shapes_(std::move(shapes)), dtypes_(std::move(dtypes)), layout_(layout(shapes_, dtypes_)) {
  if (shapes_.empty()) return;  // nothing to receive: the sender sends no message either (send_data)
  const int64_t packed = packed_bytes(pick(shapes_, layout_.packed), pick(dtypes_, layout_.packed));
  at::Tensor frame = pool.take(frame_bytes(packed));
  // A pooled buffer holds an earlier frame: clear its header and end mark.
  std::memset(frame.data_ptr(), 0, kFrameHeader);
  std::memset(frame.data_ptr<uint8_t>() + frame.numel() - 8, 0, 8);
  messages_.push_back(frame);
  for (int k : layout_.alone) {
    const std::vector<std::vector<int64_t>> s{shapes_[k]};
    const std::vector<at::ScalarType> d{dtypes_[k]};
    messages_.push_back(as_bytes_if_bool(unpack(pool.take(packed_bytes(s, d)), s, d)[0]));
  }
}

std::vector<at::Tensor> Incoming::tensors() const {
  std::vector<at::Tensor> out(shapes_.size());
  if (messages_.empty()) return out;
  const auto small_shapes = pick(shapes_, layout_.packed);
  const auto small_dtypes = pick(dtypes_, layout_.packed);
  const at::Tensor& frame = messages_.at(0);
  auto views =
      unpack(frame.narrow(0, kFrameHeader, packed_bytes(small_shapes, small_dtypes)), small_shapes, small_dtypes);
  for (size_t i = 0; i < views.size(); ++i) out[layout_.packed[i]] = views[i];
  for (size_t i = 0; i < layout_.alone.size(); ++i) {
    const int k = layout_.alone[i];
    out[k] = dtypes_[k] == at::kBool ? messages_.at(i + 1).view(at::kBool) : messages_.at(i + 1);
  }
  return out;
}

std::string Incoming::check(const MessageId& id) const {
  if (messages_.empty()) return "";
  const at::Tensor& frame = messages_.at(0);
  const uint8_t* base = frame.data_ptr<uint8_t>();
  uint64_t w[kFrameHeader / 8], end;
  std::memcpy(w, base, sizeof w);
  std::memcpy(&end, base + frame.numel() - 8, 8);
  if ((w[kMagicWord] != kMagic && w[kMagicWord] != kRedirect) || w[kHeaderSum] != header_sum(w))
    return "corrupted: its header fails its checksum";
  if (end != w[kHeaderSum])
    return "of the wrong size: shorter than the " + std::to_string(frame.numel()) + " bytes expected";
  uint64_t want[kFrameHeader / 8] = {};
  fill_header(want, id, digest(shapes_, dtypes_), total_bytes(shapes_, dtypes_));
  if (w[kStep] != want[kStep] || w[kDirMb] != want[kDirMb] || w[kEdge] != want[kEdge]) {
    const auto dir = static_cast<int>(w[kDirMb] >> 32);
    return "not the one expected: it is step " + std::to_string(w[kStep] + 1) + "'s " +
           (dir ? "gradients" : "activations") + " of stage " + std::to_string(w[kEdge] >> 32) + " -> " +
           std::to_string(static_cast<uint32_t>(w[kEdge])) + ", micro-batch " +
           std::to_string(static_cast<uint32_t>(w[kDirMb]));
  }
  if (w[kDigest] != want[kDigest] || w[kBytes] != want[kBytes]) {
    std::string what;
    for (size_t k = 0; k < shapes_.size(); ++k) {
      what += k ? ", " : "";
      what += std::string(c10::toString(dtypes_[k])) + "[";
      for (size_t d = 0; d < shapes_[k].size(); ++d) what += (d ? ", " : "") + std::to_string(shapes_[k][d]);
      what += "]";
    }
    return "of the wrong size: it carries " + std::to_string(w[kBytes]) +
           " bytes of other dtypes or shapes, expected " + std::to_string(want[kBytes]) + " bytes: " + what;
  }
  const int64_t packed = packed_bytes(pick(shapes_, layout_.packed), pick(dtypes_, layout_.packed));
  if (w[kPayloadSum] != checksum(base + kFrameHeader, packed)) return "corrupted: its data fails its checksum";
  return "";
}

bool Incoming::redirected() const {
  if (messages_.empty()) return false;
  uint64_t magic;
  std::memcpy(&magic, messages_[0].data_ptr<uint8_t>(), 8);
  return magic == kRedirect;
}

int64_t Incoming::bytes() const { return total_bytes(shapes_, dtypes_); }

const Shapes* ShapeGuesses::guess(const std::string& key) const {
  if (off_) return nullptr;
  auto it = known_.find(key);
  return it == known_.end() ? nullptr : &it->second;
}

void ShapeGuesses::saw(int m, const std::string& key, Shapes shapes, Outcome outcome) {
  step_[m] = {key, std::move(shapes)};
  hits_ += outcome == Outcome::Hit;
  misses_ += outcome == Outcome::Miss;
}

void ShapeGuesses::end_step() {
  for (auto& [m, seen] : step_) {
    auto& [key, shapes] = seen;
    if (!known_.count(key)) {
      if (known_.size() == kMaxKeys) {
        known_.erase(order_.front());
        order_.pop_front();
      }
      order_.push_back(key);
    }
    known_[key] = std::move(shapes);
  }
  step_.clear();
  off_ = off_ || misses_ > hits_;
}

namespace {
bool is_free(const at::Tensor& b) { return b.use_count() == 1 && b.storage().use_count() == 1; }
}  // namespace

at::Tensor RecvPool::take(int64_t bytes) {
  std::vector<Buffer>& same = pool_[bytes];
  for (Buffer& b : same)
    if (is_free(b.bytes)) {
      b.taken = true;
      return b.bytes;
    }
  same.push_back({at::empty({bytes}, at::kByte), true});
  return same.back().bytes;
}

void RecvPool::trim() {
  for (auto it = pool_.begin(); it != pool_.end();) {
    auto& same = it->second;
    same.erase(std::remove_if(same.begin(), same.end(), [](const Buffer& b) { return !b.taken && is_free(b.bytes); }),
               same.end());
    for (Buffer& b : same) b.taken = false;
    it = same.empty() ? pool_.erase(it) : std::next(it);
  }
}

Tags::Tags(int num_stages, int num_microbatches, int max_slots)
    : stages_(num_stages), microbatches_(num_microbatches), slots_(max_slots) {
  if (2 * stages_ * stages_ * microbatches_ * slots_ >= static_cast<int64_t>(kControlBase))
    throw Error("too many stages x micro-batches for the message tag space (" + std::to_string(stages_) + " stages, " +
                std::to_string(microbatches_) + " micro-batches)");
}

uint32_t Tags::data(int direction, int producer, int consumer, int microbatch, int slot) const {
  int64_t t = (((direction * stages_ + producer) * stages_ + consumer) * microbatches_ + microbatch) * slots_ + slot;
  return static_cast<uint32_t>(t);
}

}  // namespace ppc::runtime::wire
