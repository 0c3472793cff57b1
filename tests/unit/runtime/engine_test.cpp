// The engine in one process: ranks as threads over the in-process fake
// transport, stages split by ppc from the TorchScript samples at test time.
// Every schedule and placement must compute the same thing as one rank
// running all stages: same outputs, same trained parameters.
#include "runtime/engine/engine.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/script.h>

#include "compiler/driver/driver.h"
#include "runtime/engine/pt_io.h"
#include "runtime/engine/wire.h"
#include "runtime/stages/stage_module.h"
#include "schemas/error.h"
#include "tests/unit/runtime/scratch.h"

namespace fs = std::filesystem;
using namespace ppc::runtime;

namespace {

fs::path scratch_root() { return ppc::test::scratch_root("ppc_engine_test_"); }
const bool kRemoveScratch = ppc::test::remove_scratch_at_exit("ppc_engine_test_");

fs::path scratch(const std::string& name) {
  fs::path p = scratch_root() / name;
  fs::remove_all(p);
  fs::create_directories(p.parent_path());
  return p;
}

// The reference run of the training tests: SGD with momentum, every stage on
// one rank (looped-bfs), saved to scratch(save).
EngineOptions sgd_on_one_rank(const std::vector<std::string>& files, int chunks, int steps, const std::string& save) {
  EngineOptions o;
  o.input_files = files;
  o.chunks = chunks;
  o.steps = steps;
  o.quiet = true;
  o.train = true;
  o.optimizer.kind = "sgd";
  o.optimizer.momentum = 0.9;
  o.optimizer.lr = 0.05;
  o.schedule = "looped-bfs";
  o.save_dir = scratch(save).string();
  return o;
}

// ppc's split of a sample: its traced TorchScript archive, or its ONNX export.
fs::path split(const std::string& sample, int stages, const std::string& file = "_traced.pt") {
  fs::path out = scratch(sample + file + "_" + std::to_string(stages));
  ppc::driver::SplitOptions o;
  o.model_path = std::string(PPC_SOURCE_DIR) + "/samples/" + sample + "/" + sample + file;
  o.stages = stages;
  o.out_dir = out.string();
  std::ostringstream sink;
  ppc::driver::split(o, sink, sink);
  return out;
}

fs::path split_onnx(const std::string& sample, int stages) { return split(sample, stages, ".onnx"); }

// Two batches for a model with input `x` of `features` and an output of `outputs`.
std::vector<std::string> batches(const std::string& name, int64_t features, int64_t outputs) {
  std::vector<std::string> files;
  at::Generator gen = at::detail::createCPUGenerator(42);
  for (int i = 0; i < 2; ++i) {
    fs::path f = scratch(name + "_batch" + std::to_string(i) + ".pt");
    save_tensor_dict(f.string(), {{"x", at::randn({6, features}, gen)}, {"target", at::randn({6, outputs}, gen)}});
    files.push_back(f.string());
  }
  return files;
}

// Counts what a rank sends on data tags (not the control ones), by dtype,
// and the redirect frames among them (wire::redirect).
class CountingTransport : public Transport {
 public:
  explicit CountingTransport(Transport& inner) : inner_(inner) {}
  int rank() const override { return inner_.rank(); }
  int world_size() const override { return inner_.world_size(); }
  std::unique_ptr<Work> isend(at::Tensor t, int dst, uint32_t tag) override {
    if (tag < wire::Tags::kControlBase) ++(t.scalar_type() == at::kLong ? int64_sends : other_sends);
    if (tag < wire::Tags::kControlBase && t.scalar_type() == at::kByte && t.numel() >= 8 &&
        std::memcmp(t.data_ptr(), "PCWIREDR", 8) == 0)
      ++redirects;
    return inner_.isend(t, dst, tag);
  }
  std::unique_ptr<Work> irecv(at::Tensor t, int src, uint32_t tag) override { return inner_.irecv(t, src, tag); }
  void all_reduce_sum(std::vector<at::Tensor>& ts, const std::vector<int>& ranks) override {
    inner_.all_reduce_sum(ts, ranks);
  }
  std::unique_ptr<Work> iall_reduce_sum(at::Tensor t, const std::vector<int>& ranks) override {
    ++async_reductions;
    return inner_.iall_reduce_sum(t, ranks);
  }
  void barrier() override { inner_.barrier(); }
  int int64_sends = 0, other_sends = 0, async_reductions = 0, redirects = 0;

