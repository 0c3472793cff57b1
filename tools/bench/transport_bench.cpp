// One rank of the transport benchmark (driven by tools/bench/transport.py):
//   transport_bench --rank R --port P --raw-port P2 --sizes B,B,... [--reps N] [--check]
//
// Two processes (ranks 0 and 1) on 127.0.0.1 (P: pprun's rendezvous, P2: the raw
// c10d group's store) play ping-pong: rank 0 sends a
// message of B bytes, rank 1 sends it back, rank 0 times the round trip; the
// one-way time is half of it. Each repetition runs every variant once, one
// after another (interleaved, so that the machine's drift hits them alike;
// each repetition starts with the next variant):
//
//   raw1   c10d ProcessGroupGloo send/recv of one float tensor, receive
//          buffers allocated once (what a user of c10d writes); a group of
//          its own (its own TCPStore and Gloo connections, 2 Gloo threads and
//          a loopback device, as torch.distributed's gloo group has);
//   xport1 pprun's Transport (connect_gloo, isend/irecv) on the same
//          preallocated buffers: the wrapper alone;
//   eng1   the engine's path for one tensor (runtime/engine/engine.cpp
//          send_data / post_recv_data: wire::outgoing, wire::Incoming with
//          receive buffers from the engine's pool, reused across messages);
//   raw2   c10d with the message as two tensors of B/2 bytes: two sends;
//   eng2   the engine's path for two tensors: below wire::kUnpackBytes
//          each, wire::pack into one message (a copy), a packed receive
//          buffer, wire::unpack into views; from it up, one message each;
//          rank 1 sends what it received back the same way (a stage's outputs).
//
// Rank 0 prints one line per size and variant: "size variant t_us t_us ...",
// the one-way time of every repetition. --check fills the messages with
// values and verifies every echo (exit 1 on a mismatch).
#include "runtime/engine/wire.h"
#include "runtime/transport/transport.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {

using ppc::runtime::Transport;
namespace wire = ppc::runtime::wire;
using Clock = std::chrono::steady_clock;

constexpr uint32_t kTag = 7;

struct Options {
  int rank = -1;
  int port = -1;
  int raw_port = -1;
  std::vector<int64_t> sizes;
  int reps = 21;
  bool check = false;
  std::vector<std::string> variants;  ///< --variants (for profiling one); default all
};

c10::intrusive_ptr<c10d::ProcessGroupGloo> raw_group(int rank, int port) {
  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(port);
  so.isServer = rank == 0;
  so.numWorkers = 2;
  so.waitWorkers = true;
  so.timeout = std::chrono::milliseconds(60000);
  auto store = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", so);
  auto go = c10d::ProcessGroupGloo::Options::create(std::chrono::milliseconds(60000));
  go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  go->threads = 2;
  return c10::make_intrusive<c10d::ProcessGroupGloo>(c10::make_intrusive<c10d::PrefixStore>("raw", store), rank, 2, go);
}

// One round trip of one variant; rank 0 returns its duration in us.
class Bench {
 public:
  Bench(const Options& o, Transport& t, c10::intrusive_ptr<c10d::ProcessGroupGloo> raw)
      : o_(o), t_(t), raw_(std::move(raw)), peer_(1 - o.rank) {}

  // Buffers of `bytes` (floats) for this size; rank 0's messages hold `seed`.
  void prepare(int64_t bytes) {
    const int64_t n = bytes / 4, h = n / 2;
    one_ = at::arange(n, at::kFloat);
    one_in_ = at::empty({n}, at::kFloat);
    two_ = {at::arange(h, at::kFloat), at::arange(n - h, at::kFloat) + 0.5};
    two_in_ = {at::empty({h}, at::kFloat), at::empty({n - h}, at::kFloat)};
    shapes_ = {{h}, {n - h}};
  }

  double run(const std::string& variant) {
    const auto t0 = Clock::now();
    if (variant == "raw1") raw({one_}, {one_in_});
    if (variant == "xport1") xport(one_, one_in_);
    if (variant == "eng1") eng1();
    if (variant == "raw2") raw(two_, two_in_);
    if (variant == "eng2") eng2();
    return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
  }

  bool ok() const { return ok_; }

 private:
  // Rank 0 sends `out` and receives the echo into `in`; rank 1 receives into
  // `in` and sends it back. Both post the receive before waiting on the send,
  // as the engine does.
  void raw(const std::vector<at::Tensor>& out, const std::vector<at::Tensor>& in) {
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    if (o_.rank == 0) {
      for (const at::Tensor& t : out) works.push_back(raw_send(t));
      for (const at::Tensor& t : in) works.push_back(raw_recv(t));
      for (auto& w : works) w->wait();
      for (size_t k = 0; k < out.size(); ++k) verify(in[k], out[k]);
    } else {
      for (const at::Tensor& t : in) works.push_back(raw_recv(t));
      for (auto& w : works) w->wait();
      works.clear();
      for (const at::Tensor& t : in) works.push_back(raw_send(t));
      for (auto& w : works) w->wait();
    }
  }

  c10::intrusive_ptr<c10d::Work> raw_send(const at::Tensor& t) {
    std::vector<at::Tensor> v{t};
    return raw_->send(v, peer_, kTag);
  }
  c10::intrusive_ptr<c10d::Work> raw_recv(const at::Tensor& t) {
    std::vector<at::Tensor> v{t};
    return raw_->recv(v, peer_, kTag);
  }

  void xport(const at::Tensor& out, const at::Tensor& in) {
    if (o_.rank == 0) {
      auto s = t_.isend(out, peer_, kTag);
      auto r = t_.irecv(in, peer_, kTag);
      s->wait();
      r->wait();
      verify(in, out);
    } else {
      t_.irecv(in, peer_, kTag)->wait();
      t_.isend(in, peer_, kTag)->wait();
    }
  }

