// A stand-in rank for the launcher tests.
//
// Reads its identity from the environment (RANK/LOCAL_RANK/WORLD_SIZE/... as fmlaunch sets them,
// or OMPI_COMM_WORLD_* under mpirun), meets every peer through MASTER_ADDR:MASTER_PORT (rank 0
// accepts one connection per other rank and checks that ranks 0..N-1 each appear exactly once),
// and writes <out>/rank_<R>.rec with what it saw: identity, argv (hex, so any byte survives) and
// chosen variables. Rank 0 also writes <out>/world.txt ("rank local_rank node_rank" per line).
// Then it can be told to misbehave, to test failure handling:
//   --fail-rank R --fail-code C   rank R exits with code C (writing the time to <out>/failing_at)
//   --kill-rank R                 rank R sends itself SIGKILL
//   --after S                     ... S seconds after the rendezvous (default 1)
//   --first-run-only              ... only when FM_RESTART_COUNT is 0 (unset counts as 0)
//   --hang                        the other ranks sleep until killed (default: exit 0)
//   --ignore-term                 ignore SIGTERM (only SIGKILL stops it)
//   --spawn-child                 fork a child that sleeps (same argv: stays findable by marker)
//   --spawn-orphan                fork a grandchild in a new session (escapes the process group)
//   --report-env NAME             record $NAME in the .rec file (repeatable)
//   --out DIR                     where to write (required)
// Every other argument is ignored but recorded, so tests can pass markers and odd strings.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

std::string env(const char* a, const char* b = nullptr) {
  if (const char* v = std::getenv(a)) return v;
  if (b)
    if (const char* v = std::getenv(b)) return v;
  return "";
}

int env_int(const char* a, const char* b, int dflt) {
  std::string v = env(a, b);
  return v.empty() ? dflt : std::atoi(v.c_str());
}

std::string hex(const std::string& s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) out += d[c >> 4], out += d[c & 15];
  return out;
}

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "rank_probe: %s\n", msg.c_str());
  std::exit(3);
}