 private:
  Transport& inner_;
};

struct Ran {
  std::string log;      ///< rank 0's
  int int64_sends = 0;  ///< over all ranks, on data tags
  int other_sends = 0;
  int async_reductions = 0;  ///< over all ranks
  int redirects = 0;         ///< over all ranks
};

// Runs `world` ranks as threads over counting fakes. Rethrows the failed
// rank's error (a failed rank's fake is closed at once, so its peers fail fast).
Ran run_ranks(const fs::path& manifest_dir, int world, const EngineOptions& options) {
  LoadedManifest lm = load_and_verify(manifest_dir.string());
  auto fakes = make_local_fakes(world, std::chrono::milliseconds(20000));
  std::vector<std::unique_ptr<CountingTransport>> counting;
  for (auto& f : fakes) counting.push_back(std::make_unique<CountingTransport>(*f));
  std::vector<std::thread> threads;
  std::vector<std::exception_ptr> errors(world);
  std::vector<std::ostringstream> logs(world);
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      try {
        run_pipeline(lm, *counting[r], options, logs[r]);
      } catch (...) {
        errors[r] = std::current_exception();
        fakes[r].reset();
      }
    });
  }
  for (auto& t : threads) t.join();
  // The failed rank's own error, not its peers' "connection closed".
  std::exception_ptr first;
  for (auto& e : errors) {
    if (!e) continue;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      if (std::string(x.what()).find("connection to rank") == std::string::npos) std::rethrow_exception(e);
    } catch (...) { std::rethrow_exception(e); }
    if (!first) first = e;
  }
  if (first) std::rethrow_exception(first);
  Ran out;
  out.log = logs[0].str();
  for (auto& c : counting) {
    out.int64_sends += c->int64_sends;
    out.other_sends += c->other_sends;
    out.async_reductions += c->async_reductions;
    out.redirects += c->redirects;
  }
  return out;
}

std::string run(const fs::path& manifest_dir, int world, const EngineOptions& options) {
  return run_ranks(manifest_dir, world, options).log;
}

void expect_same(const std::string& a, const std::string& b, double tol) {
  auto da = load_tensor_dict(a), db = load_tensor_dict(b);
  ASSERT_EQ(da.size(), db.size());
  for (size_t i = 0; i < da.size(); ++i) {
    EXPECT_EQ(da[i].first, db[i].first);
    ASSERT_TRUE(da[i].second.sizes().equals(db[i].second.sizes())) << da[i].first;
    double diff = (da[i].second - db[i].second).abs().max().item<double>();
    EXPECT_LE(diff, tol) << da[i].first << " differs by " << diff;
  }
}

struct Placement {
  std::string schedule;
  int world;
};

TEST(Engine, EverySchedulePlacementInfersAndTrainsLikeOneRank) {
  fs::path four = split("mlp", 4);
  auto data = batches("mlp", 512, 10);
  EngineOptions base;
  base.input_files = data;
  base.chunks = 4;
  base.steps = 2;
  base.quiet = true;

  // Reference: one rank runs all four stages.
  EngineOptions infer = base;
  infer.schedule = "looped-bfs";
  infer.output_path = scratch("out_ref.pt").string();
  run(four, 1, infer);
  EngineOptions train = base;
  train.train = true;
  train.optimizer.kind = "adam";
  train.optimizer.lr = 0.01;
  train.schedule = "looped-bfs";
  train.save_dir = scratch("ck_ref").string();
  run(four, 1, train);

  for (const Placement& p :
       {Placement{"gpipe", 4}, Placement{"1f1b", 4}, Placement{"interleaved-1f1b", 2}, Placement{"looped-bfs", 2},
        Placement{"zb-h1", 4}, Placement{"zb-v", 2}, Placement{"interleaved-zb", 2}, Placement{"dualpipev", 2}}) {
    SCOPED_TRACE(p.schedule + " on " + std::to_string(p.world) + " ranks");
    EngineOptions i = infer;
    i.schedule = p.schedule;
    i.output_path = scratch("out_" + p.schedule + ".pt").string();
    run(four, p.world, i);
    expect_same(i.output_path, infer.output_path, 1e-6);
    EngineOptions t = train;
    t.schedule = p.schedule;
    t.save_dir = scratch("ck_" + p.schedule).string();
    run(four, p.world, t);
    expect_same(t.save_dir + "/params.pt", train.save_dir + "/params.pt", 1e-6);
  }
}

