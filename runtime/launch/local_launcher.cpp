#include "runtime/launch/local_launcher.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace ppc::runtime {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kKillDelay = std::chrono::seconds(2);
// After the last child is reaped, how long a pipe may stay open (held by a
// grandchild that left the child's process group) before we stop reading it.
constexpr auto kDrainLimit = std::chrono::seconds(2);
// A "line" longer than this without '\n' is forwarded in pieces rather than
// buffered without bound.
constexpr size_t kMaxLine = 1 << 20;

// The signal handler's only state: which signals to forward, and the write end
// of the self-pipe that wakes poll().
volatile sig_atomic_t g_wake_fd = -1;
volatile sig_atomic_t g_got_sigint = 0;
volatile sig_atomic_t g_got_sigterm = 0;

void on_signal(int sig) {
  const int saved_errno = errno;
  if (sig == SIGINT) g_got_sigint = 1;
  if (sig == SIGTERM) g_got_sigterm = 1;
  const char byte = 0;
  // Non-blocking: if the pipe is full, poll() will wake anyway.
  [[maybe_unused]] ssize_t n = write(g_wake_fd, &byte, 1);
  errno = saved_errno;
}

[[noreturn]] void throw_errno(const std::string& what) { throw std::runtime_error(what + ": " + std::strerror(errno)); }

void write_all(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n >= 0) {
      done += static_cast<size_t>(n);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      pollfd p{fd, POLLOUT, 0};
      poll(&p, 1, -1);
    } else if (errno != EINTR) {
      return;  // Output closed (EPIPE, ...): nothing sensible left to do with it.
    }
  }
}

// One child's stdout or stderr pipe, read end, with its unfinished line.
struct Stream {
  int fd = -1;
  int out_fd = -1;
  std::string pending;
};

struct Child {
  int rank = 0;
  pid_t pid = -1;
  bool running = false;
  Stream streams[2];  // stdout, stderr
};

class Launch {
 public:
  explicit Launch(const LaunchOptions& options) : options_(options) {}
  Launch(const Launch&) = delete;
  Launch& operator=(const Launch&) = delete;

  // Kills and reaps what is still running (only on the exception path), then
  // restores the signal handlers before the self-pipe they write to is closed.
  ~Launch() {
    for (Child& child : children_) {
      if (child.running) {
        kill(-child.pid, SIGKILL);
        int status;
        while (waitpid(child.pid, &status, 0) < 0 && errno == EINTR) {}
      }
      for (Stream& s : child.streams) close_fd(s.fd);
    }
    if (handlers_installed_) {
      for (int i = 0; i < 3; ++i) sigaction(kSignals[i], &old_actions_[i], nullptr);
    }
    g_wake_fd = -1;
    close_fd(wake_[0]);
    close_fd(wake_[1]);
    close_fd(devnull_);
  }

  int run(int master_port, int threads);

 private:
  static constexpr int kSignals[3] = {SIGINT, SIGTERM, SIGCHLD};

  static void close_fd(int& fd) {
    if (fd >= 0) close(fd);
    fd = -1;
  }
  void install_handlers();
  void start_all(int master_port, int threads);
  void start(Child& child, const std::vector<char*>& argv, std::vector<std::string> env, const sigset_t& old_mask);
  void reap();
  std::optional<Clock::time_point> escalate(Clock::time_point now);
  void forward_signals();
  void signal_running(int sig);
  std::string running_ranks() const;
  void read_stream(const Child& child, Stream& s);
  void emit(const Child& child, Stream& s, bool eof);

  const LaunchOptions& options_;
  std::vector<Child> children_;
  int wake_[2] = {-1, -1};
  int devnull_ = -1;
  bool handlers_installed_ = false;
  struct sigaction old_actions_[3] = {};
  int result_ = 0;  // exit status of the first child that failed
  enum class Phase { running, grace, terminating, killed } phase_ = Phase::running;
  Clock::time_point next_step_;  // end of the grace period, then time for SIGKILL
};

void Launch::install_handlers() {
  if (pipe2(wake_, O_CLOEXEC | O_NONBLOCK) < 0) throw_errno("pprun: pipe");
  g_wake_fd = wake_[1];
  g_got_sigint = g_got_sigterm = 0;
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  for (int i = 0; i < 3; ++i) sigaction(kSignals[i], &action, &old_actions_[i]);
  handlers_installed_ = true;
}

