// The local launcher with `/bin/sh -c` children: exit statuses, prefixed and
// unbroken output lines, the torchrun environment, the grace-period
// escalation, forwarded signals, and pick_free_port.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

#include "runtime/launch/local_launcher.h"

namespace ppc::runtime {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// A temporary file for the launcher's stdout or stderr, read back whole.
class Capture {
 public:
  Capture() : file_(std::tmpfile()) {}
  ~Capture() { std::fclose(file_); }
  int fd() const { return fileno(file_); }
  std::string text() const {
    std::string all;
    char buffer[4096];
    for (ssize_t n, offset = 0; (n = pread(fd(), buffer, sizeof buffer, offset)) > 0; offset += n) {
      all.append(buffer, static_cast<size_t>(n));
    }
    return all;
  }
  std::vector<std::string> lines() const {
    std::vector<std::string> result;
    std::istringstream in(text());
    for (std::string line; std::getline(in, line);) result.push_back(line);
    return result;
  }

 private:
  std::FILE* file_;
};

struct ShRun {
  Capture out, err;
  LaunchOptions options;
  explicit ShRun(const std::string& script, int nproc = 2) {
    options.executable = "/bin/sh";
    options.args = {"-c", script};
    options.nproc = nproc;
    options.stdout_fd = out.fd();
    options.stderr_fd = err.fd();
  }
};

TEST(Launcher, AllChildrenExitZero) {
  ShRun run("echo hello from $RANK", 3);
  EXPECT_EQ(launch_local_ranks(run.options), 0);
  std::vector<std::string> lines = run.out.lines();
  std::sort(lines.begin(), lines.end());
  EXPECT_EQ(lines,
            (std::vector<std::string>{"[rank 0] hello from 0", "[rank 1] hello from 1", "[rank 2] hello from 2"}));
  EXPECT_EQ(run.err.text(), "");
}

TEST(Launcher, InterleavedLinesStayWholeAndPrefixed) {
  // Two ranks write 1000 lines each to stdout and 100 to stderr, as fast as
  // they can; the last stdout line of each has no '\n'.
  ShRun run(
      "i=0; while [ $i -lt 1000 ]; do"
      "  echo \"out $RANK $i abcdefghijklmnopqrstuvwxyz0123456789\";"
      "  if [ $((i % 10)) -eq 0 ]; then echo \"err $RANK $i\" >&2; fi;"
      "  i=$((i+1)); done; printf 'tail %s' $RANK");
  ASSERT_EQ(launch_local_ranks(run.options), 0);

  const std::regex out_line(R"(\[rank ([01])\] out ([01]) (\d+) abcdefghijklmnopqrstuvwxyz0123456789)");
  const std::regex tail_line(R"(\[rank ([01])\] tail ([01]))");
  std::map<std::string, int> next = {{"0", 0}, {"1", 0}};
  std::map<std::string, int> tails;
  const std::vector<std::string> lines = run.out.lines();
  ASSERT_EQ(lines.size(), 2002u);
  for (const std::string& line : lines) {
    std::smatch m;
    if (std::regex_match(line, m, tail_line)) {
      ASSERT_EQ(m[1], m[2]) << line;
      EXPECT_EQ(next[m[1]], 1000) << "tail before the last line: " << line;
      ++tails[m[1]];
      continue;
    }
    ASSERT_TRUE(std::regex_match(line, m, out_line)) << "broken line: '" << line << "'";
    ASSERT_EQ(m[1], m[2]) << "line under the wrong prefix: " << line;
    EXPECT_EQ(std::stoi(m[3]), next[m[1]]++) << "lines of one rank out of order: " << line;
  }
  EXPECT_EQ(next, (std::map<std::string, int>{{"0", 1000}, {"1", 1000}}));
  EXPECT_EQ(tails, (std::map<std::string, int>{{"0", 1}, {"1", 1}}));
  EXPECT_EQ(run.out.text().back(), '\n');

  const std::regex err_line(R"(\[rank ([01])\] err ([01]) (\d+))");
  const std::vector<std::string> err_lines = run.err.lines();
  EXPECT_EQ(err_lines.size(), 200u);
  for (const std::string& line : err_lines) {
    std::smatch m;
    ASSERT_TRUE(std::regex_match(line, m, err_line)) << "broken stderr line: '" << line << "'";
    EXPECT_EQ(m[1], m[2]) << line;
  }
}

TEST(Launcher, SetsTorchrunEnvironment) {
  setenv("RANK", "99", 1);  // The parent's value must be replaced, not duplicated.
  setenv("PPRUN_LAUNCHER_TEST_INHERITED", "yes", 1);
  ShRun run(
      "echo \"$RANK $LOCAL_RANK $WORLD_SIZE $LOCAL_WORLD_SIZE $MASTER_ADDR $MASTER_PORT"
      " $OMP_NUM_THREADS $OPENBLAS_NUM_THREADS $PPRUN_THREADS $PPRUN_LAUNCHER_TEST_INHERITED\";"
      " env | grep -c '^RANK='",
      2);
  run.options.master_addr = "127.0.0.1";
  run.options.master_port = 29512;
  run.options.threads_per_rank = 3;
  EXPECT_EQ(launch_local_ranks(run.options), 0);
  unsetenv("RANK");
  unsetenv("PPRUN_LAUNCHER_TEST_INHERITED");
  std::vector<std::string> lines = run.out.lines();
  std::sort(lines.begin(), lines.end());
  EXPECT_EQ(lines, (std::vector<std::string>{"[rank 0] 0 0 2 2 127.0.0.1 29512 3 3 3 yes", "[rank 0] 1", "[rank 1] 1",
                                             "[rank 1] 1 1 2 2 127.0.0.1 29512 3 3 3 yes"}));
}

TEST(Launcher, AcrossHostsRanksFollowTheNodeRank) {
  setenv("GROUP_RANK", "7", 1);  // an outer launcher's: replaced
  ShRun run("echo \"$RANK $LOCAL_RANK $WORLD_SIZE $LOCAL_WORLD_SIZE $GROUP_RANK $GROUP_WORLD_SIZE $MASTER_PORT\"", 2);
  run.options.nnodes = 3;
  run.options.node_rank = 1;
  run.options.master_addr = "10.231.0.1";
  run.options.master_port = 29513;
  EXPECT_EQ(launch_local_ranks(run.options), 0);
  unsetenv("GROUP_RANK");
  std::vector<std::string> lines = run.out.lines();
  std::sort(lines.begin(), lines.end());
  EXPECT_EQ(lines, (std::vector<std::string>{"[rank 2] 2 0 6 2 1 3 29513", "[rank 3] 3 1 6 2 1 3 29513"}));
}

TEST(Launcher, AcrossHostsFailuresNameTheGlobalRank) {
  ShRun run("if [ $LOCAL_RANK = 1 ]; then exit 4; fi", 2);
  run.options.nnodes = 2;
  run.options.node_rank = 1;
  run.options.master_port = 29514;
  EXPECT_EQ(launch_local_ranks(run.options), 4);
  EXPECT_EQ(run.err.text(), "pprun: rank 3 exited with status 4\n");
}

TEST(Launcher, AcrossHostsRejectsInconsistentNodes) {
  const auto message = [](LaunchOptions o) -> std::string {
    try {
      launch_local_ranks(o);
    } catch (const std::runtime_error& e) { return e.what(); }
    return "no exception";
  };
  ShRun run("true", 2);
  run.options.master_port = 29515;
  run.options.nnodes = 2;
  run.options.node_rank = 2;
  EXPECT_EQ(message(run.options), "pprun: --node-rank 2 is outside 0..1 (--nnodes 2)");
  run.options.node_rank = -1;
  EXPECT_EQ(message(run.options), "pprun: --node-rank -1 is outside 0..1 (--nnodes 2)");
  run.options.node_rank = 0;
  run.options.nnodes = 0;
  EXPECT_EQ(message(run.options), "pprun: --nnodes must be at least 1, got 0");
  run.options.nnodes = 2;
  run.options.master_port = 0;  // no free port of our own: the hosts must agree on one
  EXPECT_EQ(message(run.options),
            "pprun: --nnodes 2 needs the rendezvous port given (every host must use the same one)");
}

TEST(Launcher, PicksOnePortAndDefaultThreads) {
  ShRun run("echo $MASTER_PORT $PPRUN_THREADS", 2);
  EXPECT_EQ(launch_local_ranks(run.options), 0);
  const std::vector<std::string> lines = run.out.lines();
  ASSERT_EQ(lines.size(), 2u);
  const std::regex line(R"(\[rank [01]\] (\d+) (\d+))");
  std::smatch a, b;
  ASSERT_TRUE(std::regex_match(lines[0], a, line)) << lines[0];
  ASSERT_TRUE(std::regex_match(lines[1], b, line)) << lines[1];
  EXPECT_EQ(a[1], b[1]) << "ranks disagree on MASTER_PORT";
  EXPECT_GT(std::stoi(a[1]), 0);
  const int expected_threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / 2);
  EXPECT_EQ(std::stoi(a[2]), expected_threads);
}

