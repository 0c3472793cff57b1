// The profile file: pprun writes it, ppc and pprun --simulate read it through
// the same reader; bad files are one error naming the file.
#include "schemas/profile.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "schemas/error.h"

using namespace ppc::profile;

namespace {

std::string write_temp(const std::string& name, const std::string& text) {
  std::string path = "/tmp/ppc_profile_test_" + std::to_string(::getpid()) + "_" + name;
  std::ofstream(path) << text;
  return path;
}

std::string error_of(const std::string& text) {
  std::string path = write_temp("bad.json", text);
  try {
    read_profile(path);
  } catch (const ppc::Error& e) {
    std::remove(path.c_str());
    std::string m = e.what();
    EXPECT_EQ(m.rfind(path + ": ", 0), 0u) << m;  // names the file first
    return m.substr(path.size() + 2);
  }
  std::remove(path.c_str());
  return "no error";
}

}  // namespace

TEST(Profile, RoundTripsEveryField) {
  Profile p;
  p.schedule = "zb-h1";
  p.chunks = 4;
  p.steps_measured = 9;
  p.source_sha256 = "ab12";
  p.micro_batch_size = 2.5;
  p.loss_stage = 1;
  p.loss_ms = 0.125;
  p.has_link = true;
  p.latency_ms = 0.04;
  p.bytes_per_second = 3e9;
  p.message_ms = 0.5;
  p.message_bytes_per_second = 1.5e9;
  p.message_cpu_ms = 0.375;
  p.message_cpu_bytes_per_second = 2.5e9;
  p.step_ms = 12.0;
  p.simulated_step_ms = 10.0;
  p.overhead_ms = 1.5;
  p.host = {2, 3, 1, 3};  // 3 ranks of 1 thread on 2 cores, all of the run's
  StageTimes a;
  a.f = 1;
  a.b = 2;
  a.first_node = "n0";
  a.last_node = "n3";
  a.nodes = {{"n0", 0.25, 0.75}, {"n3", 0.5, 0.0}};
  a.cpu_ms = 2.25;
  StageTimes b;
  b.f = 3;
  b.i = 2;
  b.w = 1.5;
  b.first_node = b.last_node = "n4";
  p.stages = {a, b};
  p.edges = {{0, 1, 4096, 2048.5}};
  std::string text = profile_json(p);
  std::string path = write_temp("rt.json", text);
  Profile q = read_profile(path);
  std::remove(path.c_str());
  EXPECT_EQ(q.file, path);
  EXPECT_EQ(q.schedule, "zb-h1");
  EXPECT_EQ(q.chunks, 4);
  EXPECT_EQ(q.steps_measured, 9);
  EXPECT_EQ(q.source_sha256, "ab12");
  EXPECT_EQ(q.micro_batch_size, 2.5);
  EXPECT_EQ(q.loss_stage, 1);
  EXPECT_EQ(q.loss_ms, 0.125);
  EXPECT_TRUE(q.has_link);
  EXPECT_EQ(q.latency_ms, 0.04);
  EXPECT_EQ(q.bytes_per_second, 3e9);
  EXPECT_EQ(q.message_ms, 0.5);
  EXPECT_EQ(q.message_bytes_per_second, 1.5e9);
  EXPECT_EQ(q.message_cpu_ms, 0.375);
  EXPECT_EQ(q.message_cpu_bytes_per_second, 2.5e9);
  ASSERT_EQ(q.edges.size(), 1u);
  EXPECT_EQ(q.edges[0].from, 0);
  EXPECT_EQ(q.edges[0].to, 1);
  EXPECT_EQ(q.edges[0].bytes, 4096);
  EXPECT_EQ(q.edges[0].grad_bytes, 2048.5);
  EXPECT_EQ(q.step_ms, 12.0);
  EXPECT_EQ(q.simulated_step_ms, 10.0);
  EXPECT_EQ(q.overhead_ms, 1.5);
  EXPECT_EQ(q.host.cores, 2);
  EXPECT_EQ(q.host.local_ranks, 3);
  EXPECT_EQ(q.host.threads, 1);
  EXPECT_EQ(q.host.ranks, 3);
  EXPECT_TRUE(q.host.oversubscribed());
  ASSERT_EQ(q.stages.size(), 2u);
  EXPECT_EQ(q.stages[0].nodes, a.nodes);
  EXPECT_EQ(q.stages[0].first_node, "n0");
  EXPECT_EQ(q.stages[1].i, 2);
  EXPECT_EQ(q.stages[1].w, 1.5);
  EXPECT_TRUE(q.stages[1].nodes.empty());
  EXPECT_EQ(q.stages[0].cpu_ms, 2.25);
  EXPECT_EQ(q.stages[1].cpu_ms, -1);  // not recorded: not written, and read as absent
  EXPECT_EQ(text.find("\"cpu_ms\""), text.rfind("\"cpu_ms\""));
  EXPECT_EQ(profile_json(q), text);  // byte-identical again
  // Without a loss stage or a link (inference on one rank): neither is written.
  p.loss_stage = -1;
  p.has_link = false;
  text = profile_json(p);
  EXPECT_EQ(text.find("loss_ms"), std::string::npos);
  EXPECT_EQ(text.find("link"), std::string::npos);
  // A host is oversubscribed when its ranks' threads outnumber its cores;
  // not when that is unknown.
  EXPECT_FALSE((Host{4, 2, 2}.oversubscribed()));
  EXPECT_TRUE((Host{4, 2, 3}.oversubscribed()));
  EXPECT_FALSE((Host{2, 0, 4}.oversubscribed()));
  EXPECT_FALSE((Host{0, 8, 8}.oversubscribed()));
}