int connect_or_listen(const std::string& host, int port, bool listen_side) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res)
    die("cannot resolve MASTER_ADDR '" + host + "'");
  int fd = socket(res->ai_family, SOCK_STREAM, 0);
  if (listen_side) {
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    for (int i = 0; i < 100 && bind(fd, res->ai_addr, res->ai_addrlen) != 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (listen(fd, 1024) != 0) die("cannot listen on " + host + ":" + std::to_string(port) + ": " + strerror(errno));
  } else {
    bool ok = false;
    for (int i = 0; i < 300 && !ok; ++i) {
      if (connect(fd, res->ai_addr, res->ai_addrlen) == 0) {
        ok = true;
      } else {
        close(fd);
        fd = socket(res->ai_family, SOCK_STREAM, 0);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
    if (!ok) die("cannot reach rank 0 at " + host + ":" + std::to_string(port));
  }
  freeaddrinfo(res);
  return fd;
}

std::string read_line(int fd) {
  std::string s;
  char c;
  while (read(fd, &c, 1) == 1 && c != '\n') s += c;
  return s;
}

void write_str(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = write(fd, s.data() + off, s.size() - off);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string out_dir;
  int fail_rank = -1, fail_code = 1, kill_rank = -1;
  double after = 1.0;
  bool first_run_only = false, hang = false, ignore_term = false, spawn_child = false, spawn_orphan = false;
  std::vector<std::string> report_env;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--out") out_dir = next();
    else if (a == "--fail-rank") fail_rank = std::atoi(next().c_str());
    else if (a == "--fail-code") fail_code = std::atoi(next().c_str());
    else if (a == "--kill-rank") kill_rank = std::atoi(next().c_str());
    else if (a == "--after") after = std::atof(next().c_str());
    else if (a == "--first-run-only") first_run_only = true;
    else if (a == "--hang") hang = true;
    else if (a == "--ignore-term") ignore_term = true;
    else if (a == "--spawn-child") spawn_child = true;
    else if (a == "--spawn-orphan") spawn_orphan = true;
    else if (a == "--report-env") report_env.push_back(next());
  }
  if (out_dir.empty()) die("--out DIR is required");
  if (ignore_term) signal(SIGTERM, SIG_IGN);

  const int rank = env_int("RANK", "OMPI_COMM_WORLD_RANK", -1);
  const int world = env_int("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", -1);
  const int local_rank = env_int("LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", -1);
  const int node_rank = env_int("NODE_RANK", nullptr, -1);
  const std::string master = env("MASTER_ADDR");
  const int port = env_int("MASTER_PORT", nullptr, -1);
  const int restart = env_int("FM_RESTART_COUNT", nullptr, 0);
  if (rank < 0 || world <= 0 || rank >= world || master.empty() || port <= 0)
    die("RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT are missing or inconsistent");
  std::printf("probe rank %d of %d (local %d, node %d) pid %d\n", rank, world, local_rank, node_rank, getpid());
  std::fflush(stdout);

  if (spawn_child && fork() == 0) {
    while (true) pause();
  }
  if (spawn_orphan && fork() == 0) {
    setsid();
    if (fork() == 0) {
      while (true) pause();
    }
    _exit(0);
  }

  // Rendezvous: everybody reports to rank 0, which checks the world and answers OK.
  std::string world_lines;
  if (rank == 0) {
    int lfd = connect_or_listen(master, port, true);
    std::map<int, std::string> seen;
    seen[0] = "0 " + std::to_string(local_rank) + " " + std::to_string(node_rank);
    std::vector<int> peers;
    bool bad = false;
    for (int i = 1; i < world; ++i) {
      int c = accept(lfd, nullptr, nullptr);
      if (c < 0) die("accept failed");
      std::istringstream in(read_line(c));
      int r = -1, lr = -1, nr = -1, w = -1;
      in >> r >> lr >> nr >> w;
      if (r <= 0 || r >= world || seen.count(r) || w != world) bad = true;
      seen[r] = std::to_string(r) + " " + std::to_string(lr) + " " + std::to_string(nr);
      peers.push_back(c);
    }
    for (int c : peers) write_str(c, bad ? "BAD\n" : "OK\n"), close(c);
    close(lfd);
    if (bad) die("inconsistent world");
    for (auto& [r, line] : seen) world_lines += line + "\n";
    std::ofstream(out_dir + "/world.txt") << world_lines;
  } else {
    int fd = connect_or_listen(master, port, false);
    write_str(fd, std::to_string(rank) + " " + std::to_string(local_rank) + " " + std::to_string(node_rank) + " " +
                      std::to_string(world) + "\n");
    if (read_line(fd) != "OK") die("rank 0 rejected the world");
    close(fd);
  }

  {
    std::ofstream rec(out_dir + "/rank_" + std::to_string(rank) + ".rec");
    rec << "rank=" << rank << "\nlocal_rank=" << local_rank << "\nworld_size=" << world
        << "\nlocal_world_size=" << env("LOCAL_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE") << "\nnode_rank=" << node_rank
        << "\ngroup_rank=" << env("GROUP_RANK") << "\nmaster_addr=" << master << "\nmaster_port=" << port
        << "\ncuda_visible_devices=" << env("CUDA_VISIBLE_DEVICES") << "\nrestart_count=" << restart
        << "\npid=" << getpid() << "\nargc=" << argc - 1 << "\n";
    for (int i = 1; i < argc; ++i) rec << "arg" << i - 1 << "=" << hex(argv[i]) << "\n";
    for (const auto& name : report_env) rec << "env_" << name << "=" << hex(env(name.c_str())) << "\n";
    rec << "world_ok=1\n";
  }
  std::printf("probe rank %d: world of %d is consistent\n", rank, world);
  std::fflush(stdout);

  const bool misbehave_now = !first_run_only || restart == 0;
  if (misbehave_now && (rank == fail_rank || rank == kill_rank)) {
    std::this_thread::sleep_for(std::chrono::duration<double>(after));
    std::printf("probe rank %d: failing now\n", rank);
    std::fflush(stdout);
    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);
    std::ofstream(out_dir + "/failing_at") << now.tv_sec << "." << std::to_string(1000000000L + now.tv_nsec).substr(1) << "\n";
    if (rank == kill_rank) kill(getpid(), SIGKILL);
    return fail_code;
  }
  if (hang && misbehave_now) {
    while (true) pause();
  }
  return 0;
}