TEST(Launcher, FailingChildStatusAndMessage) {
  ShRun run("if [ $RANK = 1 ]; then exit 3; fi", 3);
  EXPECT_EQ(launch_local_ranks(run.options), 3);
  EXPECT_EQ(run.err.text(), "pprun: rank 1 exited with status 3\n");
}

TEST(Launcher, FirstFailureWins) {
  // Rank 0 fails first with 5; rank 1 fails later with 7 on its own.
  ShRun run("if [ $RANK = 0 ]; then exit 5; fi; sleep 0.5; exit 7", 2);
  EXPECT_EQ(launch_local_ranks(run.options), 5);
  EXPECT_EQ(run.err.text(), "pprun: rank 0 exited with status 5\n");
}

TEST(Launcher, ChildKilledBySignal) {
  ShRun run("if [ $RANK = 0 ]; then kill -9 $$; fi", 2);
  EXPECT_EQ(launch_local_ranks(run.options), 128 + 9);
  EXPECT_EQ(run.err.text(), "pprun: rank 0 killed by signal 9\n");
}

TEST(Launcher, HungChildrenAreTerminatedThenKilledAfterGrace) {
  // Rank 0 fails; rank 1 would sleep for a minute (SIGTERM ends it); rank 2
  // ignores SIGTERM (needs SIGKILL, 2 s later).
  ShRun run(
      "case $RANK in 0) sleep 0.2; exit 4;; 1) sleep 60;; 2) trap '' TERM; "
      "while :; do sleep 0.1; done;; esac",
      3);
  run.options.grace = milliseconds(300);
  const auto begin = Clock::now();
  EXPECT_EQ(launch_local_ranks(run.options), 4);
  const auto elapsed = Clock::now() - begin;
  EXPECT_GE(elapsed, milliseconds(200 + 300 + 2000));
  EXPECT_LT(elapsed, std::chrono::seconds(10));
  const std::vector<std::string> err = run.err.lines();
  ASSERT_EQ(err.size(), 3u) << run.err.text();
  EXPECT_EQ(err[0], "pprun: rank 0 exited with status 4");
  EXPECT_EQ(err[1], "pprun: grace period of 300 ms over; sending SIGTERM to rank(s) 1, 2");
  EXPECT_EQ(err[2], "pprun: sending SIGKILL to rank(s) 2");
}

