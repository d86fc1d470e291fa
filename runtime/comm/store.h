// Rendezvous store and liveness for ranks started by environment variables (RANK, WORLD_SIZE,
// MASTER_ADDR, MASTER_PORT).
//
// Rank 0 serves a small TCP key-value store on MASTER_PORT (all interfaces); every rank, rank 0
// included, connects to MASTER_ADDR:MASTER_PORT. Clients retry connecting until their timeout, so
// start order does not matter; a port already taken is an InputError naming MASTER_PORT.
//   set(key, value), get(key) (waits until the key exists), wait(keys), add(key, delta) (atomic
//   counter), all bounded by the client's timeout.
// Liveness: each client also holds a heartbeat connection to the server (ping every second). When
// that connection closes before the rank said goodbye (the process died or exited on an error), or
// stays silent past heartbeat_timeout, the server tells every other rank "rank R lost"; a rank
// that fails announces its own message first ("rank R failed: ..."). Clients whose connection to
// the server breaks report rank 0 lost. Waits of the store and of communicators built on it end
// with a RuntimeFault naming the lost rank; a process that does not end by itself within
// exit_grace is ended by the `fatal` handler (abort_job in bootstrap).
// Wire format: frames of [u32 length][u8 op][u16 fields]([u32 length][bytes])*, integers as text.
// There is no authentication: use it on trusted networks only, like MPI and Gloo themselves.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/comm/communicator.h"

namespace fm::comm {

struct LivenessConfig {
  Millis heartbeat_interval{1000};
  Millis heartbeat_timeout{10000};  // silence after which a peer (or the server) counts as lost
  Millis exit_grace{5000};          // lost peer known, process still running: call `fatal`; 0 = never
  std::function<void(const std::string& message)> fatal;  // must not return (e.g. abort_job)
};

struct LostPeer {
  int rank = -1;
  std::string reason;  // a full sentence naming the rank: "rank 3 (host vm) lost: ..."
};

class StoreServer {
 public:
  // Listens on all interfaces at `port` (0 picks a free one, for tests). A port in use is an
  // InputError naming `port_variable`.
  StoreServer(int port, int world_size, LivenessConfig cfg = {}, std::string port_variable = "MASTER_PORT");
  ~StoreServer();  // stops at once
  StoreServer(const StoreServer&) = delete;
  StoreServer& operator=(const StoreServer&) = delete;

  int port() const;
  // The failure of a rank in this process (rank 0), told to every rank before the process ends.
  void announce_failure(int rank, const std::string& message);
  // Waits (up to `wait`) until every rank said goodbye or was lost, then stops serving.
  void shutdown(Millis wait);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class StoreClient {
 public:
  // Connects (retrying until `timeout`) and registers `rank` for liveness. Throws InputError for
  // an unresolvable host (naming `addr_variable`), RuntimeFault when the server cannot be reached
  // or rejects the rank (another job on the same port).
  StoreClient(const std::string& host, int port, int rank, int world_size, Millis timeout,
              LivenessConfig cfg = {}, std::string addr_variable = "MASTER_ADDR");
  ~StoreClient();  // leaves without goodbye unless close() ran (peers then see this rank lost)
  StoreClient(const StoreClient&) = delete;
  StoreClient& operator=(const StoreClient&) = delete;

  void set(const std::string& key, const std::string& value);
  std::string get(const std::string& key);  // waits until the key exists
  void wait(const std::vector<std::string>& keys);
  void wait(const std::vector<std::string>& keys, Millis timeout);
  long long add(const std::string& key, long long delta);
  // Waits for keys; on timeout names the ranks whose key is missing (`ranks[i]` owns `keys[i]`).
  void wait_for_ranks(const std::vector<std::string>& keys, const std::vector<int>& ranks, const std::string& what);

  int rank() const;
  int world_size() const;
  Millis timeout() const;
  std::string endpoint() const;       // "host:port"
  std::string local_address() const;  // this host's address on the route to the server

  // ---- liveness -----------------------------------------------------------------------------
  std::optional<LostPeer> lost() const;
  // Called once, from the heartbeat thread, when a lost peer becomes known (or at once if known).
  int add_lost_listener(std::function<void(const LostPeer&)> fn);
  void remove_lost_listener(int id);
  // Tells the server (best effort, short) that this rank fails with `message`.
  void announce_failure(const std::string& message);
  // Says goodbye: from now on this rank's exit is not a loss. Idempotent.
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fm::comm
