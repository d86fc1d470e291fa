#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

#include "pipeline/schedule.h"

using namespace fm::pipeline;
using K = InstructionKind;

namespace {

constexpr int kMaxStages = 8;
constexpr int kMaxMicroBatches = 16;

bool is_train(ScheduleKind kind) { return kind != ScheduleKind::Inference; }

// The stage a transfer goes to or comes from.
int peer(const Instruction& in, int stage) {
  switch (in.kind) {
    case K::SendActivation:
      return stage + 1;
    case K::RecvGrad:
      return stage + 1;
    case K::SendGrad:
      return stage - 1;
    case K::RecvActivation:
      return stage - 1;
    default:
      return -1;
  }
}

K matching_recv(K send) { return send == K::SendActivation ? K::RecvActivation : K::RecvGrad; }

// Runs one step of every stage with blocking, unbuffered transfers: a send completes only when
// the peer's current instruction is the matching receive of the same micro-batch. Returns false if
// the stages cannot all finish the step (a deadlock or an unmatched transfer).
bool run_step_blocking(const std::vector<Schedule>& stages, size_t t, std::string& why) {
  const int p = static_cast<int>(stages.size());
  std::vector<size_t> pc(p, 0);
  auto current = [&](int s) -> const Instruction* {
    const Step& step = stages[s].steps[t];
    return pc[s] < step.size() ? &step[pc[s]] : nullptr;
  };
  for (bool progress = true; progress;) {
    progress = false;
    for (int s = 0; s < p; ++s) {
      while (const Instruction* in = current(s)) {
        if (is_recv(in->kind)) break;  // completes when its sender gets here
        if (is_send(in->kind)) {
          const int q = peer(*in, s);
          if (q < 0 || q >= p) {
            why = fmt::format("stage {} sends to missing stage {}", s, q);
            return false;
          }
          const Instruction* r = current(q);
          if (!r || r->kind != matching_recv(in->kind) || peer(*r, q) != s) break;
          if (r->micro_batch != in->micro_batch) {
            why = fmt::format("stage {} sends micro-batch {}, stage {} expects {}", s, in->micro_batch, q,
                              r->micro_batch);
            return false;
          }
          ++pc[q];
        }
        ++pc[s];
        progress = true;
      }
    }
  }
  for (int s = 0; s < p; ++s) {
    if (current(s)) {
      why = fmt::format("stage {} blocked at {}", s, to_string(*current(s)));
      return false;
    }
  }
  return true;
}

// Per-stage checks of one schedule: each micro-batch is loaded/received, forwarded, sent,
// (for training) backwarded exactly once and in that order; a micro-batch keeps one buffer from its first to
// its last instruction and no two micro-batches share a buffer while both are in use; the number of
// micro-batches between forward and backward stays within `max_live`.
void check_stage(const Schedule& sch, int max_live) {
  const int p = sch.stages, m = sch.micro_batches, s = sch.stage;
  const bool first = s == 0, last = s == p - 1, train = is_train(sch.kind);
  CAPTURE(p);
  CAPTURE(m);
  CAPTURE(s);
  std::map<std::pair<int, int>, std::vector<int>> when;  // (kind, mb) -> instruction positions
  std::map<int, std::set<int>> buffers_of;               // mb -> buffers it used
  std::map<int, std::pair<int, int>> span;               // mb -> first/last position
  int pos = 0, live = 0, max_seen = 0;
  int tails = 0;
  for (size_t t = 0; t < sch.steps.size(); ++t) {
    for (const Instruction& in : sch.steps[t]) {
      ++pos;
      if (in.micro_batch < 0) {
        CHECK(in.buffer == -1);
        CHECK(t == sch.steps.size() - 1);
        ++tails;
        continue;
      }
      REQUIRE(in.micro_batch < m);
      REQUIRE(in.buffer >= 0);
      REQUIRE(in.buffer < sch.num_buffers);
      when[{static_cast<int>(in.kind), in.micro_batch}].push_back(pos);
      buffers_of[in.micro_batch].insert(in.buffer);
      auto [it, fresh] = span.try_emplace(in.micro_batch, pos, pos);
      if (!fresh) it->second.second = pos;
      if (in.kind == K::ForwardPass) max_seen = std::max(max_seen, ++live);
      if (in.kind == K::BackwardPass) --live;
    }
  }
  CHECK(tails == (train ? 3 : 0));
  if (train) {
    const Step& tail = sch.steps.back();
    REQUIRE(tail.size() >= 3);
    CHECK(tail[tail.size() - 3].kind == K::ReduceTiedGrads);
    CHECK(tail[tail.size() - 2].kind == K::ReduceGrads);
    CHECK(tail[tail.size() - 1].kind == K::OptimizerStep);
  }
  auto once = [&](K k, int mb, bool expected) -> int {
    auto it = when.find({static_cast<int>(k), mb});
    const size_t n = it == when.end() ? 0 : it->second.size();
    CHECK_MESSAGE(n == (expected ? 1u : 0u), fmt::format("{} of micro-batch {}", to_string({k, 0, mb}), mb));
    return n ? it->second.front() : -1;
  };
  for (int mb = 0; mb < m; ++mb) {
    CAPTURE(mb);
    const int load = once(K::LoadMicroBatch, mb, first || last);
    const int recv_a = once(K::RecvActivation, mb, !first);
    const int fwd = once(K::ForwardPass, mb, true);
    const int send_a = once(K::SendActivation, mb, !last);
    if (load >= 0) CHECK(load < fwd);
    if (recv_a >= 0) CHECK(recv_a < fwd);
    if (send_a >= 0) CHECK(fwd < send_a);
    const int recv_g = once(K::RecvGrad, mb, train && !last);
    const int bwd = once(K::BackwardPass, mb, train);
    const int send_g = once(K::SendGrad, mb, train && !first);
    if (train) {
      CHECK(fwd < bwd);
      if (recv_g >= 0) CHECK(recv_g < bwd);
      if (send_g >= 0) CHECK(bwd < send_g);
    }
    CHECK(buffers_of[mb].size() == 1u);
  }
  // Buffers are exclusive while in use.
  for (int a = 0; a < m; ++a)
    for (int b = a + 1; b < m; ++b) {
      const bool overlap = span[a].first <= span[b].second && span[b].first <= span[a].second;
      if (overlap)
        CHECK_MESSAGE(*buffers_of[a].begin() != *buffers_of[b].begin(),
                      fmt::format("micro-batches {} and {} share a buffer", a, b));
    }
  if (train) CHECK(max_seen <= max_live);
}

void check_kind(ScheduleKind kind) {
  for (int p = 1; p <= kMaxStages; ++p) {
    for (int m = 1; m <= kMaxMicroBatches; ++m) {
      std::vector<Schedule> all;
      for (int s = 0; s < p; ++s) all.push_back(make_schedule(kind, p, m, s));
      for (const Schedule& sch : all) {
        REQUIRE(sch.steps.size() == all[0].steps.size());
        CHECK(sch.num_buffers == num_buffers(kind, p, m, sch.stage));
        const int max_live = kind == ScheduleKind::OneFOneB ? std::min(p - sch.stage, m) : m;
        check_stage(sch, max_live);
      }
      for (size_t t = 0; t < all[0].steps.size(); ++t) {
        std::string why;
        CHECK_MESSAGE(run_step_blocking(all, t, why),
                      fmt::format("{} p={} m={} step {}: {}", schedule_kind_name(kind), p, m, t, why));
      }
    }
  }
}

}  // namespace