void Launch::start(Child& child, const std::vector<char*>& argv, std::vector<std::string> env,
                   const sigset_t& old_mask) {
  int out[2] = {-1, -1}, err[2] = {-1, -1};
  if (options_.prefix_output) {
    if (pipe2(out, O_CLOEXEC) < 0) throw_errno("pprun: pipe");
    if (pipe2(err, O_CLOEXEC) < 0) {
      const int e = errno;
      close(out[0]);
      close(out[1]);
      errno = e;
      throw_errno("pprun: pipe");
    }
    child.streams[0] = {out[0], options_.stdout_fd, {}};
    child.streams[1] = {err[0], options_.stderr_fd, {}};
  }
  const int child_out = options_.prefix_output ? out[1] : options_.stdout_fd;
  const int child_err = options_.prefix_output ? err[1] : options_.stderr_fd;
  std::vector<char*> envp;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  const std::string exec_failed = "pprun: cannot execute " + options_.executable + "\n";
  const pid_t parent = getpid();

  const pid_t pid = fork();
  if (pid == 0) {
    // The child: only async-signal-safe calls from here to execve.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);  // The parent died before prctl took effect.
    setpgid(0, 0);
    for (int i = 0; i < 3; ++i) sigaction(kSignals[i], &old_actions_[i], nullptr);
    sigprocmask(SIG_SETMASK, &old_mask, nullptr);
    dup2(devnull_, 0);
    dup2(child_out, 1);
    dup2(child_err, 2);
    // Other children's pipes are O_CLOEXEC already; this also drops whatever
    // the caller left inheritable.
    if (syscall(SYS_close_range, 3u, ~0u, 0u) < 0) {
      for (int fd = 3; fd < 65536; ++fd) close(fd);
    }
    execve(options_.executable.c_str(), argv.data(), envp.data());
    [[maybe_unused]] ssize_t n = write(2, exec_failed.data(), exec_failed.size());
    _exit(127);
  }
  const int fork_errno = errno;
  if (options_.prefix_output) {
    close(out[1]);
    close(err[1]);
  }
  if (pid < 0) {
    errno = fork_errno;
    throw_errno("pprun: cannot start rank " + std::to_string(child.rank));
  }
  setpgid(pid, pid);  // Also here, so that it holds before we ever signal the group.
  child.pid = pid;
  child.running = true;
}

void Launch::reap() {
  for (Child& child : children_) {
    if (!child.running) continue;
    // Look without reaping first: while the zombie exists its pid (= its
    // process group id) cannot be reused, so killing the group is safe.
    siginfo_t info{};
    if (waitid(P_PID, child.pid, &info, WEXITED | WNOHANG | WNOWAIT) < 0) {
      if (errno == EINTR) continue;  // The next round looks again.
      throw_errno("pprun: waitid for rank " + std::to_string(child.rank));
    }
    if (info.si_pid == 0) continue;  // Still running.
    kill(-child.pid, SIGKILL);       // Stragglers it left in its group.
    int status = 0;
    while (waitpid(child.pid, &status, 0) < 0 && errno == EINTR) {}
    child.running = false;
    const int code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
    if (code == 0 || phase_ != Phase::running) continue;
    result_ = code;
    phase_ = Phase::grace;
    next_step_ = Clock::now() + options_.grace;
    write_all(options_.stderr_fd, "pprun: rank " + std::to_string(child.rank) +
                                      (WIFSIGNALED(status) ? " killed by signal " + std::to_string(WTERMSIG(status))
                                                           : " exited with status " + std::to_string(code)) +
                                      "\n");
  }
}

void Launch::signal_running(int sig) {
  for (const Child& child : children_) {
    if (child.running) kill(-child.pid, sig);
  }
}

std::string Launch::running_ranks() const {
  std::string ranks;
  for (const Child& child : children_) {
    if (child.running) ranks += (ranks.empty() ? "" : ", ") + std::to_string(child.rank);
  }
  return ranks;
}

void Launch::read_stream(const Child& child, Stream& s) {
  char buffer[65536];
  const ssize_t n = read(s.fd, buffer, sizeof buffer);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n > 0) {
    s.pending.append(buffer, static_cast<size_t>(n));
    emit(child, s, false);
    return;
  }
  emit(child, s, true);  // EOF (or a read error, treated alike).
  close_fd(s.fd);
}