TEST(Launcher, OthersThatExitWithinGraceAreNotSignalled) {
  ShRun run("if [ $RANK = 0 ]; then exit 2; fi; sleep 0.3", 2);
  run.options.grace = milliseconds(5000);
  const auto begin = Clock::now();
  EXPECT_EQ(launch_local_ranks(run.options), 2);
  EXPECT_LT(Clock::now() - begin, std::chrono::seconds(4));
  EXPECT_EQ(run.err.text(), "pprun: rank 0 exited with status 2\n");
}

TEST(Launcher, ForwardsSigtermToChildren) {
  ShRun run("trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.1; done", 2);
  std::atomic<int> result{-1};
  std::thread launcher([&] { result = launch_local_ranks(run.options); });
  const auto begin = Clock::now();
  while (run.out.lines().size() < 2 && Clock::now() - begin < std::chrono::seconds(10)) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  ASSERT_EQ(run.out.lines().size(), 2u) << "children did not start";
  kill(getpid(), SIGTERM);  // Caught by the launcher, which must forward it.
  launcher.join();
  EXPECT_EQ(result, 7);
  std::vector<std::string> lines = run.out.lines();
  std::sort(lines.begin(), lines.end());
  EXPECT_EQ(lines,
            (std::vector<std::string>{"[rank 0] got TERM", "[rank 0] ready", "[rank 1] got TERM", "[rank 1] ready"}));
  // The previous disposition (default) is back.
  struct sigaction current {};
  sigaction(SIGTERM, nullptr, &current);
  EXPECT_EQ(current.sa_handler, SIG_DFL);
}

TEST(Launcher, BackgroundStragglersDoNotHoldTheLaunch) {
  // The rank exits at once but leaves a process that holds its stdout open.
  ShRun run("sleep 30 & echo done", 1);
  const auto begin = Clock::now();
  EXPECT_EQ(launch_local_ranks(run.options), 0);
  EXPECT_LT(Clock::now() - begin, std::chrono::seconds(5));
  EXPECT_EQ(run.out.text(), "[rank 0] done\n");
}