TEST_CASE("1F1B: structure, buffers, live activations and blocking transfers for p<=8, m<=16") {
  check_kind(ScheduleKind::OneFOneB);
}

TEST_CASE("GPipe: structure, buffers and blocking transfers for p<=8, m<=16") {
  check_kind(ScheduleKind::GPipe);
}

TEST_CASE("inference: structure and blocking transfers for p<=8, m<=16") {
  check_kind(ScheduleKind::Inference);
}

TEST_CASE("1F1B timing: forward of micro-batch i at step 2i+s, backward at 2i+2p-s-1") {
  for (int p = 1; p <= kMaxStages; ++p)
    for (int m = 1; m <= kMaxMicroBatches; ++m)
      for (int s = 0; s < p; ++s) {
        const Schedule sch = train_schedule_1f1b(p, m, s);
        CHECK(sch.steps.size() == static_cast<size_t>(2 * (m + p - 1)));
        for (size_t t = 0; t < sch.steps.size(); ++t)
          for (const Instruction& in : sch.steps[t]) {
            if (in.kind == K::ForwardPass) CHECK(static_cast<int>(t) == 2 * in.micro_batch + s);
            if (in.kind == K::BackwardPass) CHECK(static_cast<int>(t) == 2 * in.micro_batch + 2 * p - s - 1);
          }
      }
}

TEST_CASE("1F1B buffer counts and the documented p=4 m=4 stage 0 stream") {
  CHECK(num_buffers(ScheduleKind::OneFOneB, 4, 4, 0) == 4);
  CHECK(num_buffers(ScheduleKind::OneFOneB, 4, 4, 3) == 2);
  CHECK(num_buffers(ScheduleKind::OneFOneB, 8, 3, 1) == 3);
  CHECK(num_buffers(ScheduleKind::GPipe, 4, 6, 1) == 6);
  CHECK(num_buffers(ScheduleKind::Inference, 4, 6, 1) == 2);
  const Schedule sch = train_schedule_1f1b(4, 4, 0);
  std::vector<std::string> text;
  for (const Step& step : sch.steps) {
    std::string line;
    for (const Instruction& in : step) {
      if (!line.empty()) line += ' ';
      line += to_string(in);
    }
    text.push_back(line);
  }
  // Step by step as in DeepSpeed's TrainSchedule (stage 0 of 4, 4 micro-batches).
  REQUIRE(text.size() == 14);
  CHECK(text[0] == "LoadMicroBatch(buffer_id=0) ForwardPass(buffer_id=0)");
  CHECK(text[1] == "SendActivation(buffer_id=0)");
  CHECK(text[6] == "LoadMicroBatch(buffer_id=3) ForwardPass(buffer_id=3)");
  CHECK(text[7] == "RecvGrad(buffer_id=0) SendActivation(buffer_id=3) BackwardPass(buffer_id=0)");
  CHECK(text[8].empty());
  CHECK(text[13] ==
        "RecvGrad(buffer_id=3) BackwardPass(buffer_id=3) ReduceTiedGrads() ReduceGrads() OptimizerStep()");
}

TEST_CASE("schedule kind names round-trip") {
  for (ScheduleKind k : {ScheduleKind::OneFOneB, ScheduleKind::GPipe, ScheduleKind::Inference}) {
    ScheduleKind back{};
    REQUIRE(parse_schedule_kind(schedule_kind_name(k), back));
    CHECK(back == k);
  }
  ScheduleKind unused{};
  CHECK_FALSE(parse_schedule_kind("interleaved", unused));
}