  // engine.cpp's send_data / post_recv_data: wire::outgoing's messages
  // (small tensors packed, large ones alone), wire::Incoming's buffers from
  // the pool; rank 1 sends the tensors it received back the same way (a
  // stage's outputs).
  std::vector<at::Tensor> engine_echo(const std::vector<at::Tensor>& out) {
    std::vector<std::vector<int64_t>> shapes;
    std::vector<at::ScalarType> dtypes;
    for (const at::Tensor& t : out) {
      shapes.push_back(t.sizes().vec());
      dtypes.push_back(t.scalar_type());
    }
    std::vector<std::unique_ptr<ppc::runtime::Work>> sends, recvs;
    if (o_.rank == 0)
      for (const at::Tensor& m : wire::outgoing(out, {})) sends.push_back(t_.isend(m, peer_, kTag));
    wire::Incoming in(shapes, dtypes, pool_);
    for (const at::Tensor& b : in.messages()) recvs.push_back(t_.irecv(b, peer_, kTag));
    for (auto& w : sends) w->wait();
    for (auto& w : recvs) w->wait();
    if (!in.check({}).empty()) ok_ = false;
    std::vector<at::Tensor> got = in.tensors();
    if (o_.rank == 1) {
      // Posted together, then waited on, as the engine's sends are (each
      // waited on before the next is posted, the frame's handshake would
      // delay the tensor's).
      sends.clear();
      for (const at::Tensor& m : wire::outgoing(got, {})) sends.push_back(t_.isend(m, peer_, kTag));
      for (auto& w : sends) w->wait();
    }
    return got;
  }
  void eng1() {
    auto got = engine_echo({one_});
    if (o_.rank == 0) verify(got[0], one_);
  }
  void eng2() {
    auto got = engine_echo(two_);
    if (o_.rank == 0)
      for (size_t k = 0; k < got.size(); ++k) verify(got[k], two_[k]);
  }

  void verify(const at::Tensor& got, const at::Tensor& want) {
    if (o_.check && !at::equal(got, want)) ok_ = false;
  }

  const Options& o_;
  Transport& t_;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> raw_;
  int peer_;
  bool ok_ = true;
  wire::RecvPool pool_;
  at::Tensor one_, one_in_;
  std::vector<at::Tensor> two_, two_in_;
  std::vector<std::vector<int64_t>> shapes_;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(item);
  return out;
}

std::vector<int64_t> parse_sizes(const std::string& s) {
  std::vector<int64_t> out;
  for (const std::string& item : split(s)) out.push_back(std::atoll(item.c_str()));
  return out;
}

bool parse(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--check") {
      o.check = true;
      continue;
    }
    if (i + 1 >= argc) return false;
    const std::string v = argv[++i];
    if (k == "--rank")
      o.rank = std::atoi(v.c_str());
    else if (k == "--port")
      o.port = std::atoi(v.c_str());
    else if (k == "--raw-port")
      o.raw_port = std::atoi(v.c_str());
    else if (k == "--sizes")
      o.sizes = parse_sizes(v);
    else if (k == "--variants")
      o.variants = split(v);
    else if (k == "--reps")
      o.reps = std::atoi(v.c_str());
    else
      return false;
  }
  for (int64_t b : o.sizes)
    if (b < 8 || b % 8 != 0) return false;
  for (const std::string& v : o.variants)
    if (v != "raw1" && v != "xport1" && v != "eng1" && v != "raw2" && v != "eng2") return false;
  return (o.rank == 0 || o.rank == 1) && o.port > 0 && o.port < 65536 && o.raw_port > 0 && o.raw_port < 65536 &&
         o.reps >= 2 && !o.sizes.empty();
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o)) {
    std::cerr
        << "usage: transport_bench --rank 0|1 --port P --raw-port P2 --sizes B,B,... (multiples of 8) [--reps N >= 2] "
           "[--check] [--variants raw1,xport1,eng1,raw2,eng2]"
        << std::endl;
    return 2;
  }
  at::set_num_threads(1);
  try {
    auto t = ppc::runtime::connect_gloo(
        ppc::runtime::rendezvous_from_env("127.0.0.1", o.port, o.rank, 2, std::chrono::milliseconds(60000)));
    Bench bench(o, *t, raw_group(o.rank, o.raw_port));
    const std::vector<std::string> variants =
        o.variants.empty() ? std::vector<std::string>{"raw1", "xport1", "eng1", "raw2", "eng2"} : o.variants;
    for (int64_t bytes : o.sizes) {
      bench.prepare(bytes);
      std::map<std::string, std::vector<double>> us;
      // Each repetition starts with the next variant, so that none always
      // follows the same one.
      for (int rep = 0; rep < o.reps; ++rep)
        for (size_t k = 0; k < variants.size(); ++k) {
          const std::string& v = variants[(k + static_cast<size_t>(rep)) % variants.size()];
          us[v].push_back(bench.run(v) / 2);
        }
      if (o.rank != 0) continue;
      for (const std::string& v : variants) {
        std::cout << bytes << " " << v;
        for (double x : us[v]) std::cout << " " << x;
        std::cout << "\n";
      }
      std::cout.flush();
    }
    t->barrier();
    if (!bench.ok()) {
      std::cerr << "rank " << o.rank << ": FAIL: an echoed message differs from the one sent" << std::endl;
      return 1;
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "rank " << o.rank << ": error: " << e.what() << std::endl;
    std::fflush(nullptr);
    std::_Exit(2);
  }
}