TEST(Engine, EveryScheduleTrainsEverySampleLikeOneRank) {
  // Skip connections (skip: stage 0 feeds stages 1 and 2, gradients summed),
  // tied weights (tinygpt: replicated embedding), batch norm in train mode
  // (convnet), every schedule and placement against one rank.
  struct Sample {
    const char* name;
    const char* input;
    std::function<at::Tensor(at::Generator&)> make;
    std::vector<int64_t> out;
  };
  std::vector<Sample> samples = {
      {"skip",
       "x",
       [](at::Generator& g) {
         return at::randn({6, 32}, g);
       },
       {6, 8}},
      {"tinygpt",
       "idx",
       [](at::Generator& g) {
         return at::randint(0, 64, {6, 8}, g, at::kLong);
       },
       {6, 8, 64}},
      {"convnet",
       "x",
       [](at::Generator& g) {
         return at::randn({6, 3, 16, 16}, g);
       },
       {6, 10}},
  };
  for (const Sample& sample : samples) {
    SCOPED_TRACE(sample.name);
    fs::path four = split(sample.name, 4);
    std::vector<std::string> files;
    at::Generator gen = at::detail::createCPUGenerator(7);
    for (int i = 0; i < 2; ++i) {
      fs::path f = scratch(std::string(sample.name) + "_b" + std::to_string(i) + ".pt");
      save_tensor_dict(f.string(), {{sample.input, sample.make(gen)}, {"target", at::randn(sample.out, gen)}});
      files.push_back(f.string());
    }
    EngineOptions o = sgd_on_one_rank(files, 4, 2, std::string(sample.name) + "_ref");
    run(four, 1, o);
    for (const Placement& p : {Placement{"gpipe", 4}, Placement{"1f1b", 4}, Placement{"zb-h1", 4},
                               Placement{"interleaved-1f1b", 2}, Placement{"looped-bfs", 2}, Placement{"zb-v", 2},
                               Placement{"interleaved-zb", 2}, Placement{"dualpipev", 2}}) {
      SCOPED_TRACE(p.schedule + " on " + std::to_string(p.world) + " ranks");
      EngineOptions t = o;
      t.schedule = p.schedule;
      t.save_dir = scratch(std::string(sample.name) + "_" + p.schedule).string();
      run(four, p.world, t);
      expect_same(t.save_dir + "/params.pt", o.save_dir + "/params.pt", 1e-5);
    }
  }
}

TEST(Engine, DataParallelReplicasTrainAndInferLikeOneRankOnTheWholeBatch) {
  // D replicas of a P-rank pipeline, each on its shard of every batch of 6
  // (uneven shards where D does not divide 6), against one rank on the whole
  // batch: the same parameters (tinygpt: a tie across stages, summed within a
  // replica and across replicas), the same logged losses, the same outputs.
  struct Case {
    const char* sample;
    int stages, pipeline, dp;
    const char* schedule;
    const char* layout;
    int chunks;
  };
  const std::vector<Case> cases = {
      {"mlp", 2, 2, 2, "1f1b", "pipeline-major", 2},
      {"mlp", 2, 2, 3, "gpipe", "data-major", 2},
      {"tinygpt", 4, 2, 2, "interleaved-1f1b", "pipeline-major", 2},
      {"tinygpt", 2, 2, 3, "1f1b", "data-major", 2},
      {"skip", 4, 4, 2, "zb-h1", "pipeline-major", 3},
      {"mlp", 4, 1, 4, "looped-bfs", "pipeline-major", 1},
  };
  for (const Case& c : cases) {
    const std::string tag = std::string(c.sample) + "_" + c.schedule + "_" + std::to_string(c.pipeline) + "x" +
                            std::to_string(c.dp) + "_" + c.layout;
    SCOPED_TRACE(tag);
    fs::path dir = split(c.sample, c.stages);
    LoadedManifest lm = load_and_verify(dir.string());
    const std::string input = lm.manifest.model_inputs.at(0).name;
    std::vector<std::string> files;
    at::Generator gen = at::detail::createCPUGenerator(11);
    for (int i = 0; i < 2; ++i) {
      at::Tensor x = std::string(c.sample) == "tinygpt" ? at::randint(0, 64, {6, 8}, gen, at::kLong)
                     : std::string(c.sample) == "mlp"   ? at::randn({6, 512}, gen)
                                                        : at::randn({6, 32}, gen);
      std::vector<int64_t> out = std::string(c.sample) == "tinygpt" ? std::vector<int64_t>{6, 8, 64}
                                 : std::string(c.sample) == "mlp"   ? std::vector<int64_t>{6, 10}
                                                                    : std::vector<int64_t>{6, 8};
      fs::path f = scratch(tag + "_b" + std::to_string(i) + ".pt");
      save_tensor_dict(f.string(), {{input, x}, {"target", at::randn(out, gen)}});
      files.push_back(f.string());
    }
    EngineOptions o = sgd_on_one_rank(files, c.chunks, 2, tag + "_ref");
    o.quiet = false;
    std::string ref_log = run(dir, 1, o);
    EngineOptions d = o;
    d.schedule = c.schedule;
    d.dp = c.dp;
    d.dp_layout = c.layout;
    d.dp_bucket_mb = 0.001;  // several buckets per stage
    d.save_dir = scratch(tag + "_dp").string();
    Ran r = run_ranks(dir, c.pipeline * c.dp, d);
    expect_same(d.save_dir + "/params.pt", o.save_dir + "/params.pt", 1e-5);
    // Every rank of every replica started its stages' buckets, each step.
    EXPECT_GE(r.async_reductions, 2 * c.pipeline * c.dp);
    auto losses = [](const std::string& log) {
      std::vector<double> v;
      std::istringstream in(log);
      std::string line;
      while (std::getline(in, line))
        if (auto k = line.find("loss "); k != std::string::npos) v.push_back(std::stod(line.substr(k + 5)));
      return v;
    };
    auto want = losses(ref_log), got = losses(r.log);
    ASSERT_EQ(got.size(), 2u) << r.log;
    ASSERT_EQ(want.size(), 2u) << ref_log;
    for (size_t i = 0; i < 2; ++i) EXPECT_NEAR(got[i], want[i], 1e-5 * std::max(1.0, std::abs(want[i])));
    EXPECT_NE(r.log.find(std::to_string(c.dp) + " replica"), std::string::npos) << r.log;
    // Inference: replica 0 writes every replica's outputs, in batch order
    // (both batches: step 1's samples, then step 2's).
    EngineOptions i = o;
    i.train = false;
    i.save_dir.clear();
    i.output_path = scratch(tag + "_out_ref.pt").string();
    run(dir, 1, i);
    EngineOptions di = d;
    di.train = false;
    di.save_dir.clear();
    di.output_path = scratch(tag + "_out_dp.pt").string();
    run(dir, c.pipeline * c.dp, di);
    expect_same(di.output_path, i.output_path, 1e-5);  // float32 logits of other micro-batch sizes
  }
}

