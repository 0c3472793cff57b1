// runtime/engine/wire: the header, packed messages and tags of pprun's wire format.
#include "runtime/engine/wire.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <set>
#include <vector>

#include "schemas/error.h"

using namespace ppc::runtime;

namespace {

TEST(Wire, HeaderRoundTripsDtypesAndShapes) {
  std::vector<at::Tensor> ts = {at::zeros({2, 3}), at::zeros({}, at::kLong), at::zeros({1, 2, 3, 4}, at::kBool)};
  at::Tensor h = wire::encode_header(ts);
  auto back = wire::allocate_from_header(h, 3);
  ASSERT_EQ(back.size(), 3u);
  for (size_t i = 0; i < ts.size(); ++i) {
    EXPECT_EQ(back[i].scalar_type(), ts[i].scalar_type());
    EXPECT_TRUE(back[i].sizes().equals(ts[i].sizes()));
  }
  EXPECT_THROW(wire::encode_header({at::zeros(std::vector<int64_t>(9, 1))}), ppc::Error);
  at::Tensor bad = h.clone();
  bad[0] = -3;
  EXPECT_THROW(wire::allocate_from_header(bad, 3), ppc::Error);
}

TEST(Wire, PackedTensorsRoundTripAlignedAndTyped) {
  at::Generator gen = at::detail::createCPUGenerator(9);
  std::vector<at::Tensor> ts = {at::randn({3, 5}, gen),  at::randint(-9, 9, {7}, gen, at::kLong),
                                at::randn({4}, gen) > 0, at::randn({}, gen).to(at::kDouble),
                                at::zeros({0, 3}),       at::randn({2, 3}, gen).t()};  // last: not contiguous
  at::Tensor bytes = wire::pack(ts);
  std::vector<std::vector<int64_t>> shapes;
  std::vector<at::ScalarType> dtypes;
  int64_t payload = 0;
  for (const auto& t : ts) {
    shapes.push_back(t.sizes().vec());
    dtypes.push_back(t.scalar_type());
    payload += t.numel() * static_cast<int64_t>(t.element_size());
  }
  EXPECT_EQ(bytes.scalar_type(), at::kByte);
  EXPECT_EQ(bytes.numel(), wire::packed_bytes(shapes, dtypes));
  EXPECT_GE(bytes.numel(), payload);
  EXPECT_LT(bytes.numel(), payload + wire::kPackAlign * static_cast<int64_t>(ts.size()));
  // What the receiver does: a fresh buffer filled with the message's bytes.
  at::Tensor received = at::empty_like(bytes);
  received.copy_(bytes);
  auto back = wire::unpack(received, shapes, dtypes);
  ASSERT_EQ(back.size(), ts.size());
  for (size_t k = 0; k < ts.size(); ++k) {
    SCOPED_TRACE(k);
    EXPECT_EQ(back[k].scalar_type(), ts[k].scalar_type());
    EXPECT_TRUE(back[k].sizes().equals(ts[k].sizes()));
    EXPECT_TRUE(at::equal(back[k], ts[k]));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(back[k].data_ptr()) % wire::kPackAlign,
              reinterpret_cast<uintptr_t>(received.data_ptr()) % wire::kPackAlign);
  }
  EXPECT_THROW(wire::unpack(received.narrow(0, 0, received.numel() - 1), shapes, dtypes), ppc::Error);
}

TEST(Wire, TagsAreDistinctPerDirectionEdgeMicroBatchAndSlot) {
  wire::Tags tags(4, 8, 3);
  std::set<uint32_t> seen;
  for (int d = 0; d < 2; ++d)
    for (int p = 0; p < 4; ++p)
      for (int c = 0; c < 4; ++c)
        for (int m = 0; m < 8; ++m)
          for (int k = 0; k < 3; ++k) {
            uint32_t t = tags.data(d, p, c, m, k);
            EXPECT_LT(t, wire::Tags::kControlBase);
            EXPECT_TRUE(seen.insert(t).second);
          }
  EXPECT_THROW(wire::Tags(1000, 1000, 1000), ppc::Error);
}

}  // namespace

