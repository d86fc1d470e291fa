#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "runtime/base/error.h"
#include "runtime/comm/store.h"

using namespace fm::comm;
using namespace std::chrono_literals;

namespace {
LivenessConfig fast() {
  LivenessConfig c;
  c.heartbeat_interval = 100ms;
  c.heartbeat_timeout = 3s;
  c.exit_grace = 0ms;
  return c;
}

std::unique_ptr<StoreClient> client(int port, int rank, int world, Millis timeout = 5s) {
  return std::make_unique<StoreClient>("127.0.0.1", port, rank, world, timeout, fast());
}

// Polls until a lost peer is known (or ~10 s pass).
std::optional<LostPeer> wait_lost(StoreClient& c) {
  for (int i = 0; i < 200 && !c.lost(); ++i) std::this_thread::sleep_for(50ms);
  return c.lost();
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
}  // namespace

TEST_CASE("store: set, get, wait and add between two ranks") {
  StoreServer server(0, 2, fast());
  auto a = client(server.port(), 0, 2), b = client(server.port(), 1, 2);
  a->set("k", std::string("v\0w", 3));
  CHECK(b->get("k") == std::string("v\0w", 3));
  CHECK(a->add("n", 5) == 5);
  CHECK(b->add("n", -2) == 3);
  std::thread late([&] {
    std::this_thread::sleep_for(200ms);
    b->set("later", "x");
  });
  CHECK(a->get("later") == "x");  // waits for the key
  late.join();
  a->wait({"k", "later", "n"});
  CHECK(!a->lost());
  a->close();
  b->close();
  server.shutdown(5s);
}

TEST_CASE("store: a port in use is an input error naming MASTER_PORT") {
  StoreServer first(0, 1, fast());
  try {
    StoreServer second(first.port(), 1, fast());
    FAIL("expected an InputError");
  } catch (const fm::InputError& e) {
    CHECK(e.where() == "MASTER_PORT");
    CHECK(contains(e.what(), "already in use"));
  }
}

TEST_CASE("store: clients wait for a server that starts later") {
  int port;
  {
    StoreServer probe(0, 1, fast());
    port = probe.port();
  }
  std::unique_ptr<StoreClient> c;
  std::thread t([&] { c = client(port, 1, 2, 10s); });
  std::this_thread::sleep_for(500ms);
  StoreServer server(port, 2, fast());
  auto zero = client(port, 0, 2);
  t.join();
  c->set("x", "1");
  CHECK(zero->get("x") == "1");
  c->close();
  zero->close();
}

TEST_CASE("store: a rank that disappears without goodbye is reported lost, a clean close is not") {
  StoreServer server(0, 3, fast());
  auto a = client(server.port(), 0, 3), b = client(server.port(), 1, 3), c = client(server.port(), 2, 3);
  std::atomic<int> told{-1};
  a->add_lost_listener([&](const LostPeer& p) { told = p.rank; });
  c->close();
  c.reset();  // said goodbye
  b.reset();  // vanished
  auto lost = wait_lost(*a);
  REQUIRE(lost);
  CHECK(lost->rank == 1);
  CHECK(contains(lost->reason, "rank 1"));
  CHECK(contains(lost->reason, "lost"));
  CHECK(told.load() == 1);
  // Waits end at once, naming the lost rank, instead of running into the timeout.
  try {
    a->get("never");
    FAIL("expected a RuntimeFault");
  } catch (const fm::RuntimeFault& e) {
    CHECK(contains(e.what(), "rank 0: "));
    CHECK(contains(e.what(), "rank 1"));
  }
}

TEST_CASE("store: a failing rank's own message reaches the others") {
  StoreServer server(0, 2, fast());
  auto a = client(server.port(), 0, 2), b = client(server.port(), 1, 2);
  b->announce_failure("rank 1: recv from rank 0 (world) timed out after 1 s");
  auto lost = wait_lost(*a);
  REQUIRE(lost);
  CHECK(lost->rank == 1);
  CHECK(contains(lost->reason, "failed: rank 1: recv from rank 0"));
}

TEST_CASE("store: when the server goes, clients report rank 0 lost") {
  auto server = std::make_unique<StoreServer>(0, 2, fast());
  auto b = client(server->port(), 1, 2);
  server.reset();
  auto lost = wait_lost(*b);
  REQUIRE(lost);
  CHECK(lost->rank == 0);
  CHECK(contains(lost->reason, "rank 0"));
}

TEST_CASE("store: a rank registered twice or a wrong world size is refused") {
  StoreServer server(0, 2, fast());
  auto a = client(server.port(), 1, 2);
  try {
    client(server.port(), 1, 2);
    FAIL("expected a RuntimeFault");
  } catch (const fm::RuntimeFault& e) {
    CHECK(contains(e.what(), "already registered"));
  }
  CHECK_THROWS_AS(client(server.port(), 0, 3), fm::RuntimeFault);
  a->close();
}

TEST_CASE("store: a wait that times out names the ranks that never arrived") {
  StoreServer server(0, 3, fast());
  auto a = client(server.port(), 0, 3, 1s);
  a->set("arrived/0", "1");
  try {
    a->wait_for_ranks({"arrived/0", "arrived/1", "arrived/2"}, {0, 1, 2}, "joining the world");
    FAIL("expected a RuntimeFault");
  } catch (const fm::RuntimeFault& e) {
    CHECK(contains(e.what(), "rank 0: joining the world timed out after 1 s waiting for ranks 1,2"));
  }
}

TEST_CASE("store: an unreachable server is a fault naming the address after the timeout") {
  int port;
  {
    StoreServer probe(0, 1, fast());
    port = probe.port();
  }
  try {
    client(port, 1, 2, 500ms);
    FAIL("expected a RuntimeFault");
  } catch (const fm::RuntimeFault& e) {
    CHECK(contains(e.what(), "rank 1: could not reach the rendezvous store at 127.0.0.1:" + std::to_string(port)));
  }
}