TEST(Engine, DataParallelSyntheticBatchesAreShardsOfOneGlobalBatch) {
  // Every replica makes the same seeded global batch and its targets (from
  // the whole batch's inputs), and trains on its shard: 3 replicas of 12
  // samples train as one rank on all 12.
  fs::path two = split_onnx("mlp", 2);
  EngineOptions o;
  o.synthetic = true;
  o.batch_size = 12;
  o.seed = 3;
  o.chunks = 2;
  o.steps = 2;
  o.quiet = true;
  o.train = true;
  o.optimizer.lr = 0.05;
  o.schedule = "looped-bfs";
  o.save_dir = scratch("dp_syn_ref").string();
  run(two, 1, o);
  EngineOptions d = o;
  d.schedule = "1f1b";
  d.dp = 3;
  d.save_dir = scratch("dp_syn").string();
  run(two, 6, d);
  expect_same(d.save_dir + "/params.pt", o.save_dir + "/params.pt", 1e-6);
}

TEST(Engine, DataParallelRefusesWhatItCannotSplit) {
  fs::path two = split("mlp", 2);
  auto data = batches("mlp_dp_bad", 512, 10);  // batches of 6
  EngineOptions o;
  o.input_files = data;
  o.train = true;
  o.quiet = true;
  o.chunks = 2;
  o.dp = 4;  // 4 replicas x 2 micro-batches > 6 samples
  try {
    check_data(load_and_verify(two.string()).manifest, o);
    FAIL() << "expected ppc::Error";
  } catch (const ppc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot be split into 4 replicas x 2 micro-batches"), std::string::npos)
        << e.what();
  }
  o.dp = 3;  // does not divide 4 ranks
  try {
    run(two, 4, o);
    FAIL() << "expected ppc::Error";
  } catch (const ppc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("--dp 3 does not divide the 4 ranks"), std::string::npos) << e.what();
  }
}

// Trains `dir` for two steps (one per batch file, 3 micro-batches) on one
// rank and on `ranks` ranks with 1F1B, expects the same parameters, and
// returns what the ranks sent.
Ran train_like_one_rank(const fs::path& dir, int ranks, const std::vector<std::string>& files, const std::string& tag) {
  EngineOptions o;
  o.input_files = files;
  o.chunks = 3;
  o.steps = 2;
  o.quiet = true;
  o.train = true;
  o.optimizer.kind = "sgd";
  o.optimizer.lr = 0.05;
  o.schedule = "looped-bfs";
  o.save_dir = scratch(tag + "_1").string();
  run(dir, 1, o);
  EngineOptions p = o;
  p.schedule = "1f1b";
  p.save_dir = scratch(tag + "_" + std::to_string(ranks)).string();
  Ran r = run_ranks(dir, ranks, p);
  expect_same(p.save_dir + "/params.pt", o.save_dir + "/params.pt", 1e-5);
  return r;
}