// Forwards the complete lines of s.pending (all of it at EOF) in one write, so
// that lines from different children never mix.
void Launch::emit(const Child& child, Stream& s, bool eof) {
  const std::string prefix = "[rank " + std::to_string(child.rank) + "] ";
  std::string out;
  size_t start = 0;
  for (size_t nl; (nl = s.pending.find('\n', start)) != std::string::npos; start = nl + 1) {
    out += prefix;
    out.append(s.pending, start, nl + 1 - start);
  }
  s.pending.erase(0, start);
  if (!s.pending.empty() && (eof || s.pending.size() >= kMaxLine)) {
    out += prefix + s.pending + "\n";
    s.pending.clear();
  }
  if (!out.empty()) write_all(s.out_fd, out);
}

// The parent's environment without the variables the launcher sets, plus those
// that are the same for every rank.
std::vector<std::string> common_environment(const LaunchOptions& options, int port, int threads) {
  const std::vector<std::string> fixed = {"WORLD_SIZE=" + std::to_string(options.nnodes * options.nproc),
                                          "LOCAL_WORLD_SIZE=" + std::to_string(options.nproc),
                                          "GROUP_RANK=" + std::to_string(options.node_rank),
                                          "GROUP_WORLD_SIZE=" + std::to_string(options.nnodes),
                                          "MASTER_ADDR=" + options.master_addr,
                                          "MASTER_PORT=" + std::to_string(port),
                                          "OMP_NUM_THREADS=" + std::to_string(threads),
                                          "OPENBLAS_NUM_THREADS=" + std::to_string(threads),
                                          "PPRUN_THREADS=" + std::to_string(threads)};
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const std::string key = entry.substr(0, entry.find('=') + 1);  // "" if no '=': dropped
    const auto same_key = [&](const std::string& f) { return f.compare(0, key.size(), key) == 0; };
    if (key != "RANK=" && key != "LOCAL_RANK=" && std::none_of(fixed.begin(), fixed.end(), same_key)) {
      env.push_back(entry);
    }
  }
  env.insert(env.end(), fixed.begin(), fixed.end());
  return env;
}

void Launch::start_all(int master_port, int threads) {
  devnull_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devnull_ < 0) throw_errno("pprun: /dev/null");
  install_handlers();
  std::vector<std::string> arg_strings{options_.executable};
  arg_strings.insert(arg_strings.end(), options_.args.begin(), options_.args.end());
  std::vector<char*> argv;
  for (std::string& a : arg_strings) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::vector<std::string> env = common_environment(options_, master_port, threads);

  // Our handlers stay blocked while forking so that none runs in a child
  // before it restores the caller's dispositions.
  sigset_t blocked, old_mask;
  sigemptyset(&blocked);
  for (int sig : kSignals) sigaddset(&blocked, sig);
  pthread_sigmask(SIG_BLOCK, &blocked, &old_mask);
  try {
    children_.resize(static_cast<size_t>(options_.nproc));
    for (int local = 0; local < options_.nproc; ++local) {
      Child& child = children_[static_cast<size_t>(local)];
      child.rank = options_.node_rank * options_.nproc + local;
      std::vector<std::string> rank_env = env;
      rank_env.push_back("RANK=" + std::to_string(child.rank));
      rank_env.push_back("LOCAL_RANK=" + std::to_string(local));
      start(child, argv, std::move(rank_env), old_mask);
    }
  } catch (...) {
    pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
    throw;
  }
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
}

// Steps from the first failure to SIGTERM and SIGKILL; returns when to look again.
std::optional<Clock::time_point> Launch::escalate(Clock::time_point now) {
  if (phase_ == Phase::grace && now >= next_step_) {
    write_all(options_.stderr_fd, "pprun: grace period of " + std::to_string(options_.grace.count()) +
                                      " ms over; sending SIGTERM to rank(s) " + running_ranks() + "\n");
    signal_running(SIGTERM);
    phase_ = Phase::terminating;
    next_step_ = now + kKillDelay;
  } else if (phase_ == Phase::terminating && now >= next_step_) {
    write_all(options_.stderr_fd, "pprun: sending SIGKILL to rank(s) " + running_ranks() + "\n");
    signal_running(SIGKILL);
    phase_ = Phase::killed;
  }
  if (phase_ == Phase::grace || phase_ == Phase::terminating) return next_step_;
  return std::nullopt;
}

void Launch::forward_signals() {
  char drain[64];
  while (read(wake_[0], drain, sizeof drain) > 0) {}
  if (g_got_sigint) {
    g_got_sigint = 0;
    signal_running(SIGINT);
  }
  if (g_got_sigterm) {
    g_got_sigterm = 0;
    signal_running(SIGTERM);
  }
}

