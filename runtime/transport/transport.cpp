#include "runtime/transport/transport.h"

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <sstream>

namespace ppc::runtime {

Work::~Work() = default;
Transport::~Transport() = default;

namespace {

int parse_int(const std::string& what, const std::string& text) {
  errno = 0;
  char* end = nullptr;
  long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || end == nullptr || *end != '\0' || errno != 0 || v < INT_MIN || v > INT_MAX)
    throw std::invalid_argument(what + ": expected an integer, got '" + text + "'");
  return static_cast<int>(v);
}

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

}  // namespace

RendezvousOptions rendezvous_from_env(std::optional<std::string> master_addr, std::optional<int> master_port,
                                      std::optional<int> rank, std::optional<int> world_size,
                                      std::optional<std::chrono::milliseconds> timeout) {
  RendezvousOptions o;
  if (auto v = env("MASTER_ADDR")) o.master_addr = *v;
  if (auto v = env("MASTER_PORT")) o.master_port = parse_int("MASTER_PORT", *v);
  if (auto v = env("RANK")) o.rank = parse_int("RANK", *v);
  if (auto v = env("WORLD_SIZE")) o.world_size = parse_int("WORLD_SIZE", *v);
  if (master_addr) o.master_addr = *master_addr;
  if (master_port) o.master_port = *master_port;
  if (rank) o.rank = *rank;
  if (world_size) o.world_size = *world_size;
  if (timeout) o.timeout = *timeout;
  if (o.master_addr.empty()) throw std::invalid_argument("master address is empty");
  if (o.master_port < 1 || o.master_port > 65535)
    throw std::invalid_argument("master port " + std::to_string(o.master_port) + " is outside 1..65535");
  if (o.world_size < 1) throw std::invalid_argument("world size must be >= 1, got " + std::to_string(o.world_size));
  if (o.rank < 0 || o.rank >= o.world_size)
    throw std::invalid_argument("rank " + std::to_string(o.rank) + " is outside [0, " + std::to_string(o.world_size) +
                                ")");
  if (o.timeout.count() <= 0) throw std::invalid_argument("timeout must be positive");
  return o;
}

std::string describe_timeout(int rank, std::chrono::milliseconds timeout) {
  std::ostringstream os;
  os << "rank " << rank << " did not answer within ";
  if (timeout.count() % 1000 == 0)
    os << timeout.count() / 1000 << " s";
  else
    os << timeout.count() << " ms";
  return os.str();
}

}  // namespace ppc::runtime