TEST(Engine, ActivationsOfShapesTheManifestFixesTravelWithoutHeaders) {
  // skip's ONNX interfaces are [batch, 64] floats: no shape header; its
  // TorchScript split declares no shapes, so every activation has one.
  // Batches of 7: micro-batches of 3, 2 and 2, the receiver sizes each.
  std::vector<std::string> files;
  at::Generator gen = at::detail::createCPUGenerator(3);
  for (int i = 0; i < 2; ++i) {
    fs::path f = scratch("hdr_b" + std::to_string(i) + ".pt");
    save_tensor_dict(f.string(), {{"x", at::randn({7, 32}, gen)}, {"target", at::randn({7, 8}, gen)}});
    files.push_back(f.string());
  }
  fs::path onnx4 = split_onnx("skip", 4), ts4 = split("skip", 4);
  Ran r = train_like_one_rank(onnx4, 4, files, "hdr_onnx");
  EXPECT_EQ(r.int64_sends, 0);
  EXPECT_GT(r.other_sends, 0);
  Ran t = train_like_one_rank(ts4, 4, files, "hdr_ts");
  EXPECT_GT(t.int64_sends, 0);
  EXPECT_GT(t.other_sends, 0);
  // However many tensors a stage pair carries (a skip beside the main path),
  // one data message per pair, micro-batch (3) and step (2) each way, and a
  // header before each forward one when shapes are not fixed. The parameters
  // match one rank's, so the packed tensors arrived where they belong.
  fs::path onnx2 = split_onnx("skip", 2), ts2 = split("skip", 2);
  Ran r2 = train_like_one_rank(onnx2, 2, files, "pack_onnx"), t2 = train_like_one_rank(ts2, 2, files, "pack_ts");
  int packed = 0;
  for (const auto& [dir, ran, headers] : {std::tuple{onnx4, r, false}, std::tuple{ts4, t, true},
                                          std::tuple{onnx2, r2, false}, std::tuple{ts2, t2, true}}) {
    SCOPED_TRACE(dir.string());
    nlohmann::json man = nlohmann::json::parse(std::ifstream(dir / "manifest.json"));
    std::set<std::pair<int, int>> pairs;
    int tensors = 0;
    for (const auto& st : man["stages"])
      for (const auto& in : st["inputs"])
        if (in.value("source", "") != "model_input") {
          pairs.insert({in["from_stage"].get<int>(), st["index"].get<int>()});
          ++tensors;
        }
    packed += tensors > static_cast<int>(pairs.size());
    EXPECT_EQ(ran.other_sends, static_cast<int>(pairs.size()) * 3 * 2 * 2);
    // Headers in the first step only: the second's micro-batches have the
    // model input shapes of the first's, so both ends guess their shapes.
    EXPECT_EQ(ran.int64_sends, headers ? static_cast<int>(pairs.size()) * 3 : 0);
    EXPECT_EQ(ran.redirects, 0);
  }
  EXPECT_GE(packed, 2);  // the 2-stage splits cut across skips
}

// Batch files of `sizes` samples for skip (x [n, 32], target [n, 8]).
std::vector<std::string> skip_batches(const std::string& tag, const std::vector<int64_t>& sizes) {
  std::vector<std::string> files;
  at::Generator gen = at::detail::createCPUGenerator(13);
  for (size_t i = 0; i < sizes.size(); ++i) {
    fs::path f = scratch(tag + "_b" + std::to_string(i) + ".pt");
    save_tensor_dict(f.string(), {{"x", at::randn({sizes[i], 32}, gen)}, {"target", at::randn({sizes[i], 8}, gen)}});
    files.push_back(f.string());
  }
  return files;
}

// Trains `dir` on `files` (one step each, `chunks` micro-batches) on one
// rank and on `ranks` with `schedule`: the same parameters; returns what the ranks sent.
Ran train_steps_like_one_rank(const fs::path& dir, int ranks, const std::string& schedule,
                              const std::vector<std::string>& files, const std::string& tag, int chunks) {
  EngineOptions o = sgd_on_one_rank(files, chunks, static_cast<int>(files.size()), tag + "_1");
  run(dir, 1, o);
  EngineOptions p = o;
  p.schedule = schedule;
  p.save_dir = scratch(tag + "_" + std::to_string(ranks)).string();
  Ran r = run_ranks(dir, ranks, p);
  expect_same(p.save_dir + "/params.pt", o.save_dir + "/params.pt", 1e-5);
  return r;
}