TEST(Profile, AsWorkScalesEachStageToItsCpuTimeOnlyOnAnOversubscribedHost) {
  Profile p;
  p.host = {2, 3, 1};  // 3 ranks of 1 thread on 2 cores
  p.loss_stage = 1;
  p.loss_ms = 0.5;
  StageTimes a;
  a.f = 1;
  a.b = 3;
  a.cpu_ms = 2;  // half its wall time
  a.nodes = {{"n0", 0.5, 2}, {"n1", 0.5, 1}};
  StageTimes b;
  b.f = 2;
  b.i = 1;
  b.w = 1;
  b.cpu_ms = 3;  // three quarters of F + I + W
  StageTimes c;
  c.f = 1;
  c.b = 1;
  c.cpu_ms = 2.5;  // above its wall time (clock granularity): left as it is
  p.stages = {a, b, c};
  EXPECT_TRUE(p.has_work_times());
  Profile w = p.as_work();
  EXPECT_EQ(w.stages[0].f, 0.5);
  EXPECT_EQ(w.stages[0].b, 1.5);
  EXPECT_EQ(w.stages[0].nodes, (std::vector<StageTimes::Node>{{"n0", 0.25, 1}, {"n1", 0.25, 0.5}}));
  EXPECT_EQ(w.stages[1].f, 1.5);
  EXPECT_EQ(w.stages[1].i, 0.75);
  EXPECT_EQ(w.stages[1].w, 0.75);
  EXPECT_EQ(w.stages[1].total_ms(), 3);
  EXPECT_EQ(w.loss_ms, 0.375);  // its stage's factor
  EXPECT_EQ(w.stages[2].total_ms(), 2);
  EXPECT_EQ(w.host.cores, 2);
  EXPECT_DOUBLE_EQ(w.host.rank_cores(), 2);
  EXPECT_DOUBLE_EQ((Host{8, 2, 4}.rank_cores()), 2);  // cores per rank's threads
  EXPECT_EQ((Host{0, 2, 4}.rank_cores()), 0);
  // A host with a core per rank and thread: the wall times are the work.
  Profile own = p;
  own.host = {4, 3, 1};
  EXPECT_EQ(own.as_work().stages[0].f, 1);
  EXPECT_FALSE(own.has_work_times());
  // A stage without its CPU time (several threads per rank): nothing scaled.
  Profile partial = p;
  partial.stages[1].cpu_ms = -1;
  EXPECT_EQ(partial.as_work().stages[0].f, 1);
  EXPECT_FALSE(partial.has_work_times());
}

TEST(Profile, ARunOnTheProfiledHostSharesItsCoresOnlyWhereTheTimesAreWork) {
  Profile p;
  StageTimes t;
  t.f = 1;
  t.b = 2;
  t.cpu_ms = 2.5;
  p.stages = {t, t, t};
  p.host = {2, 3, 1};  // 3 ranks of 1 thread on 2 cores, CPU times taken as the work
  EXPECT_EQ(p.shared_cores(), 2);
  p.stages[2].cpu_ms = -1;  // wall times with the waits for a core in them: not shared out again
  EXPECT_EQ(p.shared_cores(), 0);
  p.host = {8, 2, 2};  // 2 ranks of 2 threads on 8 cores: 4 ranks' worth, whatever the CPU times
  EXPECT_EQ(p.shared_cores(), 4);
  p.host = {8, 0, 2};  // not known to share a host
  EXPECT_EQ(p.shared_cores(), 0);
  p.host = {8, 2, 2, 4};  // 2 of the run's 4 ranks on this host: the others have cores of their own
  EXPECT_EQ(p.shared_cores(), 0);
  p.host = {8, 2, 2, 2};
  EXPECT_EQ(p.shared_cores(), 4);
}