// A receive buffer comes back only once nothing but the pool refers to its
// storage: a stage input (a view, the autograd graph's saved copy) keeps it.
TEST(Wire, RecvPoolReusesOnlyBuffersNothingElseHolds) {
  wire::RecvPool pool;
  at::Tensor a = pool.take(1024);
  const void* first = a.data_ptr();
  at::Tensor input = wire::unpack(a, {{16, 16}}, {at::kFloat})[0].detach().requires_grad_(true);
  a = at::Tensor();
  at::Tensor b = pool.take(1024);
  EXPECT_NE(b.data_ptr(), first);            // `input` still holds the first buffer
  at::Tensor saved = (input * input).sum();  // the graph saves `input`
  input = at::Tensor();
  at::Tensor c = pool.take(1024);
  EXPECT_NE(c.data_ptr(), first);
  EXPECT_NE(c.data_ptr(), b.data_ptr());
  saved = at::Tensor();  // the graph and its saved input are gone
  b = at::Tensor();
  c = at::Tensor();
  at::Tensor d = pool.take(1024);
  EXPECT_EQ(d.data_ptr(), first);
  EXPECT_NE(pool.take(512).data_ptr(), first);  // another size, another buffer
  d = at::Tensor();
  pool.trim();  // every buffer was taken in this round: all kept
  const void* again = pool.take(1024).data_ptr();
  EXPECT_EQ(again, first);
}

// Small tensors share one packed message; from kUnpackBytes up each travels
// alone, from its own memory; the receiver rebuilds them in order.
TEST(Wire, LargeTensorsTravelAloneSmallOnesPacked) {
  const int64_t big = wire::kUnpackBytes / 4;  // floats
  std::vector<at::Tensor> ts = {at::randn({big}), at::arange(5, at::kLong), at::randn({big + 3}).t(),
                                at::tensor({1, 0, 1}, at::kInt).to(at::kBool),
                                at::randn({2, big}).narrow(1, 0, big - 1)};
  auto l = wire::layout({{big}, {5}, {big + 3}, {3}, {2, big - 1}},
                        {at::kFloat, at::kLong, at::kFloat, at::kBool, at::kFloat});
  EXPECT_EQ(l.packed, (std::vector<int>{1, 3}));
  EXPECT_EQ(l.alone, (std::vector<int>{0, 2, 4}));
  const wire::MessageId id{3, 1, 2, 5, 7};
  std::vector<at::Tensor> msgs = wire::outgoing(ts, id);
  ASSERT_EQ(msgs.size(), 4u);
  EXPECT_EQ(msgs[1].data_ptr(), ts[0].data_ptr());  // no copy
  wire::RecvPool pool;
  std::vector<std::vector<int64_t>> shapes;
  std::vector<at::ScalarType> dtypes;
  for (const auto& t : ts) {
    shapes.push_back(t.sizes().vec());
    dtypes.push_back(t.scalar_type());
  }
  wire::Incoming in(shapes, dtypes, pool);
  ASSERT_EQ(in.messages().size(), msgs.size());
  for (size_t k = 0; k < msgs.size(); ++k) {
    ASSERT_EQ(in.messages()[k].nbytes(), msgs[k].nbytes());
    std::memcpy(in.messages()[k].data_ptr(), msgs[k].contiguous().data_ptr(), msgs[k].nbytes());
  }
  EXPECT_EQ(in.check(id), "");
  auto got = in.tensors();
  ASSERT_EQ(got.size(), ts.size());
  for (size_t k = 0; k < ts.size(); ++k) {
    EXPECT_EQ(got[k].scalar_type(), ts[k].scalar_type());
    EXPECT_TRUE(at::equal(got[k], ts[k])) << k;
  }
}