TEST(Engine, HeaderedActivationsAreGuessedFromEarlierStepsWithTheSameInputShapes) {
  // TorchScript skip: batches of 8, 7, 8, 7 samples in 4 micro-batches
  // (2,2,2,2 and 2,2,2,1). A micro-batch's shapes are guessed from an
  // earlier step's micro-batch with the same input shapes, so headers go
  // with step 1's four micro-batches and step 2's last one (1 sample: not
  // seen before), nothing after; no guess is wrong.
  const fs::path ts4 = split("skip", 4);
  const auto files = skip_batches("guess", {8, 7, 8, 7});
  // Stage pairs that cross ranks, stage s on rank s % ranks.
  auto remote_pairs = [&](int ranks) {
    nlohmann::json man = nlohmann::json::parse(std::ifstream(ts4 / "manifest.json"));
    std::set<std::pair<int, int>> pairs;
    for (const auto& st : man["stages"])
      for (const auto& in : st["inputs"])
        if (in.value("source", "") != "model_input" &&
            in["from_stage"].get<int>() % ranks != st["index"].get<int>() % ranks)
          pairs.insert({in["from_stage"].get<int>(), st["index"].get<int>()});
    return static_cast<int>(pairs.size());
  };
  ASSERT_GE(remote_pairs(4), 3);
  for (const char* schedule : {"1f1b", "gpipe"}) {
    SCOPED_TRACE(schedule);
    Ran r = train_steps_like_one_rank(ts4, 4, schedule, files, std::string("guess_") + schedule, 4);
    EXPECT_EQ(r.int64_sends, remote_pairs(4) * (4 + 1));
    EXPECT_EQ(r.redirects, 0);
  }
  // Two stages per rank (interleaved): stage s on rank s % 2.
  ASSERT_GE(remote_pairs(2), 3);
  Ran r = train_steps_like_one_rank(ts4, 2, "interleaved-1f1b", files, "guess_interleaved", 4);
  EXPECT_EQ(r.int64_sends, remote_pairs(2) * (4 + 1));
  EXPECT_EQ(r.redirects, 0);
}

// A TorchScript model whose activations' shapes follow the data: stage 0
// sends h [n, 16] and the rows of h whose first column exceeds 0.1 (a
// boolean mask), which stage 1 sums into every row of its output.
fs::path data_dependent_split() {
  at::Generator gen = at::detail::createCPUGenerator(21);
  torch::jit::Module a("A");
  a.register_parameter("w", at::randn({16, 16}, gen) * 0.3, false);
  a.register_parameter("b", at::zeros({16}), false);
  a.define(R"JIT(
def forward(self, x):
    h = torch.relu(torch.matmul(x, self.w) + self.b)
    sel = h[h[:, 0] > 0.1]
    return h, sel
)JIT");
  torch::jit::Module m("DataDependent");
  m.register_module("a", a);
  m.register_parameter("wb", at::randn({16, 4}, gen) * 0.3, false);
  m.register_parameter("wc", at::randn({16, 4}, gen) * 0.3, false);
  m.define(R"JIT(
def forward(self, x):
    h, sel = self.a.forward(x)
    return torch.matmul(h, self.wb) + torch.matmul(sel, self.wc).sum(0, keepdim=True)
)JIT");
  const fs::path model = scratch("data_dependent.pt"), spec = scratch("data_dependent_spec.json");
  m.save(model.string());
  std::ofstream(spec) << R"({"version": 1, "split_points": [{"module": "a", "at": "end"}]})";
  ppc::driver::SplitOptions o;
  o.model_path = model.string();
  o.spec_path = spec.string();
  o.out_dir = scratch("data_dependent_split").string();
  std::ostringstream sink;
  ppc::driver::split(o, sink, sink);
  return o.out_dir;
}

TEST(Engine, AWrongShapeGuessIsRedirectedAndTrainsLikeOneRank) {
  // Micro-batches of 2 samples every step, but 0, 1 or 2 selected rows:
  // guesses from the last step miss, the sender redirects the posted receive
  // and sends the tensors behind a header, and the parameters are one
  // rank's. Once misses outnumber hits the edge stops guessing.
  const fs::path dir = data_dependent_split();
  std::vector<std::string> files;
  at::Generator gen = at::detail::createCPUGenerator(4);
  for (int i = 0; i < 6; ++i) {
    fs::path f = scratch("dd_b" + std::to_string(i) + ".pt");
    save_tensor_dict(f.string(), {{"x", at::randn({6, 16}, gen)}, {"target", at::randn({6, 4}, gen)}});
    files.push_back(f.string());
  }
  Ran r = train_steps_like_one_rank(dir, 2, "1f1b", files, "dd", 3);
  EXPECT_GT(r.redirects, 0);
  EXPECT_GT(r.int64_sends, 3);  // headers after step 1: the redirected micro-batches' and, once off, all
  // Inference: the same outputs as one rank.
  EngineOptions i;
  i.input_files = files;
  i.chunks = 3;
  i.steps = 6;
  i.quiet = true;
  i.schedule = "looped-bfs";
  i.output_path = scratch("dd_out_1.pt").string();
  run(dir, 1, i);
  EngineOptions p = i;
  p.schedule = "gpipe";
  p.output_path = scratch("dd_out_2.pt").string();
  Ran ri = run_ranks(dir, 2, p);
  expect_same(p.output_path, i.output_path, 1e-6);
  EXPECT_GT(ri.redirects, 0);
}

