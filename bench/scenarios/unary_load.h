// The gRPC load of tasktrail-bench: `concurrency` unary calls kept in
// flight over the client pool (bench_common.h) with the callback API, each
// in-flight slot issuing its next call from the completion of the previous
// one. Workloads: health, submit, submit-dup, event, get, get-timeline,
// queue-status, mixed, and the preload that creates the tasks the reads and
// events use.
//
// Thread safety: Preload and Run are called from one thread; the slots run
// on gRPC's callback threads while a run lasts.
#ifndef TASKTRAIL_BENCH_SCENARIOS_UNARY_LOAD_H_
#define TASKTRAIL_BENCH_SCENARIOS_UNARY_LOAD_H_

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "bench/bench_common.h"

namespace tasktrail::bench {

class Engine;

// One in-flight call at a time; the next one is issued from the completion
// (closed loop) or at the next scheduled time (--rate: open loop).
struct Slot {
  Engine* engine = nullptr;
  int index = 0;
  Connection* connection = nullptr;
  std::mt19937_64 rng;
  uint64_t sequence = 0;
  // Measured-window tallies (only this slot's completions touch them).
  RunResult tally;
  // Workload state.
  int step = 0;
  int polls_done = 0;
  std::string task_id;
  v1::SubmitTaskRequest fixed_submit;  // submit-dup
  std::vector<std::string> created;    // preload
  // --rate: when the next call was scheduled (its latency counts from
  // there, so that a late start is measured, not hidden), and the status
  // of the previous call while the slot waits for a scheduled time.
  SteadyClock::time_point scheduled;
  grpc::Status previous;
};

class Engine {
 public:
  Engine(const Flags& flags, std::vector<Connection>* connections,
         std::string nonce)
      : flags_(flags), connections_(connections), nonce_(std::move(nonce)) {}

  // Creates `count` tasks (submit, queued, 3 polls each) with
  // `concurrency` in flight. Returns the created ids; failures are counted
  // and reported by the caller through the result.
  RunResult Preload(int64_t count, int concurrency,
                    std::vector<std::string>* ids);

  // Runs `workload` for `seconds` (after the warmup); seconds < 0: until the
  // preload is done.
  RunResult Run(const std::string& workload, int concurrency, double seconds);

  void set_ids(const std::vector<std::string>* ids) { ids_ = ids; }

 private:
  // Issues one unary call through the callback API and hands the response to
  // `then` (on a gRPC thread), after the latency has been recorded.
  template <typename Request, typename Response, typename Start, typename Then>
  void Call(Slot* slot, Request request, Start start, Then then);

  // Prints the message of the first failure of each status code on stderr,
  // so that an error count comes with its cause.
  void ReportFirstError(const grpc::Status& status);

  const std::string& RandomId(Slot* slot);

  void Finish();

  void Submit(Slot* slot, v1::SubmitTaskRequest request);

  void Event(Slot* slot, v1::RecordEventRequest request);

  void Get(Slot* slot, const std::string& task_id, bool include_events);

  void QueueStatus(Slot* slot, const std::string& task_id);

  void Health(Slot* slot);

  std::string Tag(Slot* slot);

  // Issues the slot's next call, or retires the slot once stopping; with
  // --rate, parks the slot until a scheduled time is due. `previous` is the
  // status of the call that just completed.
  void Next(Slot* slot, const grpc::Status& previous);

  // Issues the next call of the workload on `slot`.
  void Issue(Slot* slot, const grpc::Status& previous);

  // --rate: hands each scheduled time (every 1/rate s from the start) to a
  // parked slot, or keeps it until a slot completes; retires the parked
  // slots once stopping. Runs on its own thread for the whole run.
  void Schedule(double rate);

  // --rate: takes the oldest due time not yet issued for `slot` (true), or
  // parks the slot (false); retires it if the schedule has ended.
  bool TakeScheduledTime(Slot* slot, const grpc::Status& previous);

  // submit, queued, get, polls, started, queue-status, completed, downloaded.
  void NextMixed(Slot* slot, const grpc::Status& previous);

  // submit, queued, 3 polls per task (then completed with
  // --preload-finished), until preload_target_ tasks exist.
  void NextPreload(Slot* slot, const grpc::Status& previous);

  static constexpr int kAccounts = 1000;

  const Flags& flags_;
  std::vector<Connection>* connections_;
  const std::string nonce_;
  std::string workload_;
  int run_ = 0;  // distinguishes the tags of successive runs
  std::atomic<Phase> phase_{Phase::kWarmup};
  std::vector<std::unique_ptr<Slot>> slots_;
  const std::vector<std::string>* ids_ = nullptr;
  std::atomic<uint64_t> event_counter_{0};
  std::atomic<int> callbacks_running_{0};
  std::array<std::atomic<bool>, kStatusCodes> error_reported_{};
  std::atomic<int64_t> preload_next_{0};
  int64_t preload_target_ = 0;
  std::mutex mutex_;
  std::condition_variable done_;
  int active_ = 0;
  // --rate (guarded by schedule_mutex_): the parked slots, the due times no
  // slot was free for (oldest first), and whether the schedule has ended.
  bool open_loop_ = false;
  std::mutex schedule_mutex_;
  std::vector<Slot*> parked_;
  std::deque<SteadyClock::time_point> due_;
  bool schedule_ended_ = false;
};

}  // namespace tasktrail::bench

#endif  // TASKTRAIL_BENCH_SCENARIOS_UNARY_LOAD_H_
