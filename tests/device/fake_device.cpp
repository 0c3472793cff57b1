// A stand-in for a GPU on machines without one, for the tests of pprun's
// --device paths: LibTorch's third-party device type ("privateuseone"), its
// memory in host memory, every operator run by the CPU kernel on host views of
// that memory. Like a GPU it is a device of its own: an operator given
// tensors of both this device and the CPU (other than a scalar, or a copy
// between them) fails as CUDA's would ("Expected all tensors to be on the
// same device"), and tensors move only through explicit copies. What it cannot
// catch: a read of device memory through a raw host pointer (on a GPU, a
// crash), and streams (it has one, always synchronized).
//
// Loaded into pprun with LD_PRELOAD (tools/gpu/check.py, tests/e2e/device_syncs.py),
// then `pprun --device privateuseone`. Needs LibTorch 2.x. With
// PPC_FAKE_DEVICE_SYNC_LOG=FILE each process appends "PID SYNCS" to FILE at
// its exit: how often it waited for the device's stream (the tests of where
// pprun synchronizes a GPU).
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/detail/PrivateUse1HooksInterface.h>
#include <c10/core/Allocator.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/library.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <unistd.h>

namespace {

constexpr c10::DeviceType kFake = c10::DeviceType::PrivateUse1;

void free_fake(void* p) { std::free(p); }

struct FakeAllocator final : c10::Allocator {
  c10::DataPtr allocate(size_t n) override {
    void* p = n ? std::malloc(n) : nullptr;
    return {p, p, &free_fake, c10::Device(kFake, 0)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &free_fake; }
  void copy_data(void* dest, const void* src, std::size_t count) const override { std::memcpy(dest, src, count); }
};
FakeAllocator fake_allocator;

std::atomic<long> stream_syncs{0};

void write_sync_count() {
  const char* path = std::getenv("PPC_FAKE_DEVICE_SYNC_LOG");
  if (!path || !*path) return;
  if (FILE* f = std::fopen(path, "a")) {  // one short line per process: appends do not interleave
    std::fprintf(f, "%ld %ld\n", static_cast<long>(getpid()), stream_syncs.load());
    std::fclose(f);
  }
}

struct FakeGuard final : c10::impl::DeviceGuardImplInterface {
  c10::DeviceType type() const override { return kFake; }
  c10::Device exchangeDevice(c10::Device) const override { return c10::Device(kFake, 0); }
  c10::Device getDevice() const override { return c10::Device(kFake, 0); }
  void setDevice(c10::Device) const override {}
  void uncheckedSetDevice(c10::Device) const noexcept override {}
  c10::Stream getStream(c10::Device d) const noexcept override { return c10::Stream(c10::Stream::DEFAULT, d); }
  c10::Stream exchangeStream(c10::Stream s) const noexcept override { return s; }
  c10::DeviceIndex deviceCount() const noexcept override { return 1; }
  void synchronizeStream(const c10::Stream&) const override { ++stream_syncs; }
  void synchronizeDevice(const c10::DeviceIndex) const override {}
  bool queryStream(const c10::Stream&) const override { return true; }
  void record(void**, const c10::Stream&, const c10::DeviceIndex, const c10::EventFlag) const override {}
  void block(void*, const c10::Stream&) const override {}
  bool queryEvent(void*) const override { return true; }
  void destroyEvent(void*, const c10::DeviceIndex) const noexcept override {}
};

// A CPU storage over a fake storage's memory (no ownership: the fake tensor
// outlives the call that uses it).
c10::Storage host_alias(const c10::Storage& s) {
  return c10::Storage(c10::Storage::use_byte_size_t(), s.nbytes(),
                      c10::DataPtr(const_cast<void*>(s.data()), c10::Device(c10::kCPU)), nullptr, false);
}

at::Tensor host_view(const at::Tensor& t) {
  if (!t.defined() || t.device().type() != kFake) return t;
  return at::empty({0}, t.options().device(c10::kCPU))
      .set_(host_alias(t.storage()), t.storage_offset(), t.sizes(), t.strides());
}

// A fake tensor over `storage` (no dispatch: this is the fake's own kernel).
at::Tensor make_fake(c10::Storage storage, const at::Tensor& like) {
  at::Tensor t = at::detail::make_tensor<c10::TensorImpl>(
      std::move(storage),
      c10::DispatchKeySet{c10::DispatchKey::PrivateUse1, c10::DispatchKey::AutogradPrivateUse1,
                          c10::DispatchKey::ADInplaceOrView},
      like.dtype());
  t.unsafeGetTensorImpl()->set_sizes_and_strides(like.sizes(), like.strides(), like.storage_offset());
  return t;
}

// A fake tensor over a host result: a view of a fake input's storage when the
// result lies in it (a view op), else the result's own memory, kept alive by
// the new storage.
at::Tensor fake_of(const at::Tensor& r, const std::vector<at::Tensor>& fakes) {
  if (!r.defined() || r.device().type() == kFake) return r;
  const char* p = static_cast<const char*>(r.storage().data());
  for (const at::Tensor& f : fakes) {
    const char* base = static_cast<const char*>(f.storage().data());
    if (p && base && p >= base && p < base + f.storage().nbytes()) {
      return make_fake(f.storage(), r);  // the host alias begins where the fake storage does
    }
  }
  auto* keep = new c10::Storage(r.storage());
  c10::DataPtr dp(
      keep->mutable_data(), keep, [](void* ctx) { delete static_cast<c10::Storage*>(ctx); }, c10::Device(kFake, 0));
  c10::Storage s(c10::Storage::use_byte_size_t(), keep->nbytes(), std::move(dp), &fake_allocator, false);
  return make_fake(std::move(s), r);
}

bool copies_across(const std::string& name) {
  return name == "aten::copy_" || name == "aten::_copy_from" || name == "aten::_to_copy" ||
         name == "aten::_copy_from_and_resize" || name == "aten::to";
}

// set_(Storage) and resize_ act on the fake tensor itself (its storage, its
// sizes), not on a host view of it: true when `name` was one of them.
bool storage_ops(const std::string& name, size_t n, c10::IValue* args, torch::jit::Stack* stack) {
  // set_(Storage): point the fake tensor itself at the storage.
  if (name == "aten::set_" && n >= 2 && args[1].isStorage()) {
    at::Tensor self = args[0].toTensor();
    c10::Storage st = args[1].toStorage();
    const int64_t offset = n > 2 ? args[2].toInt() : 0;
    std::vector<int64_t> sizes = n > 3 ? args[3].toIntVector() : std::vector<int64_t>{};
    std::vector<int64_t> strides = n > 4 ? args[4].toIntVector() : std::vector<int64_t>{};
    if (n <= 3) sizes = {static_cast<int64_t>(st.nbytes() / self.element_size())};
    if (strides.empty()) {
      auto c = c10::contiguous_strides(sizes);
      strides.assign(c.begin(), c.end());
    }
    self.unsafeGetTensorImpl()->set_storage_keep_dtype(st);
    self.unsafeGetTensorImpl()->set_sizes_and_strides(sizes, strides, offset);
    torch::jit::drop(*stack, n);
    stack->emplace_back(self);
    return true;
  }
  // resize_: new fake memory where the old is too small.
  if (name == "aten::resize_") {
    at::Tensor self = args[0].toTensor();
    std::vector<int64_t> sizes = args[1].toIntVector();
    const int64_t need = c10::multiply_integers(sizes) * static_cast<int64_t>(self.element_size());
    if (self.storage_offset() * static_cast<int64_t>(self.element_size()) + need >
        static_cast<int64_t>(self.storage().nbytes())) {
      c10::Storage s(c10::Storage::use_byte_size_t(), need, &fake_allocator, true);
      self.unsafeGetTensorImpl()->set_storage_keep_dtype(s);
      self.unsafeGetTensorImpl()->set_sizes_contiguous(sizes);
      self.unsafeGetTensorImpl()->set_storage_offset(0);
    } else {
      self.unsafeGetTensorImpl()->set_sizes_contiguous(sizes);
    }
    torch::jit::drop(*stack, n);
    stack->emplace_back(self);
    return true;
  }
  return false;
}

void fake_kernel(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  const auto& schema = op.schema();
  const std::string name = schema.name();
  const size_t n = schema.arguments().size();
  c10::IValue* args = stack->data() + (stack->size() - n);
  if (storage_ops(name, n, args, stack)) return;
  std::vector<at::Tensor> fakes;
  bool host_tensor = false, cpu_device_arg = false, fake_device_arg = false;
  auto note = [&](const at::Tensor& t) {
    if (!t.defined()) return;
    if (t.device().type() == kFake) fakes.push_back(t);
    if (t.device().is_cpu() && t.dim() > 0) host_tensor = true;
  };
  for (size_t k = 0; k < n; ++k) {
    const c10::IValue& a = args[k];
    if (a.isTensor()) note(a.toTensor());
    if (a.isTensorList())
      for (const at::Tensor& t : a.toTensorVector()) note(t);
    if (a.isList())
      for (const c10::IValue& e : a.toListRef())
        if (e.isTensor()) note(e.toTensor());
    if (a.isDevice() && a.toDevice().is_cpu()) cpu_device_arg = true;
    if (a.isDevice() && a.toDevice().type() == kFake) fake_device_arg = true;
  }
  TORCH_CHECK(!(host_tensor && !fakes.empty()) || copies_across(name),
              "Expected all tensors to be on the same device, but found at least two devices, privateuseone:0 and "
              "cpu! (",
              name, ")");
  std::vector<c10::IValue> originals(args, args + n);
  std::vector<std::pair<at::Tensor, at::Tensor>> grown;  // (fake out= argument, its host stand-in)
  for (size_t k = 0; k < n; ++k) {
    c10::IValue& a = args[k];
    const auto* alias = schema.arguments()[k].alias_info();
    const bool out_variant = schema.overload_name().rfind("out", 0) == 0 || (a.isTensor() && a.toTensor().numel() == 0);
    if (a.isTensor() && alias && alias->isWrite() && a.toTensor().device().type() == kFake && out_variant) {
      // An out= tensor, which the kernel may resize: it writes a host tensor
      // of its own, whose memory the fake tensor takes over afterwards.
      at::Tensor h = at::empty({0}, a.toTensor().options().device(c10::kCPU));
      grown.emplace_back(a.toTensor(), h);
      a = h;
    } else if (a.isTensor()) {
      a = host_view(a.toTensor());
    } else if (a.isTensorList()) {
      std::vector<at::Tensor> ts = a.toTensorVector();
      for (at::Tensor& t : ts) t = host_view(t);
      a = c10::IValue(ts);
    } else if (a.isList()) {
      c10::List<c10::IValue> l = a.toList();
      c10::List<c10::IValue> out(l.elementType());
      for (const c10::IValue& e : l) out.push_back(e.isTensor() ? c10::IValue(host_view(e.toTensor())) : e);
      a = c10::IValue(out);
    } else if (a.isDevice() && a.toDevice().type() == kFake) {
      a = c10::IValue(c10::Device(c10::kCPU));
    }
  }
  op.redispatchBoxed(c10::DispatchKeySet(c10::DispatchKey::CPU), stack);
  for (auto& [fake, h] : grown) {
    at::Tensor moved = fake_of(h, {});
    fake.unsafeGetTensorImpl()->set_storage_keep_dtype(moved.storage());
    fake.unsafeGetTensorImpl()->set_sizes_and_strides(h.sizes(), h.strides(), h.storage_offset());
  }
  // Results: an argument the op writes and returns is returned as given; a
  // new tensor lives on the fake device unless the op asked for the CPU.
  const auto& returns = schema.returns();
  c10::IValue* results = stack->data() + (stack->size() - returns.size());
  for (size_t i = 0; i < returns.size(); ++i) {
    const auto* alias = returns[i].alias_info();
    if (alias && alias->isWrite()) {
      for (size_t k = 0; k < n; ++k) {
        const auto* a = schema.arguments()[k].alias_info();
        if (a && a->isWrite() && a->beforeSets() == alias->beforeSets()) {
          results[i] = originals[k];
          break;
        }
      }
      continue;
    }
    if (fakes.empty() && !fake_device_arg) continue;
    if (cpu_device_arg) continue;
    if (results[i].isTensor()) {
      results[i] = fake_of(results[i].toTensor(), fakes);
    } else if (results[i].isTensorList()) {
      std::vector<at::Tensor> ts = results[i].toTensorVector();
      for (at::Tensor& t : ts) t = fake_of(t, fakes);
      results[i] = c10::IValue(ts);
    }
  }
}

// What LibTorch asks an accelerator (the autograd engine: is there one, how many).
struct FakeHooks final : at::PrivateUse1HooksInterface {
  bool isBuilt() const override { return true; }
  bool isAvailable() const override { return true; }
  bool hasPrimaryContext(c10::DeviceIndex) const override { return true; }
  c10::DeviceIndex deviceCount() const override { return 1; }
  c10::DeviceIndex getCurrentDevice() const override { return 0; }
  at::Device getDeviceFromPtr(void*) const override { return c10::Device(kFake, 0); }
};

struct Register {
  Register() {
    c10::register_privateuse1_backend("privateuseone");  // LibTorch's accelerator is this device
    c10::SetAllocator(kFake, &fake_allocator);
    at::RegisterPrivateUse1HooksInterface(new FakeHooks());
    std::atexit(&write_sync_count);
  }
} register_fake;

C10_REGISTER_GUARD_IMPL(PrivateUse1, FakeGuard);

TORCH_LIBRARY_IMPL(_, PrivateUse1, m) { m.fallback(torch::CppFunction::makeFromBoxedFunction<&fake_kernel>()); }

// Copies between the devices: copy_ calls _copy_from(src, dst) for a
// non-CPU destination, dispatched on the source's device (the CPU too).
at::Tensor copy_from(const at::Tensor& self, const at::Tensor& dst, bool /*non_blocking*/) {
  host_view(dst).copy_(host_view(self));
  return dst;
}

at::Tensor copy_from_and_resize(const at::Tensor& self, const at::Tensor& dst) {
  TORCH_CHECK(self.sizes().equals(dst.sizes()), "_copy_from_and_resize: sizes differ");
  return copy_from(self, dst, false);
}

TORCH_LIBRARY_IMPL(aten, CPU, m) {
  m.impl("_copy_from", copy_from);
  m.impl("_copy_from_and_resize", copy_from_and_resize);
}
// Convolutions on a third-party device go to the *_overrideable operators
// (whose default kernels refuse): run the CPU's convolution and its backward.
void convolution(const c10::OperatorHandle&, torch::jit::Stack* stack) {
  static const auto op = c10::Dispatcher::singleton().findSchemaOrThrow("aten::convolution", "");
  fake_kernel(op, stack);
}

void convolution_backward(const c10::OperatorHandle&, torch::jit::Stack* stack) {
  static const auto op = c10::Dispatcher::singleton().findSchemaOrThrow("aten::convolution_backward", "");
  // (grad_output, input, weight, stride, ...) -> (grad_output, input, weight, bias_sizes, stride, ...)
  const size_t first = stack->size() - 10;
  const int64_t channels = (*stack)[first].toTensor().size(1);
  stack->insert(stack->begin() + static_cast<std::ptrdiff_t>(first + 3), c10::IValue(std::vector<int64_t>{channels}));
  fake_kernel(op, stack);
}

TORCH_LIBRARY_IMPL(aten, PrivateUse1, m) {
  m.impl("_copy_from", copy_from);
  m.impl("_copy_from_and_resize", copy_from_and_resize);
  m.impl("convolution_overrideable", torch::CppFunction::makeFromBoxedFunction<&convolution>());
  m.impl("convolution_backward_overrideable", torch::CppFunction::makeFromBoxedFunction<&convolution_backward>());
}

}  // namespace