TEST(Engine, SequenceDimsTheBatchFixesTravelWithoutHeaders) {
  // tinygpt's activations are [batch, seq, 32]: ppc names the dim ONNX's
  // inference left as unk__1 (it follows seq through the position
  // embedding), and every rank reads seq off the batch it loaded. Two steps
  // with different batch and sequence sizes, both without a header.
  fs::path three = split_onnx("tinygpt", 3);
  nlohmann::json man = nlohmann::json::parse(std::ifstream(three / "manifest.json"));
  ASSERT_FALSE(man["edges"].empty());
  for (const auto& e : man["edges"])
    EXPECT_EQ(e["shape"], nlohmann::json::parse(R"(["batch", "seq", 32])")) << e.dump();
  std::vector<std::string> files;
  at::Generator gen = at::detail::createCPUGenerator(5);
  for (auto [b, t] : {std::pair<int64_t, int64_t>{6, 8}, {5, 11}}) {
    fs::path f = scratch("seq_b" + std::to_string(t) + ".pt");
    save_tensor_dict(f.string(),
                     {{"idx", at::randint(0, 64, {b, t}, gen, at::kLong)}, {"target", at::randn({b, t, 64}, gen)}});
    files.push_back(f.string());
  }
  Ran r = train_like_one_rank(three, 3, files, "seq");
  EXPECT_EQ(r.int64_sends, 0);
  EXPECT_GT(r.other_sends, 0);
}

TEST(Engine, ProfilesTimeEveryOnnxNodeOnEveryRank) {
  fs::path four = split_onnx("skip", 4);
  EngineOptions o;
  o.input_files = batches("prof", 32, 8);
  o.chunks = 2;
  o.steps = 3;
  o.quiet = true;
  o.train = true;
  o.schedule = "looped-bfs";
  o.profile_path = scratch("prof.json").string();
  run(four, 2, o);  // stages 1 and 3 on rank 1: their times travel to rank 0
  nlohmann::json prof = nlohmann::json::parse(std::ifstream(o.profile_path));
  nlohmann::json man = nlohmann::json::parse(std::ifstream(four / "manifest.json"));
  ASSERT_EQ(prof["stages"].size(), 4u);
  for (size_t s = 0; s < 4; ++s) {
    SCOPED_TRACE("stage " + std::to_string(s));
    const auto& st = prof["stages"][s];
    ASSERT_TRUE(st.contains("nodes")) << st.dump();
    double sum = 0, sum_b = 0;
    std::set<std::string> names;
    for (const auto& n : st["nodes"]) {
      EXPECT_GE(n["f"].get<double>(), 0.0);
      EXPECT_GE(n["b"].get<double>(), 0.0);
      sum += n["f"].get<double>();
      sum_b += n["b"].get<double>();
      names.insert(n["node"].get<std::string>());
    }
    // Inside the stage's forward, which also detaches inputs (and computes the loss).
    EXPECT_GT(sum, 0.0);
    EXPECT_LE(sum, st["f"].get<double>());
    // Inside its backward, from the first node's gradient on.
    EXPECT_GT(sum_b, 0.0);
    EXPECT_LE(sum_b, st["b"].get<double>());
    // A stage's last node ends its last kernel (fused or not), under ppc's name.
    EXPECT_TRUE(names.count(man["stages"][s]["nodes"]["last"].get<std::string>())) << st.dump();
  }
  // The messages between the ranks, per stage pair: the tensors that go on
  // the wire for a micro-batch of 3 samples, activations forward, gradients back.
  // Looped BFS puts stage s on rank s % 2; an edge within a rank sends nothing.
  std::map<std::pair<int, int>, std::vector<std::vector<int64_t>>> want;
  for (const auto& st : man["stages"])
    for (const auto& in : st["inputs"]) {
      if (in["source"] != "edge") continue;
      const int from = in["from_stage"].get<int>(), to = st["index"].get<int>();
      if (from % 2 == to % 2) continue;
      ASSERT_EQ(in["dtype"], "float32") << in.dump();
      std::vector<int64_t> dims;
      for (const auto& d : in["shape"]) dims.push_back(d.is_string() ? 3 : d.get<int64_t>());
      want[{from, to}].push_back(dims);
    }
  ASSERT_EQ(prof["edges"].size(), want.size()) << prof["edges"].dump();
  for (const auto& e : prof["edges"]) {
    auto it = want.find({e["from"].get<int>(), e["to"].get<int>()});
    ASSERT_NE(it, want.end()) << e.dump();
    // The tensors' bytes (float32), without the frame's header and padding.
    double bytes = 0;
    for (const auto& dims : it->second) {
      double n = 4;
      for (int64_t d : dims) n *= static_cast<double>(d);
      bytes += n;
    }
    EXPECT_EQ(e["bytes"].get<double>(), bytes) << e.dump();
    EXPECT_EQ(e["grad_bytes"].get<double>(), bytes) << e.dump();
  }
  // And the calibration charges them at the ping-pong's bandwidth.
  EXPECT_EQ(prof["link"]["message_bytes_per_second"], prof["link"]["bytes_per_second"]);
  EXPECT_GT(prof["link"]["bytes_per_second"].get<double>(), 0.0);
}