int Launch::run(int master_port, int threads) {
  start_all(master_port, threads);
  std::optional<Clock::time_point> drain_until;
  for (;;) {
    reap();
    std::vector<pollfd> fds{{wake_[0], POLLIN, 0}};
    std::vector<std::pair<Child*, Stream*>> owners{{nullptr, nullptr}};
    bool any_running = false;
    for (Child& child : children_) {
      any_running = any_running || child.running;
      for (Stream& s : child.streams) {
        if (s.fd < 0) continue;
        fds.push_back({s.fd, POLLIN, 0});
        owners.emplace_back(&child, &s);
      }
    }
    const auto now = Clock::now();
    std::optional<Clock::time_point> deadline = escalate(now);
    if (!any_running) {
      if (fds.size() == 1) break;
      if (!drain_until) drain_until = now + kDrainLimit;
      if (now >= *drain_until) break;
      deadline = drain_until;
    }
    // SIGCHLD wakes us; the cap only guards against a handler replaced meanwhile.
    int timeout_ms = 500;
    if (deadline) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - now).count();
      timeout_ms = static_cast<int>(std::clamp<long long>(left, 0, timeout_ms));
    }
    if (poll(fds.data(), fds.size(), timeout_ms) < 0) {
      if (errno == EINTR) continue;
      throw_errno("pprun: poll");
    }
    if (fds[0].revents != 0) forward_signals();
    for (size_t i = 1; i < fds.size(); ++i) {
      if (fds[i].revents != 0) read_stream(*owners[i].first, *owners[i].second);
    }
  }
  return result_;
}

}  // namespace

int launch_local_ranks(const LaunchOptions& options) {
  if (options.nproc < 1) {
    throw std::runtime_error("pprun: --nproc must be at least 1, got " + std::to_string(options.nproc));
  }
  if (options.nnodes < 1) {
    throw std::runtime_error("pprun: --nnodes must be at least 1, got " + std::to_string(options.nnodes));
  }
  if (options.node_rank < 0 || options.node_rank >= options.nnodes) {
    throw std::runtime_error("pprun: --node-rank " + std::to_string(options.node_rank) + " is outside 0.." +
                             std::to_string(options.nnodes - 1) + " (--nnodes " + std::to_string(options.nnodes) + ")");
  }
  if (options.nnodes > 1 && options.master_port == 0) {
    throw std::runtime_error("pprun: --nnodes " + std::to_string(options.nnodes) +
                             " needs the rendezvous port given (every host must use the same one)");
  }
  if (options.master_port < 0 || options.master_port > 65535) {
    throw std::runtime_error("pprun: invalid master port " + std::to_string(options.master_port));
  }
  if (access(options.executable.c_str(), X_OK) != 0) {
    throw_errno("pprun: cannot execute '" + options.executable + "'");
  }
  const int port = options.master_port != 0 ? options.master_port : pick_free_port(options.master_addr);
  int threads = options.threads_per_rank;
  if (threads <= 0) { threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / options.nproc); }
  Launch launch(options);
  return launch.run(port, threads);
}

int pick_free_port(const std::string& addr) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  if (const int rc = getaddrinfo(addr.c_str(), "0", &hints, &found); rc != 0) {
    throw std::runtime_error("pprun: cannot pick a free port on '" + addr + "': " + gai_strerror(rc));
  }
  std::string error = "no usable address";
  int port = -1;
  for (addrinfo* ai = found; ai != nullptr && port < 0; ai = ai->ai_next) {
    const int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      error = std::strerror(errno);
      continue;
    }
    // The port stays bound by this process (the socket is kept open, not
    // listening, with SO_REUSEADDR): the kernel hands it to no other bind of
    // port 0, so two jobs started at once on one host cannot pick the same
    // port (a rank of one then joined the other's store), while rank 0's
    // rendezvous store, which binds with SO_REUSEADDR too, can listen on it.
    const int on = 1;
    sockaddr_storage bound{};
    socklen_t length = sizeof bound;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) == 0 && bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length) == 0) {
      port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                               : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
    } else {
      error = std::strerror(errno);
      close(fd);
    }
  }
  freeaddrinfo(found);
  if (port < 0) throw std::runtime_error("pprun: cannot pick a free port on '" + addr + "': " + error);
  return port;
}

}  // namespace ppc::runtime