TEST(Launcher, UnprefixedOutputGoesStraightThrough) {
  ShRun run("printf 'raw %s' $RANK; echo e >&2", 1);
  run.options.prefix_output = false;
  EXPECT_EQ(launch_local_ranks(run.options), 0);
  EXPECT_EQ(run.out.text(), "raw 0");
  EXPECT_EQ(run.err.text(), "e\n");
}

TEST(Launcher, RejectsBadOptions) {
  ShRun run("true", 0);
  EXPECT_THROW(launch_local_ranks(run.options), std::runtime_error);
  run.options.nproc = 1;
  run.options.executable = "/nonexistent/pprun";
  try {
    launch_local_ranks(run.options);
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot execute '/nonexistent/pprun'"), std::string::npos) << e.what();
  }
}

TEST(Launcher, NoZombiesLeft) {
  ShRun run("if [ $RANK = 0 ]; then exit 1; fi; sleep 60", 2);
  run.options.grace = milliseconds(50);
  EXPECT_EQ(launch_local_ranks(run.options), 1);
  // Every child was reaped: this process has none left to wait for.
  const pid_t pid = waitpid(-1, nullptr, WNOHANG);
  const int error = errno;
  EXPECT_EQ(pid, -1);
  EXPECT_EQ(error, ECHILD);
}

TEST(Launcher, ChildrenGetOnlyStdio) {
  // The capture files of this test are inheritable fds; children must not see
  // them (nor each other's pipes). stdin is /dev/null. The shell lists its
  // own fds with a simple command: in a pipeline, ls could catch the shell
  // still holding the pipe it made for it (seen once).
  ShRun run("ls /proc/$$/fd; cat", 2);
  EXPECT_EQ(launch_local_ranks(run.options), 0);
  std::vector<std::string> lines = run.out.lines();
  std::sort(lines.begin(), lines.end());
  EXPECT_EQ(lines, (std::vector<std::string>{"[rank 0] 0", "[rank 0] 1", "[rank 0] 2", "[rank 1] 0", "[rank 1] 1",
                                             "[rank 1] 2"}));
}

// State of a process from /proc ('Z' for a zombie), or 0 if it is gone.
char process_state(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line) || line.rfind(')') == std::string::npos) return 0;
  return line[line.rfind(')') + 2];
}

TEST(Launcher, ChildrenDieWithTheLauncher) {
  ShRun run("echo $$; exec sleep 60", 1);
  const pid_t launcher = fork();
  ASSERT_GE(launcher, 0);
  if (launcher == 0) {
    try {
      _exit(launch_local_ranks(run.options));
    } catch (...) { _exit(99); }
  }
  const auto begin = Clock::now();
  while (run.out.lines().empty() && Clock::now() - begin < std::chrono::seconds(10)) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  ASSERT_EQ(run.out.lines().size(), 1u) << "the child did not start";
  const pid_t child = std::stoi(run.out.lines()[0].substr(std::string("[rank 0] ").size()));
  EXPECT_NE(process_state(child), 0);
  EXPECT_NE(process_state(child), 'Z');
  kill(launcher, SIGKILL);
  ASSERT_EQ(waitpid(launcher, nullptr, 0), launcher);
  while ((process_state(child) != 0 && process_state(child) != 'Z') &&
         Clock::now() - begin < std::chrono::seconds(10)) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  const char state = process_state(child);
  EXPECT_TRUE(state == 0 || state == 'Z') << "child " << child << " outlived the launcher";
}

// The port stays reserved: rank 0's store can listen on it (SO_REUSEADDR, as
// c10d's TCPStore binds), and other picks do not get it meanwhile.
TEST(PickFreePort, ReturnsAPortItsStoreCanListenOnAndNoOtherPickGets) {
  const int port = pick_free_port("127.0.0.1");
  ASSERT_GT(port, 0);
  ASSERT_LT(port, 65536);
  for (int i = 0; i < 50; ++i) EXPECT_NE(pick_free_port("127.0.0.1"), port);
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  const int on = 1;
  ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on), 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0) << std::strerror(errno);
  EXPECT_EQ(listen(fd, 4), 0) << std::strerror(errno);
  close(fd);
}

TEST(PickFreePort, RejectsAnUnknownAddress) { EXPECT_THROW(pick_free_port("not an address"), std::runtime_error); }

}  // namespace
}  // namespace ppc::runtime