TEST(Engine, AnActivationOfAnotherShapeThanTheManifestSaysIsAnError) {
  fs::path two = split_onnx("mlp", 2);
  // Declare the cut value one column wider than the stages compute.
  nlohmann::json m = nlohmann::json::parse(std::ifstream(two / "manifest.json"));
  auto& in = m["stages"][1]["inputs"][0];
  ASSERT_EQ(in["source"], "edge");
  int64_t width = in["shape"][1].get<int64_t>();
  in["shape"][1] = width + 1;
  std::ofstream(two / "manifest.json") << m.dump(2);
  EngineOptions o;
  o.input_files = batches("hdr_bad", 512, 10);
  o.chunks = 2;
  o.quiet = true;
  try {
    run(two, 2, o);
    FAIL() << "no error";
  } catch (const ppc::Error& e) {
    std::string want = "is float32 [3, " + std::to_string(width) + "], but the manifest declares float32 [3, " +
                       std::to_string(width + 1) + "]";
    EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
  } catch (const std::exception& e) { FAIL() << "not the sender's error: " << e.what(); }
}

TEST(Engine, OneFOneBHoldsAtMostPMicroBatchesGPipeAllOfThem) {
  fs::path four = split("mlp", 4);
  EngineOptions o;
  o.input_files = batches("mem", 512, 10);
  o.chunks = 6;
  o.train = true;
  for (const char* s : {"1f1b", "gpipe"}) {
    o.schedule = s;
    std::string log = run(four, 4, o);
    std::string want = std::string("held at most ") + (o.schedule == "1f1b" ? "4" : "6") + " of 6";
    EXPECT_NE(log.find(want), std::string::npos) << log;
  }
}

TEST(Engine, BadBatchesAreErrorsNamingTheFile) {
  fs::path two = split("mlp", 2);
  fs::path f = scratch("nokey.pt");
  save_tensor_dict(f.string(), {{"y", at::zeros({4, 512})}});
  EngineOptions o;
  o.input_files = {f.string()};
  o.quiet = true;
  try {
    run(two, 2, o);
    FAIL() << "no error";
  } catch (const ppc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("nokey.pt: no entry for model input 'x' (entries: 'y')"), std::string::npos)
        << e.what();
  }
}

// A TorchScript stage records eager autograd nodes on every call: LibTorch's
// profiling executor, left to optimize, wraps the stage in one differentiable
// graph from its second call on, whose backward runs autodiff's formulas in
// the interpreter (slower per micro-batch than eager's kernels) and always
// computes every gradient (zero bubble needs the input gradients alone). The
// switch is LibTorch's per-thread flag: the stage sets it only while it runs.
TEST(Engine, TorchScriptStagesRecordEagerAutogradOnEveryCall) {
  LoadedManifest lm = load_and_verify(split("mlp", 2).string());
  std::vector<std::unique_ptr<StageModule>> stages;
  for (int s = 0; s < 2; ++s) {
    stages.push_back(load_stage(lm, s));
    stages.back()->set_training(true);
  }
  for (int call = 0; call < 4; ++call) {
    at::Tensor x = at::randn({4, 512}).requires_grad_(true);
    at::Tensor h = stages[0]->forward({x}).at(0);
    at::Tensor h_in = h.detach().requires_grad_(true);
    at::Tensor y = stages[1]->forward({h_in}).at(0);
    EXPECT_TRUE(torch::jit::getGraphExecutorOptimize()) << "the stage left the executor's switch off";
    for (const at::Tensor* t : {&h, &y}) {
      ASSERT_TRUE(t->grad_fn()) << "call " << call;
      EXPECT_EQ(t->grad_fn()->name().find("DifferentiableGraph"), std::string::npos)
          << "call " << call << ": " << t->grad_fn()->name();
    }
    y.sum().backward();
    h.backward(h_in.grad());
    EXPECT_TRUE(x.grad().defined());
  }
}

}  // namespace
