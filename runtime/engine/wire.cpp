#include "runtime/engine/wire.h"

#include <ATen/ATen.h>

#include <algorithm>

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

std::vector<at::Tensor> outgoing(const std::vector<at::Tensor>& tensors) {
  std::vector<std::vector<int64_t>> shapes;
  std::vector<at::ScalarType> dtypes;
  for (const auto& t : tensors) {
    shapes.push_back(t.sizes().vec());
    dtypes.push_back(t.scalar_type());
  }
  const Layout l = layout(shapes, dtypes);
  std::vector<at::Tensor> out;
  if (l.packed.size() > 1) out.push_back(pack(pick(tensors, l.packed)));
  if (l.packed.size() == 1) out.push_back(as_bytes_if_bool(tensors[l.packed[0]].contiguous()));
  for (int k : l.alone) out.push_back(as_bytes_if_bool(tensors[k].contiguous()));
  return out;
}

Incoming::Incoming(std::vector<std::vector<int64_t>> shapes, std::vector<at::ScalarType> dtypes, RecvPool& pool)
    : shapes_(std::move(shapes)), dtypes_(std::move(dtypes)), layout_(layout(shapes_, dtypes_)) {
  auto one = [&](int k) {
    const std::vector<std::vector<int64_t>> s{shapes_[k]};
    const std::vector<at::ScalarType> d{dtypes_[k]};
    return as_bytes_if_bool(unpack(pool.take(packed_bytes(s, d)), s, d)[0]);
  };
  if (layout_.packed.size() > 1)
    messages_.push_back(pool.take(packed_bytes(pick(shapes_, layout_.packed), pick(dtypes_, layout_.packed))));
  if (layout_.packed.size() == 1) messages_.push_back(one(layout_.packed[0]));
  for (int k : layout_.alone) messages_.push_back(one(k));
}

std::vector<at::Tensor> Incoming::tensors() const {
  std::vector<at::Tensor> out(shapes_.size());
  size_t next = 0;
  auto typed = [&](int k, const at::Tensor& t) { return dtypes_[k] == at::kBool ? t.view(at::kBool) : t; };
  if (layout_.packed.size() > 1) {
    auto views = unpack(messages_.at(next++), pick(shapes_, layout_.packed), pick(dtypes_, layout_.packed));
    for (size_t i = 0; i < views.size(); ++i) out[layout_.packed[i]] = views[i];
  }
  if (layout_.packed.size() == 1) out[layout_.packed[0]] = typed(layout_.packed[0], messages_.at(next++));
  for (int k : layout_.alone) out[k] = typed(k, messages_.at(next++));
  return out;
}

int64_t Incoming::bytes() const {
  int64_t n = 0;
  for (const at::Tensor& m : messages_) n += static_cast<int64_t>(m.nbytes());
  return n;
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
