#include "runtime/engine/microbatch.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <sstream>

#include "schemas/error.h"

namespace ppc::runtime {

std::string shape_text(at::IntArrayRef sizes) {
  std::ostringstream os;
  os << "[";
  for (size_t d = 0; d < sizes.size(); ++d) os << (d ? ", " : "") << sizes[d];
  os << "]";
  return os.str();
}

std::string shape_text(const at::Tensor& t) { return shape_text(t.sizes()); }

at::ScalarType scalar_type_of(const std::string& dtype) {
  static const std::map<std::string, at::ScalarType> types = {
      {"float32", at::kFloat}, {"float64", at::kDouble}, {"float16", at::kHalf}, {"bfloat16", at::kBFloat16},
      {"int64", at::kLong},    {"int32", at::kInt},      {"int16", at::kShort},  {"int8", at::kChar},
      {"uint8", at::kByte},    {"bool", at::kBool}};
  auto it = types.find(dtype);
  if (it == types.end()) throw Error("unsupported dtype '" + dtype + "'");
  return it->second;
}

std::string dtype_name(at::ScalarType type) {
  static const std::map<at::ScalarType, std::string> names = {
      {at::kFloat, "float32"}, {at::kDouble, "float64"}, {at::kHalf, "float16"}, {at::kBFloat16, "bfloat16"},
      {at::kLong, "int64"},    {at::kInt, "int32"},      {at::kShort, "int16"},  {at::kChar, "int8"},
      {at::kByte, "uint8"},    {at::kBool, "bool"}};
  auto it = names.find(type);
  return it == names.end() ? std::string(c10::toString(type)) : it->second;
}

std::vector<int64_t> micro_sizes(int64_t n, int chunks) {
  if (chunks < 1) throw Error("--chunks must be at least 1");
  if (n < chunks)
    throw Error("a batch of " + std::to_string(n) + " samples cannot be split into " + std::to_string(chunks) +
                " micro-batches");
  std::vector<int64_t> out(chunks, n / chunks);
  for (int64_t i = 0; i < n % chunks; ++i) out[i] += 1;
  return out;
}

namespace {

std::vector<at::Tensor> split_along(const at::Tensor& t, int64_t dim, const std::vector<int64_t>& sizes) {
  std::vector<at::Tensor> out;
  int64_t offset = 0;
  for (int64_t s : sizes) {
    out.push_back(t.narrow(dim, offset, s));
    offset += s;
  }
  return out;
}

}  // namespace

MicroBatches split_batch(const manifest::Manifest& m, const std::vector<NamedTensor>& batch, int chunks,
                         const std::string& target_key, const std::string& where) {
  auto find = [&](const std::string& name) -> const at::Tensor* {
    for (const auto& [k, t] : batch)
      if (k == name) return &t;
    return nullptr;
  };
  auto keys = [&]() {
    std::string s;
    for (const auto& [k, t] : batch) s += (s.empty() ? "'" : ", '") + k + "'";
    return s.empty() ? std::string("none") : s;
  };
  MicroBatches out;
  int64_t n = -1;
  std::string n_from;
  for (const auto& in : m.model_inputs) {
    const at::Tensor* t = find(in.name);
    if (!t) throw Error(where + ": no entry for model input '" + in.name + "' (entries: " + keys() + ")");
    if (in.dtype != "undefined" && t->scalar_type() != scalar_type_of(in.dtype))
      throw Error(where + ": model input '" + in.name + "' is " + dtype_name(t->scalar_type()) +
                  ", the model expects " + in.dtype);
    if (in.shape && static_cast<int64_t>(in.shape->size()) != t->dim())
      throw Error(where + ": model input '" + in.name + "' has shape " + shape_text(*t) + ", the model expects " +
                  manifest::shape_str(in.shape));
    if (in.split != "batch") continue;
    int64_t dim = in.batch_dim.value_or(0);
    if (dim >= t->dim()) throw Error(where + ": model input '" + in.name + "' has no batch dim " + std::to_string(dim));
    if (n < 0) {
      n = t->size(dim);
      n_from = in.name;
    } else if (t->size(dim) != n) {
      throw Error(where + ": model inputs '" + n_from + "' and '" + in.name + "' disagree on the batch size (" +
                  std::to_string(n) + " vs " + std::to_string(t->size(dim)) + ")");
    }
  }
  const at::Tensor* target = target_key.empty() ? nullptr : find(target_key);
  if (!target_key.empty() && !target)
    throw Error(where + ": no target '" + target_key + "' for the loss (entries: " + keys() +
                "; name another with --target-key)");
  if (n < 0) {
    if (!target || target->dim() == 0)
      throw Error(where + ": no model input is split along a batch dim, so the batch size is unknown");
    n = target->size(0);
  }
  if (target && (target->dim() == 0 || target->size(0) != n))
    throw Error(where + ": target '" + target_key + "' has shape " + shape_text(*target) + ", expected " +
                std::to_string(n) + " samples along dim 0");
  out.batch_size = n;
  try {
    out.sizes = micro_sizes(n, chunks);
  } catch (const Error& e) { throw Error(where + ": " + e.what()); }
  for (const auto& in : m.model_inputs) {
    const at::Tensor& t = *find(in.name);
    if (in.split == "batch")
      out.inputs[in.name] = split_along(t, in.batch_dim.value_or(0), out.sizes);
    else
      out.inputs[in.name] = std::vector<at::Tensor>(chunks, t);
  }
  if (target) out.targets = split_along(*target, 0, out.sizes);
  return out;
}

std::vector<NamedTensor> shard_batch(const manifest::Manifest& m, const std::vector<NamedTensor>& batch, int replicas,
                                     int replica, const std::string& target_key, const std::string& where,
                                     int64_t* batch_size, std::vector<int64_t>* shard_sizes) {
  MicroBatches shards = split_batch(m, batch, replicas, target_key, where);
  *batch_size = shards.batch_size;
  *shard_sizes = shards.sizes;
  std::vector<NamedTensor> out;
  for (const auto& [name, t] : batch) {
    auto in = shards.inputs.find(name);
    if (in != shards.inputs.end())
      out.emplace_back(name, in->second.at(static_cast<size_t>(replica)));
    else if (!target_key.empty() && name == target_key)
      out.emplace_back(name, shards.targets.at(static_cast<size_t>(replica)));
    else
      out.emplace_back(name, t);
  }
  return out;
}

std::vector<NamedTensor> synthetic_batch(const manifest::Manifest& m, int64_t batch_size,
                                         const std::map<std::string, int64_t>& dims, int64_t int_high, uint64_t seed) {
  if (batch_size < 1) throw Error("--synthetic needs --batch-size N (N >= 1)");
  at::Generator gen = at::detail::createCPUGenerator(seed);
  std::vector<NamedTensor> out;
  for (const auto& in : m.model_inputs) {
    if (in.dtype == "undefined" || !in.shape)
      throw Error("--synthetic: model input '" + in.name + "' has no " + (in.shape ? "dtype" : "shape") +
                  " in the manifest (TorchScript archives carry none: declare it under \"inputs\" in the split spec, "
                  "or pass --inputs)");
    std::vector<int64_t> sizes;
    for (size_t d = 0; d < in.shape->size(); ++d) {
      const auto& dim = (*in.shape)[d];
      if (dim.value) {
        sizes.push_back(*dim.value);
      } else if (in.batch_dim && static_cast<int>(d) == *in.batch_dim) {
        sizes.push_back(batch_size);
      } else if (!dim.symbol.empty() && dims.count(dim.symbol)) {
        sizes.push_back(dims.at(dim.symbol));
      } else {
        throw Error("--synthetic: dim " + std::to_string(d) + " of model input '" + in.name + "' is " +
                    (dim.symbol.empty() ? std::string("unknown") : "'" + dim.symbol + "'") + "; give it with --dim " +
                    (dim.symbol.empty() ? std::string("NAME") : dim.symbol) + "=N");
      }
    }
    at::ScalarType type = scalar_type_of(in.dtype);
    at::Tensor t;
    if (at::isFloatingType(type))
      t = at::randn(sizes, gen, at::TensorOptions().dtype(type));
    else if (type == at::kBool)
      t = at::randint(0, 2, sizes, gen, at::TensorOptions().dtype(at::kLong)).to(at::kBool);
    else
      t = at::randint(0, int_high, sizes, gen, at::TensorOptions().dtype(type));
    out.emplace_back(in.name, t);
  }
  return out;
}

at::Tensor synthetic_target(const at::Tensor& out, const std::vector<at::Tensor>& inputs,
                            const std::vector<int64_t>& sizes, int m, const std::string& loss, uint64_t seed,
                            at::Tensor& teacher) {
  int64_t n = 0, offset = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (static_cast<int>(i) < m) offset += sizes[i];
    n += sizes[i];
  }
  std::vector<int64_t> full(out.sizes().begin(), out.sizes().end());
  full[0] = n;
  at::NoGradGuard no_grad;
  at::Generator gen = at::detail::createCPUGenerator(seed ^ 0x9e3779b97f4a7c15ULL);
  bool classes = loss == "cross_entropy";
  bool learnable = !inputs.empty() && (!classes || out.dim() == 2);
  at::Tensor target;
  if (learnable) {
    at::Tensor x = inputs[0].reshape({n, -1}).to(at::kFloat);
    int64_t k = classes ? out.size(-1) : out.numel() / out.size(0);
    if (!teacher.defined())
      teacher = at::randn({x.size(1), k}, gen) * (2.0 / std::sqrt(static_cast<double>(x.size(1))));
    at::Tensor y = at::matmul(x, teacher);
    target = classes ? y.argmax(1) : at::tanh(y).reshape(full).to(out.scalar_type());
  } else if (classes) {
    full.pop_back();
    target = at::randint(0, out.size(-1), full, gen, at::TensorOptions().dtype(at::kLong));
  } else {
    target = at::randn(full, gen, at::TensorOptions().dtype(out.scalar_type()));
  }
  return target.narrow(0, offset, sizes[m]);
}

}  // namespace ppc::runtime