TEST(Profile, BadFilesAreOneErrorNamingTheFile) {
  EXPECT_EQ(error_of("{").rfind("not JSON", 0), 0u) << error_of("{");
  EXPECT_EQ(error_of("{\"stages\": []}"), "'stages' must be a non-empty list");
  EXPECT_EQ(error_of("{\"stages\": [{\"b\": 1}]}"), "stage 0: no 'f' (forward ms)");
  EXPECT_EQ(error_of("{\"stages\": [{\"f\": -1}]}"), "stage 0: 'f' must be a time of 0 or more");
  EXPECT_EQ(error_of("{\"micro_batch_size\": 0, \"stages\": [{\"f\": 1}]}"), "'micro_batch_size' must be positive");
  EXPECT_EQ(error_of("{\"link\": {\"message_ms\": -2}, \"stages\": [{\"f\": 1}]}"),
            "link: 'message_ms' must be a time of 0 or more");
  EXPECT_EQ(error_of("{\"stages\": [{\"f\": 1, \"nodes\": [{\"node\": \"x\", \"f\": -3}]}]}"),
            "stage 0: node 'x': 'f' must be a time of 0 or more");
  EXPECT_EQ(error_of("{\"stages\": [{\"f\": \"fast\"}]}").rfind("malformed costs file", 0), 0u);
  EXPECT_EQ(error_of("{\"stages\": [{\"f\": 1}, {\"f\": 1}], \"edges\": [{\"from\": 0, \"to\": 1, \"bytes\": -4}]}"),
            "edge 0 -> 1: 'bytes' must be a size of 0 or more");
  EXPECT_EQ(error_of("{\"stages\": [{\"f\": 1}, {\"f\": 1}], \"edges\": [{\"from\": 1, \"to\": 1}]}"),
            "edge 1 -> 1: not an edge between two of the 2 stages (from an earlier stage to a later one)");
  EXPECT_EQ(error_of("{\"link\": {\"message_bytes_per_second\": -1}, \"stages\": [{\"f\": 1}]}"),
            "link: 'message_bytes_per_second' must be a rate of 0 or more");
  EXPECT_EQ(error_of("{\"stages\": [{\"f\": 1, \"cpu_ms\": -0.5}]}"), "stage 0: 'cpu_ms' must be a time of 0 or more");
  EXPECT_EQ(error_of("{\"host\": {\"cores\": 0, \"threads\": 1}, \"stages\": [{\"f\": 1}]}"),
            "host: 'cores' must be 1 or more");
  EXPECT_EQ(error_of("{\"host\": {\"cores\": 2, \"threads\": 1, \"local_ranks\": -1}, \"stages\": [{\"f\": 1}]}"),
            "host: 'local_ranks' must be 1 or more");
  // Integers out of an int's range, or not integers (found by fuzzing: a
  // float outside int's range was converted, undefined behaviour).
  EXPECT_EQ(error_of("{\"loss_stage\": 2445268348.7, \"stages\": [{\"f\": 1}]}"),
            "'loss_stage' must be an integer (between -2147483648 and 2147483647)");
  EXPECT_EQ(error_of("{\"chunks\": 4294967296, \"stages\": [{\"f\": 1}]}"),
            "'chunks' must be an integer (between -2147483648 and 2147483647)");
  EXPECT_EQ(error_of("{\"host\": {\"cores\": 1e10, \"threads\": 1}, \"stages\": [{\"f\": 1}]}"),
            "host: 'cores' must be an integer (between -2147483648 and 2147483647)");
  EXPECT_EQ(error_of("{\"host\": {\"cores\": 2}, \"stages\": [{\"f\": 1}]}"), "host: no 'threads'");
  EXPECT_EQ(error_of("{\"stages\": [{\"f\": 1}, {\"f\": 1}], \"edges\": [{\"from\": 0, \"to\": 1.5}]}"),
            "edge: 'to' must be an integer (between -2147483648 and 2147483647)");
  try {
    read_profile("/nonexistent/p.json");
    FAIL() << "no error";
  } catch (const ppc::Error& e) {
    EXPECT_EQ(std::string(e.what()), "/nonexistent/p.json: cannot open the costs file: No such file or directory");
  }
}

namespace ppc::profile {
namespace {

TEST(Profile, MessageCostIsZeroUnlessCalibrated) {
  Profile p;  // one rank: nothing calibrated (message_ms -1)
  p.has_link = true;
  p.latency_ms = 0.05;
  p.bytes_per_second = 2e9;
  p.message_cpu_ms = 0.3;  // inconsistent by hand: ignored without message_ms
  p.message_bytes_per_second = 1e9;
  const MessageCost none = p.message_cost();
  EXPECT_EQ(none.latency_ms, 0);
  EXPECT_EQ(none.bytes_per_second, 0);
  EXPECT_EQ(none.rank_ms, 0);
  EXPECT_EQ(none.rank_bytes_per_second, 0);
  EXPECT_FALSE(none.priced());

  p.message_ms = 0.04;
  p.message_cpu_bytes_per_second = 5e8;
  const MessageCost m = p.message_cost();
  EXPECT_EQ(m.latency_ms, 0.04);
  EXPECT_EQ(m.bytes_per_second, 1e9);
  EXPECT_EQ(m.rank_ms, 0.3);
  EXPECT_EQ(m.rank_bytes_per_second, 5e8);
  EXPECT_TRUE(m.priced());

  // Calibrated to no time in flight (message_ms 0): its rank time still counts.
  p.message_ms = 0;
  p.message_bytes_per_second = 0;
  const MessageCost ranks_only = p.message_cost();
  EXPECT_EQ(ranks_only.latency_ms, 0);
  EXPECT_EQ(ranks_only.bytes_per_second, 0);
  EXPECT_EQ(ranks_only.rank_ms, 0.3);
  EXPECT_TRUE(ranks_only.priced());
}

}  // namespace
}  // namespace ppc::profile