// The frame tells a corrupted header or payload, a short frame, another
// message than the expected one and other shapes, each in words.
// An edge with nothing to send (no input of the consumer needs a gradient):
// the sender sends no message (Engine::send_data), so the receiver posts none.
TEST(Wire, NothingExpectedPostsNoMessage) {
  wire::RecvPool pool;
  wire::Incoming none({}, {}, pool);
  EXPECT_TRUE(none.messages().empty());
  EXPECT_TRUE(none.tensors().empty());
  EXPECT_EQ(none.check(wire::MessageId{}), "");
  EXPECT_EQ(none.bytes(), 0);
}

TEST(Wire, FrameCheckNamesCorruptedShortAndWrongMessages) {
  const wire::MessageId id{4, 0, 1, 2, 3};
  const std::vector<at::Tensor> ts = {at::randn({8, 4}), at::arange(6, at::kLong)};
  const std::vector<std::vector<int64_t>> shapes = {{8, 4}, {6}};
  const std::vector<at::ScalarType> dtypes = {at::kFloat, at::kLong};
  wire::RecvPool pool;
  auto receive = [&](const at::Tensor& frame, int64_t n, const std::vector<std::vector<int64_t>>& want,
                     const wire::MessageId& expect) {
    wire::Incoming in(want, dtypes, pool);
    const at::Tensor& buf = in.messages()[0];
    std::memcpy(buf.data_ptr(), frame.data_ptr(), static_cast<size_t>(std::min<int64_t>(n, buf.numel())));
    return in.check(expect);
  };
  const at::Tensor frame = wire::outgoing(ts, id).at(0);
  const int64_t n = frame.numel();
  EXPECT_EQ(receive(frame, n, shapes, id), "");
  at::Tensor bad = frame.clone();
  bad.data_ptr<uint8_t>()[n / 2] ^= 0x10;  // in the payload
  EXPECT_NE(receive(bad, n, shapes, id).find("data fails its checksum"), std::string::npos);
  bad = frame.clone();
  bad.data_ptr<uint8_t>()[9] ^= 0x01;  // the step, in the header
  EXPECT_NE(receive(bad, n, shapes, id).find("header fails its checksum"), std::string::npos);
  EXPECT_NE(receive(frame, n - 8, shapes, id).find("shorter than the"), std::string::npos);
  EXPECT_NE(receive(frame, n, shapes, {4, 0, 1, 2, 2}).find("not the one expected"), std::string::npos);
  EXPECT_NE(receive(frame, n, shapes, {5, 0, 1, 2, 3}).find("step 5's activations of stage 1 -> 2, micro-batch 3"),
            std::string::npos);
  const at::Tensor other = wire::outgoing({at::randn({8, 4}), at::arange(6, at::kLong).view({2, 3})}, id).at(0);
  EXPECT_NE(receive(other, n, shapes, id).find("other dtypes or shapes"), std::string::npos);
}

// A receive posted with guessed shapes takes a redirect made for the same
// guess message for message (sizes and dtypes: a Gloo receive takes only a
// message of its size), and tells it from the tensors themselves.
TEST(Wire, RedirectCompletesAReceivePostedWithTheGuess) {
  const int64_t big = wire::kUnpackBytes / 4;
  const std::vector<std::vector<int64_t>> shapes = {{2, big}, {3, 4}, {big}};
  const std::vector<at::ScalarType> dtypes = {at::kFloat, at::kLong, at::kBool};
  const wire::MessageId id{2, 0, 1, 2, 5};
  wire::RecvPool pool;
  auto receive = [&](const std::vector<at::Tensor>& msgs, const wire::MessageId& expect, bool* redirected) {
    wire::Incoming in(shapes, dtypes, pool);
    EXPECT_EQ(in.messages().size(), msgs.size());
    for (size_t k = 0; k < msgs.size() && k < in.messages().size(); ++k) {
      EXPECT_EQ(in.messages()[k].scalar_type(), msgs[k].scalar_type()) << k;
      EXPECT_EQ(in.messages()[k].numel(), msgs[k].numel()) << k;
      std::memcpy(in.messages()[k].data_ptr(), msgs[k].contiguous().data_ptr(),
                  std::min(in.messages()[k].nbytes(), msgs[k].nbytes()));
    }
    std::string bad = in.check(expect);
    *redirected = bad.empty() && in.redirected();
    return bad;
  };
  bool redirected = true;
  const std::vector<at::Tensor> real = {at::randn({2, big}), at::arange(12, at::kLong).view({3, 4}),
                                        at::randn({big}) > 0};
  EXPECT_EQ(receive(wire::outgoing(real, id), id, &redirected), "");
  EXPECT_FALSE(redirected);
  const auto dummy = wire::redirect(shapes, dtypes, id);
  EXPECT_EQ(receive(dummy, id, &redirected), "");
  EXPECT_TRUE(redirected);
  // Checked as any frame: another micro-batch's, or a corrupted one, is an error.
  EXPECT_NE(receive(dummy, {2, 0, 1, 2, 4}, &redirected).find("not the one expected"), std::string::npos);
  auto flipped = dummy;
  flipped[0] = flipped[0].clone();
  flipped[0].data_ptr<uint8_t>()[20] ^= 0x04;
  EXPECT_NE(receive(flipped, id, &redirected).find("header fails its checksum"), std::string::npos);
  // A redirect made for other shapes than those posted is told, not taken as one.
  const auto other = wire::redirect(shapes, {at::kFloat, at::kDouble, at::kBool}, id);
  EXPECT_NE(receive(other, id, &redirected).find("other dtypes or shapes"), std::string::npos);
}

// Both ends of an edge guess from what every earlier step carried, by the
// micro-batch's model input shapes; nothing of the running step counts
// before its end, so the order of a step's sends and receives cannot make
// the two ends guess differently.
TEST(Wire, ShapeGuessesLearnAtStepEndsByInputShapes) {
  using Outcome = wire::ShapeGuesses::Outcome;
  const wire::Shapes a{{{4, 8}}, {at::kFloat}}, b{{{3, 8}}, {at::kFloat}};
  wire::ShapeGuesses g;
  EXPECT_EQ(g.guess("x [4]"), nullptr);
  g.saw(0, "x [4]", a, Outcome::None);
  g.saw(1, "x [3]", b, Outcome::None);
  EXPECT_EQ(g.guess("x [4]"), nullptr);  // not before the step's end
  g.end_step();
  ASSERT_NE(g.guess("x [4]"), nullptr);
  EXPECT_TRUE(*g.guess("x [4]") == a);
  EXPECT_TRUE(*g.guess("x [3]") == b);
  EXPECT_EQ(g.guess("x [5]"), nullptr);
  // The latest shapes win; the oldest inputs are forgotten past kMaxKeys.
  g.saw(0, "x [4]", b, Outcome::Miss);
  g.saw(1, "x [3]", b, Outcome::Hit);
  g.end_step();
  EXPECT_TRUE(*g.guess("x [4]") == b);
  for (size_t k = 0; k < wire::ShapeGuesses::kMaxKeys; ++k)
    g.saw(static_cast<int>(k), "y " + std::to_string(k), a, Outcome::None);
  g.end_step();
  EXPECT_EQ(g.guess("x [4]"), nullptr);
  EXPECT_NE(g.guess("y 0"), nullptr);
  // Shapes that follow the data: more misses than hits, and the edge stops guessing.
  g.saw(0, "y 0", b, Outcome::Miss);
  EXPECT_NE(g.guess("y 1"), nullptr);  // 1 hit, 2 misses: still guessing up to the step's end
  g.end_step();
  EXPECT_EQ(g.guess("y 1"), nullptr);
  EXPECT_EQ(g.guess("y 0"), nullptr);
}
