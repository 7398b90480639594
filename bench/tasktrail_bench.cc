// tasktrail-bench: the load generator of tasktrail.
//
// Drives a running tasktraild with the gRPC callback API: `concurrency` calls
// are kept in flight, spread over a few separate connections, each in-flight
// slot issuing its next call from the completion of the previous one. Every
// call has a deadline. Latencies go into per-slot log-linear histograms that
// are merged at the end (bounded memory whatever the duration).
//
// Workloads (comma-separated lists of workloads and concurrencies run as
// their product, in order, against one preloaded task set):
//   health        grpc.health.v1.Health/Check
//   submit        SubmitTask of unique tasks (durable write)
//   submit-dup    the same SubmitTask again (each slot repeats its own
//                 request, same request_id): the dedup path
//   event         RecordEvent polls with changing progress on existing tasks
//   get           GetTask on existing tasks as a gateway asks (the snapshot,
//                 no timeline: the RPC's default)
//   get-timeline  GetTask with include_events: support's read of the task
//                 and its whole timeline
//   queue-status  GetQueueStatus on existing tasks
//   mixed         a gateway's day per task: submit, queued, get-timeline,
//                 10 polls, started, queue-status, completed, downloaded
//   store-submit  no gRPC: Tracker::SubmitTask on a TaskStore opened on --db,
//                 from `concurrency` threads: the ceiling for durable submits
//
// --rotations N measures the whole list N times over, each run for
// --duration / N seconds, and reports each run once, merged over the
// rotations: workloads that are compared with each other (a read against
// health, submit against store-submit) are then measured within the same
// seconds rather than a minute apart, while the machine's speed drifts.
//
// --watchers N opens N WatchTask streams on one hot task before the runs,
// and a writer records a poll on that task --watch-rate times a second
// while they run: the workloads (event: writes to other tasks) are then
// measured beside watchers receiving events. After the runs the streams
// must all have received the hot task's last event; a summary line follows.
//
// --exporters N runs N ExportTasks streams (each on its own connection) over
// the whole store, timelines included, while the runs run (with --workload
// none: for --duration s), each starting again from the first task when it
// reaches the end: the workloads are then measured beside exports. A summary
// line follows the runs: tasks exported per second over the runs, and the time
// of each whole pass.
//
// --preload-finished completes every preloaded task (SUCCEEDED) after its
// polls, so that a retention run has finished tasks to purge.
//
// --save-tasks FILE keeps the preloaded task ids; --load-tasks FILE reuses
// them in a later process against the same store (so that a store can be
// loaded once, the server restarted, and only then measured). With
// --save-tasks, --workload none only preloads.
//
// Output: one line per run (or one JSON object per line with --json) with
// calls/s, p50/p90/p99/p999 latency and errors by status code. Exit status:
// 0 when every run completed, 1 when any call failed or a run made no calls
// (so that smoke tests can rely on it), 2 on a usage error.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "bench/latency_histogram.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "service/rules/catalog.h"
#include "service/rules/clock.h"
#include "service/tracker/event_hub.h"
#include "service/tracker/tracker.h"
#include "store/task_store.h"
#include "tasktrail/v1/tracker.grpc.pb.h"
#include "tests/support/tracker_setup.h"

namespace tasktrail::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;
namespace health = grpc::health::v1;

constexpr int kStatusCodes = 17;  // grpc::StatusCode 0..16

// The canonical name of a status code (gRPC and absl share the numbering).
std::string CodeName(int code) {
  if (code < 0 || code >= kStatusCodes) return "UNKNOWN";
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

int CodeIndex(int code) { return code >= 0 && code < kStatusCodes ? code : 2; }

struct Flags {
  std::string server = "127.0.0.1:50051";
  std::string workloads = "health";
  std::string concurrencies = "64";
  double duration = 5;
  double warmup = 0.5;
  int64_t preload = 0;
  int preload_concurrency = 128;
  bool json = false;
  int channels = 4;
  double deadline = 10;
  uint64_t seed = 42;
  std::string db;
  bool sync = true;
  int mixed_polls = 10;
  bool quiet = false;
  bool probe = false;
  std::string save_tasks;
  std::string load_tasks;
  int rotations = 1;
  int watchers = 0;
  double watch_rate = 5;
  int exporters = 0;
  bool preload_finished = false;
};

// What one workload run measured.
struct RunResult {
  std::string workload;
  int concurrency = 0;
  double seconds = 0;
  uint64_t calls = 0;  // completed in the measured window, errors included
  std::array<uint64_t, kStatusCodes> codes{};
  uint64_t deduplicated = 0;  // SubmitTask answers marked deduplicated
  LatencyHistogram latency;

  uint64_t errors() const { return calls - codes[0]; }

  // Counts one call that ended with status `code` after `micros`.
  void Record(int code, uint64_t micros) {
    ++calls;
    ++codes[CodeIndex(code)];
    latency.Record(micros);
  }

  // Adds the calls of another run (or of one slot or thread of this run).
  void Merge(const RunResult& other) {
    seconds += other.seconds;
    calls += other.calls;
    for (int c = 0; c < kStatusCodes; ++c) codes[c] += other.codes[c];
    deduplicated += other.deduplicated;
    latency.Merge(other.latency);
  }
};

// ---------------------------------------------------------------------------
// Request generation. Deterministic from --seed; a per-process nonce keeps
// prompts and request ids unique across repeated runs against one store.

const char* const kSubjects[] = {"a red fox",     "an old lighthouse",
                                 "a paper boat",  "a city at night",
                                 "a hummingbird", "waves on basalt"};
const char* const kActions[] = {"in falling snow",   "under a storm",
                                "at golden hour",    "in slow motion",
                                "seen from a drone", "drawn in ink"};

// The random sequence of slot (or thread) `index` in the `run`-th run:
// deterministic from --seed, and different in every run, so that a rotation
// does not replay the previous one's choices.
std::mt19937_64 RunRng(uint64_t seed, int run, int index) {
  std::seed_seq sequence{seed, static_cast<uint64_t>(run),
                         static_cast<uint64_t>(index)};
  return std::mt19937_64(sequence);
}

std::string RunNonce() {
  return absl::StrCat(getpid(), "-",
                      std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                              .count() %
                          100000000);
}

// A valid submission against the built-in catalog (kling-v2-1 or veo-3).
v1::SubmitTaskRequest MakeSubmit(std::mt19937_64& rng, const std::string& tag,
                                 int accounts) {
  v1::SubmitTaskRequest request;
  const uint64_t r = rng();
  request.set_account_id(absl::StrCat("acct-", r % accounts));
  request.set_api_key_id(absl::StrCat("key-", r % accounts));
  request.set_group("default");
  const bool veo = (r >> 20) % 4 == 0;
  request.set_model(veo ? "veo-3" : "kling-v2-1");
  request.set_endpoint("/v1/videos");
  request.set_request_id(absl::StrCat("rq-", tag));
  request.set_charge_units(veo ? 120 : 40);
  v1::TaskParams* params = request.mutable_params();
  params->set_prompt(absl::StrCat(kSubjects[(r >> 8) % 6], " ",
                                  kActions[(r >> 12) % 6], ", take ", tag));
  params->set_aspect_ratio((r >> 16) % 3 == 0 ? "9:16" : "16:9");
  params->set_resolution((r >> 24) % 2 == 0 ? "720p" : "1080p");
  params->set_duration_seconds(veo ? 8 : ((r >> 28) % 2 == 0 ? 5 : 10));
  if (veo) {  // kling-v2-1 takes no seed
    params->set_seed(static_cast<int64_t>((r >> 32) % 100000));
    params->set_generate_audio(true);
  }
  return request;
}

v1::RecordEventRequest MakeQueued(const std::string& task_id, int position) {
  v1::RecordEventRequest request;
  request.set_task_id(task_id);
  request.mutable_queued()->set_upstream_task_id(absl::StrCat("up-", task_id));
  request.mutable_queued()->set_queue_position(position);
  return request;
}

v1::RecordEventRequest MakePoll(const std::string& task_id, int progress,
                                int position) {
  v1::RecordEventRequest request;
  request.set_task_id(task_id);
  v1::PolledDetail* polled = request.mutable_polled();
  polled->set_upstream_status(position > 0 ? "in_queue" : "processing");
  polled->set_progress_percent(progress);
  polled->set_queue_position(position);
  polled->set_http_status(200);
  return request;
}

// ---------------------------------------------------------------------------
// The gRPC load engine.

struct Connection {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::TaskTracker::Stub> tracker;
  std::unique_ptr<health::Health::Stub> health;
};

std::vector<Connection> Connect(const Flags& flags) {
  std::vector<Connection> connections;
  for (int i = 0; i < flags.channels; ++i) {
    grpc::ChannelArguments args;
    // Separate subchannel pools: each channel is its own TCP connection.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("tasktrail.bench.channel", i);
    Connection c;
    c.channel = grpc::CreateCustomChannel(
        flags.server, grpc::InsecureChannelCredentials(), args);
    c.tracker = v1::TaskTracker::NewStub(c.channel);
    c.health = health::Health::NewStub(c.channel);
    connections.push_back(std::move(c));
  }
  return connections;
}

enum class Phase { kWarmup, kMeasure, kStop };

class Engine;

// One in-flight call at a time; the next one is issued from the completion.
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
                    std::vector<std::string>* ids) {
    preload_target_ = count;
    preload_next_ = 0;
    RunResult result = Run("preload", concurrency, -1);
    for (auto& slot : slots_) {
      for (std::string& id : slot->created) ids->push_back(std::move(id));
    }
    slots_.clear();
    return result;
  }

  // Runs `workload` for `seconds` (after the warmup); seconds < 0: until the
  // preload is done.
  RunResult Run(const std::string& workload, int concurrency, double seconds) {
    workload_ = workload;
    ++run_;
    phase_ = seconds < 0 ? Phase::kMeasure : Phase::kWarmup;
    slots_.clear();
    for (int i = 0; i < concurrency; ++i) {
      auto slot = std::make_unique<Slot>();
      slot->engine = this;
      slot->index = i;
      slot->connection = &(*connections_)[i % connections_->size()];
      slot->rng = RunRng(flags_.seed, run_, i);
      slots_.push_back(std::move(slot));
    }
    active_ = concurrency;
    for (auto& slot : slots_) Next(slot.get(), grpc::Status::OK);

    SteadyClock::time_point start = SteadyClock::now();
    SteadyClock::time_point end;
    if (seconds >= 0) {
      std::this_thread::sleep_for(std::chrono::duration<double>(flags_.warmup));
      start = SteadyClock::now();
      phase_ = Phase::kMeasure;
      std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
      end = SteadyClock::now();
      phase_ = Phase::kStop;
    }
    {
      std::unique_lock<std::mutex> lock(mutex_);
      SteadyClock::time_point last_report = SteadyClock::now();
      while (active_ > 0) {
        done_.wait_for(lock, std::chrono::seconds(1));
        if (seconds < 0 && !flags_.quiet &&
            SteadyClock::now() - last_report > std::chrono::seconds(10)) {
          last_report = SteadyClock::now();
          fprintf(stderr, "preload: %lld of %lld tasks\n",
                  static_cast<long long>(
                      std::min(preload_next_.load(), preload_target_)),
                  static_cast<long long>(preload_target_));
        }
      }
    }
    // The callback that finished the last slot may still be deleting its
    // call; the slots and the channels must outlive it.
    while (callbacks_running_.load(std::memory_order_acquire) > 0) {
      std::this_thread::yield();
    }
    if (seconds < 0) end = SteadyClock::now();

    RunResult result;
    result.workload = workload;
    result.concurrency = concurrency;
    result.seconds = std::chrono::duration<double>(end - start).count();
    for (auto& slot : slots_) result.Merge(slot->tally);
    return result;
  }

  void set_ids(const std::vector<std::string>* ids) { ids_ = ids; }

 private:
  // Issues one unary call through the callback API and hands the response to
  // `then` (on a gRPC thread), after the latency has been recorded.
  template <typename Request, typename Response, typename Start, typename Then>
  void Call(Slot* slot, Request request, Start start, Then then) {
    struct Pending {
      grpc::ClientContext context;
      Request request;
      Response response;
      SteadyClock::time_point began;
    };
    auto* pending = new Pending;
    pending->request = std::move(request);
    pending->context.set_deadline(
        std::chrono::system_clock::now() +
        std::chrono::microseconds(static_cast<int64_t>(flags_.deadline * 1e6)));
    pending->began = SteadyClock::now();
    start(slot->connection, &pending->context, &pending->request,
          &pending->response, [this, slot, pending, then](grpc::Status status) {
            callbacks_running_.fetch_add(1, std::memory_order_relaxed);
            const auto micros =
                std::chrono::duration_cast<std::chrono::microseconds>(
                    SteadyClock::now() - pending->began)
                    .count();
            if (phase_ == Phase::kMeasure) {
              slot->tally.Record(status.error_code(),
                                 static_cast<uint64_t>(micros));
            }
            if (!status.ok()) ReportFirstError(status);
            then(status, pending->response);
            delete pending;
            // The last touch of this engine's state: Run waits for it.
            callbacks_running_.fetch_sub(1, std::memory_order_release);
          });
  }

  // Prints the message of the first failure of each status code on stderr,
  // so that an error count comes with its cause.
  void ReportFirstError(const grpc::Status& status) {
    const int code = CodeIndex(status.error_code());
    if (error_reported_[code].exchange(true)) return;
    fprintf(stderr, "%s: first %s: %s\n", workload_.c_str(),
            CodeName(code).c_str(), status.error_message().c_str());
  }

  const std::string& RandomId(Slot* slot) {
    return (*ids_)[slot->rng() % ids_->size()];
  }

  void Finish() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (--active_ == 0) done_.notify_all();
  }

  void Submit(Slot* slot, v1::SubmitTaskRequest request) {
    Call<v1::SubmitTaskRequest, v1::SubmitTaskResponse>(
        slot, std::move(request),
        [](Connection* c, grpc::ClientContext* ctx,
           const v1::SubmitTaskRequest* req, v1::SubmitTaskResponse* resp,
           std::function<void(grpc::Status)> done) {
          c->tracker->async()->SubmitTask(ctx, req, resp, std::move(done));
        },
        [this, slot](const grpc::Status& status,
                     const v1::SubmitTaskResponse& response) {
          if (status.ok()) {
            if (response.deduplicated() && phase_ == Phase::kMeasure) {
              ++slot->tally.deduplicated;
            }
            slot->task_id = response.task().task_id();
          }
          Next(slot, status);
        });
  }

  void Event(Slot* slot, v1::RecordEventRequest request) {
    Call<v1::RecordEventRequest, v1::RecordEventResponse>(
        slot, std::move(request),
        [](Connection* c, grpc::ClientContext* ctx,
           const v1::RecordEventRequest* req, v1::RecordEventResponse* resp,
           std::function<void(grpc::Status)> done) {
          c->tracker->async()->RecordEvent(ctx, req, resp, std::move(done));
        },
        [this, slot](const grpc::Status& status,
                     const v1::RecordEventResponse&) { Next(slot, status); });
  }

  void Get(Slot* slot, const std::string& task_id, bool include_events) {
    v1::GetTaskRequest request;
    request.set_task_id(task_id);
    request.set_include_events(include_events);
    Call<v1::GetTaskRequest, v1::Task>(
        slot, std::move(request),
        [](Connection* c, grpc::ClientContext* ctx,
           const v1::GetTaskRequest* req, v1::Task* resp,
           std::function<void(grpc::Status)> done) {
          c->tracker->async()->GetTask(ctx, req, resp, std::move(done));
        },
        [this, slot](const grpc::Status& status, const v1::Task&) {
          Next(slot, status);
        });
  }

  void QueueStatus(Slot* slot, const std::string& task_id) {
    v1::GetQueueStatusRequest request;
    request.set_task_id(task_id);
    Call<v1::GetQueueStatusRequest, v1::QueueStatus>(
        slot, std::move(request),
        [](Connection* c, grpc::ClientContext* ctx,
           const v1::GetQueueStatusRequest* req, v1::QueueStatus* resp,
           std::function<void(grpc::Status)> done) {
          c->tracker->async()->GetQueueStatus(ctx, req, resp, std::move(done));
        },
        [this, slot](const grpc::Status& status, const v1::QueueStatus&) {
          Next(slot, status);
        });
  }

  void Health(Slot* slot) {
    Call<health::HealthCheckRequest, health::HealthCheckResponse>(
        slot, health::HealthCheckRequest(),
        [](Connection* c, grpc::ClientContext* ctx,
           const health::HealthCheckRequest* req,
           health::HealthCheckResponse* resp,
           std::function<void(grpc::Status)> done) {
          c->health->async()->Check(ctx, req, resp, std::move(done));
        },
        [this, slot](const grpc::Status& status,
                     const health::HealthCheckResponse&) {
          Next(slot, status);
        });
  }

  std::string Tag(Slot* slot) {
    return absl::StrCat(nonce_, "-", run_, "-", slot->index, "-",
                        slot->sequence++);
  }

  // Issues the slot's next call, or retires the slot once stopping.
  // `previous` is the status of the call that just completed.
  void Next(Slot* slot, const grpc::Status& previous) {
    if (phase_ == Phase::kStop) {
      Finish();
      return;
    }
    const std::string& w = workload_;
    if (w == "health") {
      Health(slot);
    } else if (w == "submit") {
      Submit(slot, MakeSubmit(slot->rng, Tag(slot), kAccounts));
    } else if (w == "submit-dup") {
      if (slot->fixed_submit.account_id().empty()) {
        // The same request in every run (and rotation) of this slot: its
        // own sequence, not the run's.
        std::mt19937_64 rng(flags_.seed * 1000003 + slot->index);
        slot->fixed_submit =
            MakeSubmit(rng, absl::StrCat(nonce_, "-dup-", slot->index), 1);
        slot->fixed_submit.set_account_id(
            absl::StrCat("dup-", nonce_, "-", slot->index));
      }
      Submit(slot, slot->fixed_submit);
    } else if (w == "event") {
      const uint64_t n = event_counter_.fetch_add(1);
      Event(slot, MakePoll(RandomId(slot), static_cast<int>(n % 100),
                           static_cast<int>(1 + n % 1000)));
    } else if (w == "get") {
      Get(slot, RandomId(slot), /*include_events=*/false);
    } else if (w == "get-timeline") {
      Get(slot, RandomId(slot), /*include_events=*/true);
    } else if (w == "queue-status") {
      QueueStatus(slot, RandomId(slot));
    } else if (w == "mixed") {
      NextMixed(slot, previous);
    } else if (w == "preload") {
      NextPreload(slot, previous);
    } else {
      Finish();
    }
  }

  // submit, queued, get, polls, started, queue-status, completed, downloaded.
  void NextMixed(Slot* slot, const grpc::Status& previous) {
    if (!previous.ok() || slot->task_id.empty()) slot->step = 0;
    const int polls = flags_.mixed_polls;
    switch (slot->step++) {
      case 0:
        slot->task_id.clear();
        slot->polls_done = 0;
        Submit(slot, MakeSubmit(slot->rng, Tag(slot), kAccounts));
        return;
      case 1:
        Event(slot, MakeQueued(slot->task_id, 40));
        return;
      case 2:
        Get(slot, slot->task_id, /*include_events=*/true);
        return;
      case 3:
        if (slot->polls_done < polls) {
          const int p = slot->polls_done++;
          // Before the call: its completion may run NextMixed on another
          // thread before Event returns.
          slot->step = 3;
          Event(slot, MakePoll(slot->task_id, p * 90 / std::max(polls, 1),
                               std::max(0, 40 - 4 * (p + 1))));
          return;
        }
        [[fallthrough]];
      case 4: {
        slot->step = 5;
        v1::RecordEventRequest started;
        started.set_task_id(slot->task_id);
        started.mutable_started()->set_progress_percent(90);
        Event(slot, std::move(started));
        return;
      }
      case 5:
        QueueStatus(slot, slot->task_id);
        return;
      case 6: {
        v1::RecordEventRequest completed;
        completed.set_task_id(slot->task_id);
        completed.mutable_completed()->add_result_uris(
            absl::StrCat("https://cdn.example.com/", slot->task_id, ".mp4"));
        Event(slot, std::move(completed));
        return;
      }
      default: {
        slot->step = 0;
        v1::RecordEventRequest downloaded;
        downloaded.set_task_id(slot->task_id);
        downloaded.mutable_downloaded()->set_uri(
            absl::StrCat("https://cdn.example.com/", slot->task_id, ".mp4"));
        downloaded.mutable_downloaded()->set_client("gateway");
        Event(slot, std::move(downloaded));
        return;
      }
    }
  }

  // submit, queued, 3 polls per task (then completed with
  // --preload-finished), until preload_target_ tasks exist.
  void NextPreload(Slot* slot, const grpc::Status& previous) {
    if (!previous.ok()) slot->step = 0;
    if (slot->step == 0) {
      if (preload_next_.fetch_add(1) >= preload_target_) {
        Finish();
        return;
      }
      slot->step = 1;
      slot->task_id.clear();
      Submit(slot, MakeSubmit(slot->rng, Tag(slot), kAccounts));
      return;
    }
    if (slot->step == 1) {
      slot->created.push_back(slot->task_id);
      slot->step = 2;
      Event(slot, MakeQueued(slot->task_id, 30));
      return;
    }
    if (slot->step == 5) {
      slot->step = 0;
      v1::RecordEventRequest completed;
      completed.set_task_id(slot->task_id);
      completed.mutable_completed()->add_result_uris(
          absl::StrCat("https://cdn.example.com/", slot->task_id, ".mp4"));
      Event(slot, std::move(completed));
      return;
    }
    const int poll = slot->step - 2;  // 0, 1, 2
    slot->step = poll < 2 ? slot->step + 1 : flags_.preload_finished ? 5 : 0;
    Event(slot, MakePoll(slot->task_id, 10 * poll, 30 - 10 * poll));
  }

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
};

// ---------------------------------------------------------------------------
// store-submit: SubmitTask's own work (validation, dedup lookups, the durable
// WriteBatch) from `concurrency` threads, without gRPC. The store is opened
// by the first run and kept open for the next ones (--rotations).
class StoreCeiling {
 public:
  explicit StoreCeiling(const Flags& flags) : flags_(flags) {}

  // Measures `seconds` after --warmup. `nonce` must differ between runs, so
  // that request ids never repeat.
  absl::StatusOr<RunResult> Run(int concurrency, double seconds,
                                const std::string& nonce) {
    if (tracker_ == nullptr) {
      store::StoreOptions options;
      options.path = flags_.db;
      options.sync_writes = flags_.sync;
      TrackerOptions tracker_options;
      tracker_options.id_seed = 0;  // from the OS: ids stay unique across runs
      absl::StatusOr<testing::OpenedTracker> opened = testing::OpenTracker(
          options, &catalog_, SystemClock::Get(), &hub_, tracker_options);
      if (!opened.ok()) return opened.status();
      store_ = std::move(opened->store);
      tracker_ = std::move(opened->tracker);
    }
    const int run = ++runs_;
    std::atomic<Phase> phase{Phase::kWarmup};
    std::vector<RunResult> workers(concurrency);
    std::vector<std::thread> threads;
    for (int i = 0; i < concurrency; ++i) {
      threads.emplace_back([&, i] {
        RunResult& worker = workers[i];
        std::mt19937_64 rng = RunRng(flags_.seed, run, i);
        for (uint64_t n = 0; phase != Phase::kStop; ++n) {
          const v1::SubmitTaskRequest request = MakeSubmit(
              rng, absl::StrCat(nonce, "-s", concurrency, "-", i, "-", n),
              1000);
          const SteadyClock::time_point began = SteadyClock::now();
          absl::StatusOr<v1::SubmitTaskResponse> response =
              AwaitWrite(*tracker_, &Tracker::SubmitTask, request, "bench");
          const auto micros =
              std::chrono::duration_cast<std::chrono::microseconds>(
                  SteadyClock::now() - began)
                  .count();
          if (phase == Phase::kMeasure) {
            worker.Record(static_cast<int>(response.status().code()),
                          static_cast<uint64_t>(micros));
            if (response.ok() && response->deduplicated()) {
              ++worker.deduplicated;
            }
          }
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(flags_.warmup));
    const SteadyClock::time_point start = SteadyClock::now();
    phase = Phase::kMeasure;
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    const SteadyClock::time_point end = SteadyClock::now();
    phase = Phase::kStop;
    for (std::thread& thread : threads) thread.join();

    RunResult result;
    result.workload = "store-submit";
    result.concurrency = concurrency;
    result.seconds = std::chrono::duration<double>(end - start).count();
    for (const RunResult& worker : workers) result.Merge(worker);
    return result;
  }

 private:
  const Flags& flags_;
  CatalogHolder catalog_{Catalog::BuiltIn()};
  EventHub hub_;
  std::unique_ptr<store::TaskStore> store_;
  std::unique_ptr<Tracker> tracker_;
  int runs_ = 0;  // distinguishes the random sequences of successive runs
};

// ---------------------------------------------------------------------------
// Reporting.

void Report(const RunResult& r, const Flags& flags, int64_t preloaded) {
  const double rate = r.seconds > 0 ? r.calls / r.seconds : 0;
  std::string errors;
  for (int c = 1; c < kStatusCodes; ++c) {
    if (r.codes[c] == 0) continue;
    if (flags.json) {
      absl::StrAppend(&errors, errors.empty() ? "" : ",", "\"", CodeName(c),
                      "\":", r.codes[c]);
    } else {
      absl::StrAppend(&errors, " ", CodeName(c), "=", r.codes[c]);
    }
  }
  if (flags.json) {
    printf(
        "{\"workload\":\"%s\",\"concurrency\":%d,\"seconds\":%.3f,"
        "\"calls\":%llu,\"errors\":%llu,\"errors_by_code\":{%s},"
        "\"calls_per_second\":%.1f,\"p50_us\":%llu,\"p90_us\":%llu,"
        "\"p99_us\":%llu,\"p999_us\":%llu,\"max_us\":%llu,\"mean_us\":%.1f,"
        "\"deduplicated\":%llu,\"preloaded\":%lld}\n",
        r.workload.c_str(), r.concurrency, r.seconds,
        static_cast<unsigned long long>(r.calls),
        static_cast<unsigned long long>(r.errors()), errors.c_str(), rate,
        static_cast<unsigned long long>(r.latency.Percentile(0.50)),
        static_cast<unsigned long long>(r.latency.Percentile(0.90)),
        static_cast<unsigned long long>(r.latency.Percentile(0.99)),
        static_cast<unsigned long long>(r.latency.Percentile(0.999)),
        static_cast<unsigned long long>(r.latency.max()), r.latency.mean(),
        static_cast<unsigned long long>(r.deduplicated),
        static_cast<long long>(preloaded));
  } else {
    printf(
        "%-13s c=%-4d %9.1f calls/s  calls=%-8llu p50=%lluus p90=%lluus "
        "p99=%lluus p999=%lluus max=%lluus  errors=%llu%s%s\n",
        r.workload.c_str(), r.concurrency, rate,
        static_cast<unsigned long long>(r.calls),
        static_cast<unsigned long long>(r.latency.Percentile(0.50)),
        static_cast<unsigned long long>(r.latency.Percentile(0.90)),
        static_cast<unsigned long long>(r.latency.Percentile(0.99)),
        static_cast<unsigned long long>(r.latency.Percentile(0.999)),
        static_cast<unsigned long long>(r.latency.max()),
        static_cast<unsigned long long>(r.errors()), errors.c_str(),
        r.deduplicated > 0
            ? absl::StrCat(" deduplicated=", r.deduplicated).c_str()
            : "");
  }
  fflush(stdout);
}

// ---------------------------------------------------------------------------
// --watchers: WatchTask streams on one hot task that keeps getting events.

// One WatchTask stream, read by the client's callback threads.
class HotWatch final : public grpc::ClientReadReactor<v1::TaskEvent> {
 public:
  HotWatch(v1::TaskTracker::Stub* stub, const std::string& task_id) {
    request_.set_task_id(task_id);
    stub->async()->WatchTask(&context_, &request_, this);
    StartRead(&event_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows
    last_seq_.store(event_.seq(), std::memory_order_relaxed);
    received_.fetch_add(1, std::memory_order_relaxed);
    StartRead(&event_);
  }

  void OnDone(const grpc::Status& status) override {
    std::lock_guard<std::mutex> lock(mutex_);
    status_ = status;
    done_ = true;
    ended_.notify_all();
  }

  void Cancel() { context_.TryCancel(); }
  // Waits until OnDone ran (at most until `deadline`).
  bool WaitDone(SteadyClock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mutex_);
    return ended_.wait_until(lock, deadline, [this] { return done_; });
  }
  bool done() {
    std::lock_guard<std::mutex> lock(mutex_);
    return done_;
  }
  grpc::Status status() {
    std::lock_guard<std::mutex> lock(mutex_);
    return status_;
  }
  int64_t last_seq() const { return last_seq_.load(std::memory_order_relaxed); }
  uint64_t received() const {
    return received_.load(std::memory_order_relaxed);
  }

 private:
  grpc::ClientContext context_;
  v1::WatchTaskRequest request_;
  v1::TaskEvent event_;
  std::atomic<int64_t> last_seq_{0};
  std::atomic<uint64_t> received_{0};
  std::mutex mutex_;
  std::condition_variable ended_;
  bool done_ = false;
  grpc::Status status_;
};

// The hot task, its watchers (over connections of their own, at most 200
// streams each) and the writer that keeps recording polls on it.
class HotTaskWatchers {
 public:
  struct Summary {
    int watchers = 0;
    int64_t hot_events = 0;  // the hot task's last seq when the writer stopped
    uint64_t delivered = 0;  // events received over all streams
    int caught_up = 0;       // streams that received the last seq
    int ended_early = 0;     // streams that ended before being cancelled
    uint64_t write_errors = 0;  // failed writes to the hot task
  };

  explicit HotTaskWatchers(const Flags& flags) : flags_(flags) {}
  ~HotTaskWatchers() { Stop(); }

  // Submits the hot task, opens the streams, waits (up to 120 s) until each
  // has its first event and starts the writer. False, with a message, when
  // that fails.
  bool Start(const std::string& nonce) {
    grpc::ChannelArguments writer_args;
    writer_args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    writer_ = v1::TaskTracker::NewStub(grpc::CreateCustomChannel(
        flags_.server, grpc::InsecureChannelCredentials(), writer_args));
    std::mt19937_64 rng(flags_.seed);
    v1::SubmitTaskRequest submit = MakeSubmit(rng, nonce + "-hot", 1);
    submit.set_account_id("hot-" + nonce);
    v1::SubmitTaskResponse submitted;
    grpc::ClientContext context;
    SetDeadline(&context);
    const grpc::Status status =
        writer_->SubmitTask(&context, submit, &submitted);
    if (!status.ok()) {
      fprintf(stderr, "watchers: the hot task was not submitted: %s\n",
              status.error_message().c_str());
      return false;
    }
    task_id_ = submitted.task().task_id();
    last_seq_ = submitted.task().last_event_seq();
    constexpr int kStreamsPerConnection = 200;
    for (int i = 0; i * kStreamsPerConnection < flags_.watchers; ++i) {
      grpc::ChannelArguments args;
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      args.SetInt("tasktrail.bench.watch_channel", i);
      stubs_.push_back(v1::TaskTracker::NewStub(grpc::CreateCustomChannel(
          flags_.server, grpc::InsecureChannelCredentials(), args)));
    }
    for (int i = 0; i < flags_.watchers; ++i) {
      watches_.push_back(std::make_unique<HotWatch>(
          stubs_[i / kStreamsPerConnection].get(), task_id_));
    }
    if (!WaitForSeq(last_seq_, std::chrono::seconds(120))) {
      fprintf(stderr, "watchers: not every stream got the first event\n");
      return false;
    }
    writer_thread_ = std::thread([this] { Write(); });
    return true;
  }

  // Stops the writer, waits (up to 60 s) until every stream has the last
  // event written, then cancels the streams.
  Summary Stop() {
    Summary summary;
    if (watches_.empty()) return summary;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    if (writer_thread_.joinable()) writer_thread_.join();
    WaitForSeq(last_seq_, std::chrono::seconds(60));
    summary.watchers = static_cast<int>(watches_.size());
    summary.hot_events = last_seq_;
    summary.write_errors = write_errors_;
    for (auto& watch : watches_) {
      summary.delivered += watch->received();
      if (watch->last_seq() >= last_seq_) ++summary.caught_up;
      if (watch->done()) ++summary.ended_early;
    }
    for (auto& watch : watches_) watch->Cancel();
    const auto deadline = SteadyClock::now() + std::chrono::seconds(30);
    for (auto& watch : watches_) watch->WaitDone(deadline);
    watches_.clear();
    return summary;
  }

 private:
  void SetDeadline(grpc::ClientContext* context) const {
    context->set_deadline(
        std::chrono::system_clock::now() +
        std::chrono::microseconds(static_cast<int64_t>(flags_.deadline * 1e6)));
  }

  // Waits until every stream has `seq` (or has ended); false on timeout.
  bool WaitForSeq(int64_t seq, std::chrono::seconds limit) {
    const auto deadline = SteadyClock::now() + limit;
    for (auto& watch : watches_) {
      while (watch->last_seq() < seq && !watch->done()) {
        if (SteadyClock::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
    return true;
  }

  // Records a poll on the hot task every 1/--watch-rate s until stopped.
  void Write() {
    const auto period = std::chrono::duration_cast<SteadyClock::duration>(
        std::chrono::duration<double>(1.0 / flags_.watch_rate));
    auto next = SteadyClock::now();
    for (int n = 1;; ++n) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        if (wake_.wait_until(lock, next, [this] { return stop_; })) return;
      }
      next += period;
      // Consecutive polls differ, so that none is folded.
      const v1::RecordEventRequest request = MakePoll(task_id_, n % 100, 0);
      v1::RecordEventResponse response;
      grpc::ClientContext context;
      SetDeadline(&context);
      const grpc::Status status =
          writer_->RecordEvent(&context, request, &response);
      if (status.ok()) {
        last_seq_ = response.seq();
      } else {
        ++write_errors_;
      }
    }
  }

  const Flags& flags_;
  std::unique_ptr<v1::TaskTracker::Stub> writer_;
  std::vector<std::unique_ptr<v1::TaskTracker::Stub>> stubs_;
  std::vector<std::unique_ptr<HotWatch>> watches_;
  std::string task_id_;
  std::thread writer_thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  // Written by the writer thread only; read after it was joined.
  int64_t last_seq_ = 0;
  uint64_t write_errors_ = 0;
};

// ---------------------------------------------------------------------------
// --exporters: ExportTasks streams over the whole store while the runs run.

class Exporters {
 public:
  struct Summary {
    int streams = 0;
    double seconds = 0;       // from Start to Stop
    uint64_t tasks = 0;       // received over all streams
    uint64_t bytes = 0;       // of the tasks received, serialized
    uint64_t passes = 0;      // streams that reached the end of the store
    double pass_seconds = 0;  // the mean time of those
    uint64_t pass_tasks = 0;  // tasks in the last whole pass
    uint64_t errors = 0;      // streams that ended neither OK nor cancelled
  };

  explicit Exporters(const Flags& flags) : flags_(flags) {}
  ~Exporters() { Stop(); }

  void Start() {
    start_ = SteadyClock::now();
    for (int i = 0; i < flags_.exporters; ++i) {
      threads_.emplace_back([this, i] { Export(i); });
    }
  }

  // Cancels the streams and waits for them.
  Summary Stop() {
    Summary summary;
    if (threads_.empty()) return summary;
    stop_.store(true);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (grpc::ClientContext* context : contexts_) context->TryCancel();
    }
    for (std::thread& thread : threads_) thread.join();
    threads_.clear();
    std::lock_guard<std::mutex> lock(mutex_);
    summary.streams = flags_.exporters;
    summary.seconds =
        std::chrono::duration<double>(SteadyClock::now() - start_).count();
    summary.tasks = tasks_.load();
    summary.bytes = bytes_.load();
    summary.passes = passes_;
    summary.pass_seconds = passes_ > 0 ? pass_seconds_ / passes_ : 0;
    summary.pass_tasks = pass_tasks_;
    summary.errors = errors_;
    return summary;
  }

 private:
  // One stream after the other on connection `index` until stopped.
  void Export(int index) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("tasktrail.bench.export_channel", index);
    // A task with a long timeline may exceed the default 4 MiB.
    args.SetMaxReceiveMessageSize(-1);
    auto stub = v1::TaskTracker::NewStub(grpc::CreateCustomChannel(
        flags_.server, grpc::InsecureChannelCredentials(), args));
    v1::ExportTasksRequest request;
    request.set_include_events(true);
    while (!stop_.load()) {
      grpc::ClientContext context;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stop_.load()) return;
        contexts_.push_back(&context);
      }
      const auto began = SteadyClock::now();
      auto reader = stub->ExportTasks(&context, request);
      v1::Task task;
      uint64_t tasks = 0;
      while (reader->Read(&task)) {
        ++tasks;
        tasks_.fetch_add(1, std::memory_order_relaxed);
        bytes_.fetch_add(task.ByteSizeLong(), std::memory_order_relaxed);
      }
      const grpc::Status status = reader->Finish();
      std::lock_guard<std::mutex> lock(mutex_);
      contexts_.erase(std::find(contexts_.begin(), contexts_.end(), &context));
      if (status.ok()) {
        ++passes_;
        pass_seconds_ +=
            std::chrono::duration<double>(SteadyClock::now() - began).count();
        pass_tasks_ = tasks;
      } else if (status.error_code() != grpc::StatusCode::CANCELLED ||
                 !stop_.load()) {
        fprintf(stderr, "export: %s %s\n",
                CodeName(status.error_code()).c_str(),
                status.error_message().c_str());
        ++errors_;
        return;
      }
    }
  }

  const Flags& flags_;
  SteadyClock::time_point start_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> tasks_{0};
  std::atomic<uint64_t> bytes_{0};
  std::mutex mutex_;
  std::vector<grpc::ClientContext*> contexts_;  // guarded by mutex_
  uint64_t passes_ = 0;                         // guarded by mutex_
  double pass_seconds_ = 0;                     // guarded by mutex_
  uint64_t pass_tasks_ = 0;                     // guarded by mutex_
  uint64_t errors_ = 0;                         // guarded by mutex_
};

// One grpc.health.v1 Check that waits for the server to be reachable.
int Probe(const Flags& flags) {
  auto stub = health::Health::NewStub(
      grpc::CreateChannel(flags.server, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_wait_for_ready(true);
  context.set_deadline(
      std::chrono::system_clock::now() +
      std::chrono::microseconds(static_cast<int64_t>(flags.deadline * 1e6)));
  health::HealthCheckRequest request;
  health::HealthCheckResponse response;
  const grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) {
    fprintf(stderr, "probe: %s %s\n", CodeName(status.error_code()).c_str(),
            status.error_message().c_str());
    return 1;
  }
  const bool serving =
      response.status() == health::HealthCheckResponse::SERVING;
  if (!flags.quiet) printf("%s\n", serving ? "SERVING" : "NOT_SERVING");
  return serving ? 0 : 1;
}

// Reads one task id per line into `ids`; false (with a message) when the
// file cannot be read or holds no ids.
bool ReadTaskIds(const std::string& path, std::vector<std::string>* ids) {
  FILE* file = fopen(path.c_str(), "r");
  if (file == nullptr) {
    fprintf(stderr, "--load-tasks: cannot open %s\n", path.c_str());
    return false;
  }
  char line[256];
  while (fgets(line, sizeof line, file) != nullptr) {
    std::string id(line);
    while (!id.empty() && (id.back() == '\n' || id.back() == '\r')) {
      id.pop_back();
    }
    if (!id.empty()) ids->push_back(std::move(id));
  }
  const bool read_error = ferror(file) != 0;
  fclose(file);
  if (read_error || ids->empty()) {
    fprintf(stderr, "--load-tasks: %s %s\n", path.c_str(),
            read_error ? "could not be read" : "holds no task ids");
    return false;
  }
  return true;
}

// Writes one task id per line; false (with a message) on any write error.
bool WriteTaskIds(const std::string& path,
                  const std::vector<std::string>& ids) {
  FILE* file = fopen(path.c_str(), "w");
  bool ok = file != nullptr;
  for (size_t i = 0; ok && i < ids.size(); ++i) {
    ok = fprintf(file, "%s\n", ids[i].c_str()) > 0;
  }
  if (file != nullptr && fclose(file) != 0) ok = false;
  if (!ok) fprintf(stderr, "--save-tasks: cannot write %s\n", path.c_str());
  return ok;
}

bool NeedsTasks(const std::string& workload) {
  return workload == "event" || workload == "get" ||
         workload == "get-timeline" || workload == "queue-status";
}

int Main(int argc, char** argv) {
  Flags flags;
  CLI::App app{"tasktrail-bench: load generator for tasktraild"};
  app.add_option("--server", flags.server, "HOST:PORT of tasktraild")
      ->capture_default_str();
  app.add_option("--workload", flags.workloads,
                 "comma-separated: health, submit, submit-dup, event, get, "
                 "get-timeline, queue-status, mixed, store-submit; none (with "
                 "--save-tasks: "
                 "only preload)")
      ->capture_default_str();
  app.add_option("--concurrency", flags.concurrencies,
                 "calls in flight (threads for store-submit); a "
                 "comma-separated list runs each workload at each")
      ->capture_default_str();
  app.add_option("--duration", flags.duration,
                 "measured seconds per workload run")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 86400.0));
  app.add_option("--warmup", flags.warmup, "unmeasured seconds before each run")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 600.0));
  app.add_option("--preload", flags.preload,
                 "create this many tasks first (submit, queued, 3 polls "
                 "each); event/get/get-timeline/queue-status use them")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{100000000}));
  app.add_option("--preload-concurrency", flags.preload_concurrency,
                 "calls in flight while preloading")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app.add_flag("--json", flags.json, "one JSON object per run on stdout");
  app.add_option("--channels", flags.channels,
                 "separate connections the calls are spread over")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app.add_option("--deadline", flags.deadline, "deadline of every call, s")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 3600.0));
  app.add_option("--seed", flags.seed, "random seed of generated data")
      ->capture_default_str();
  app.add_option("--db", flags.db,
                 "store-submit: the RocksDB directory (no server)");
  app.add_option("--sync", flags.sync, "store-submit: fsync every write")
      ->capture_default_str();
  app.add_option("--mixed-polls", flags.mixed_polls, "mixed: polls per task")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000));
  app.add_option("--save-tasks", flags.save_tasks,
                 "after the preload, write the task ids to this file (one "
                 "per line)");
  app.add_option("--load-tasks", flags.load_tasks,
                 "use the task ids in this file (written by --save-tasks "
                 "against the same store) instead of preloading");
  app.add_option("--rotations", flags.rotations,
                 "measure the runs in this many rotations of --duration / N "
                 "s each; each run is reported once, merged")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--watchers", flags.watchers,
                 "WatchTask streams on one hot task while the runs run")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  app.add_option("--watch-rate", flags.watch_rate,
                 "--watchers: polls recorded on the hot task per second")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 10000.0));
  app.add_flag("--preload-finished", flags.preload_finished,
               "complete each preloaded task after its polls (SUCCEEDED), "
               "e.g. for retention to purge");
  app.add_option("--exporters", flags.exporters,
                 "ExportTasks streams over the whole store while the runs "
                 "run")
      ->capture_default_str()
      ->check(CLI::Range(0, 64));
  app.add_flag("--quiet", flags.quiet, "no progress on stderr");
  app.add_flag("--probe", flags.probe,
               "one health check (waiting for the server up to --deadline); "
               "exit 0 when SERVING");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  std::vector<int> concurrencies;
  for (absl::string_view text :
       absl::StrSplit(flags.concurrencies, ',', absl::SkipEmpty())) {
    int value = 0;
    if (!absl::SimpleAtoi(text, &value) || value < 1 || value > 100000) {
      fprintf(stderr, "--concurrency: bad value '%s'\n",
              std::string(text).c_str());
      return 2;
    }
    concurrencies.push_back(value);
  }
  // The runs, in order: each workload at each concurrency, or at its own
  // when written WORKLOAD@N.
  std::vector<std::pair<std::string, int>> runs;
  static const char* const kKnown[] = {
      "health",       "submit",       "submit-dup", "event",       "get",
      "get-timeline", "queue-status", "mixed",      "store-submit"};
  for (absl::string_view item :
       absl::StrSplit(flags.workloads, ',', absl::SkipEmpty())) {
    if (item == "none") continue;
    std::vector<std::string> parts = absl::StrSplit(item, '@');
    const std::string& w = parts[0];
    if (std::find(std::begin(kKnown), std::end(kKnown), w) ==
        std::end(kKnown)) {
      fprintf(stderr, "--workload: unknown workload '%s'\n", w.c_str());
      return 2;
    }
    if (parts.size() == 2) {
      int value = 0;
      if (!absl::SimpleAtoi(parts[1], &value) || value < 1 || value > 100000) {
        fprintf(stderr, "--workload: bad concurrency in '%s'\n",
                std::string(item).c_str());
        return 2;
      }
      runs.emplace_back(w, value);
    } else if (parts.size() == 1) {
      for (int c : concurrencies) runs.emplace_back(w, c);
    } else {
      fprintf(stderr, "--workload: bad item '%s'\n", std::string(item).c_str());
      return 2;
    }
  }
  if (!flags.load_tasks.empty() && flags.preload > 0) {
    fprintf(stderr, "--load-tasks and --preload exclude each other\n");
    return 2;
  }
  if (runs.empty() && !flags.probe && flags.save_tasks.empty() &&
      flags.exporters == 0) {
    fprintf(stderr, "--workload and --concurrency must not be empty\n");
    return 2;
  }
  bool uses_server = flags.probe || !flags.save_tasks.empty() ||
                     flags.watchers > 0 || flags.exporters > 0;
  bool needs_tasks = false;
  for (const auto& [w, c] : runs) {
    if (w == "store-submit") {
      if (flags.db.empty()) {
        fprintf(stderr, "--workload store-submit needs --db DIR\n");
        return 2;
      }
    } else {
      uses_server = true;
    }
    needs_tasks = needs_tasks || NeedsTasks(w);
  }

  if (flags.probe) return Probe(flags);

  const std::string nonce = RunNonce();
  bool failed = false;
  std::vector<Connection> connections;
  std::unique_ptr<Engine> engine;
  std::vector<std::string> ids;
  if (uses_server) {
    connections = Connect(flags);
    for (Connection& c : connections) {
      if (!c.channel->WaitForConnected(std::chrono::system_clock::now() +
                                       std::chrono::seconds(10))) {
        fprintf(stderr, "cannot connect to %s\n", flags.server.c_str());
        return 1;
      }
    }
    engine = std::make_unique<Engine>(flags, &connections, nonce);
    int64_t preload = flags.preload;
    if (!flags.load_tasks.empty()) {
      if (!ReadTaskIds(flags.load_tasks, &ids)) return 1;
    } else if (preload == 0 && needs_tasks) {
      preload = 1000;
      if (!flags.quiet) {
        fprintf(stderr, "no --preload given: creating %lld tasks first\n",
                static_cast<long long>(preload));
      }
    }
    if (preload > 0) {
      ids.reserve(preload);
      RunResult loaded =
          engine->Preload(preload, flags.preload_concurrency, &ids);
      if (!flags.quiet) {
        fprintf(stderr,
                "preload: %zu tasks (%llu calls) in %.1f s, %.0f calls/s, "
                "errors=%llu\n",
                ids.size(), static_cast<unsigned long long>(loaded.calls),
                loaded.seconds,
                loaded.seconds > 0 ? loaded.calls / loaded.seconds : 0.0,
                static_cast<unsigned long long>(loaded.errors()));
      }
      if (flags.json) {
        printf(
            "{\"workload\":\"preload\",\"tasks\":%zu,\"calls\":%llu,"
            "\"errors\":%llu,\"seconds\":%.3f,\"calls_per_second\":%.1f}\n",
            ids.size(), static_cast<unsigned long long>(loaded.calls),
            static_cast<unsigned long long>(loaded.errors()), loaded.seconds,
            loaded.seconds > 0 ? loaded.calls / loaded.seconds : 0.0);
        fflush(stdout);
      }
      if (loaded.errors() > 0 || ids.empty()) failed = true;
      if (ids.empty() && needs_tasks) {
        fprintf(stderr, "preload created no tasks\n");
        return 1;
      }
      if (!flags.save_tasks.empty() && !WriteTaskIds(flags.save_tasks, ids)) {
        return 1;
      }
    }
    engine->set_ids(&ids);
  }

  HotTaskWatchers watchers(flags);
  if (flags.watchers > 0 && !watchers.Start(nonce)) return 1;

  Exporters exporters(flags);
  if (flags.exporters > 0) {
    exporters.Start();
    // --workload none: the exports alone, for --duration s.
    if (runs.empty()) {
      std::this_thread::sleep_for(
          std::chrono::duration<double>(flags.duration));
    }
  }

  // Each run is reported after its last rotation (with one rotation, as soon
  // as it ends).
  const double seconds = flags.duration / flags.rotations;
  StoreCeiling ceiling(flags);
  std::vector<RunResult> merged(runs.size());
  for (int rotation = 0; rotation < flags.rotations; ++rotation) {
    for (size_t i = 0; i < runs.size(); ++i) {
      const auto& [workload, concurrency] = runs[i];
      RunResult result;
      if (workload == "store-submit") {
        absl::StatusOr<RunResult> run = ceiling.Run(
            concurrency, seconds, absl::StrCat(nonce, "-", rotation, "-", i));
        if (!run.ok()) {
          fprintf(stderr, "store-submit: %s\n",
                  run.status().ToString().c_str());
          return 1;
        }
        result = std::move(run).value();
      } else {
        result = engine->Run(workload, concurrency, seconds);
      }
      if (rotation == 0) {
        merged[i] = std::move(result);
      } else {
        merged[i].Merge(result);
      }
      if (rotation + 1 < flags.rotations) continue;
      Report(merged[i], flags, static_cast<int64_t>(ids.size()));
      if (merged[i].errors() > 0 || merged[i].calls == 0) failed = true;
    }
  }
  if (flags.exporters > 0) {
    const Exporters::Summary summary = exporters.Stop();
    const double rate =
        summary.seconds > 0 ? summary.tasks / summary.seconds : 0.0;
    if (flags.json) {
      printf(
          "{\"workload\":\"exporters\",\"streams\":%d,\"seconds\":%.3f,"
          "\"tasks\":%llu,\"bytes\":%llu,\"tasks_per_second\":%.1f,"
          "\"passes\":%llu,\"pass_seconds\":%.3f,\"pass_tasks\":%llu,"
          "\"errors\":%llu}\n",
          summary.streams, summary.seconds,
          static_cast<unsigned long long>(summary.tasks),
          static_cast<unsigned long long>(summary.bytes), rate,
          static_cast<unsigned long long>(summary.passes), summary.pass_seconds,
          static_cast<unsigned long long>(summary.pass_tasks),
          static_cast<unsigned long long>(summary.errors));
    } else {
      printf(
          "exporters     n=%d tasks=%llu in %.1f s (%.0f tasks/s, %.1f MB/s) "
          "whole passes=%llu (%.1f s each, %llu tasks) errors=%llu\n",
          summary.streams, static_cast<unsigned long long>(summary.tasks),
          summary.seconds, rate,
          summary.seconds > 0 ? summary.bytes / summary.seconds / 1e6 : 0.0,
          static_cast<unsigned long long>(summary.passes), summary.pass_seconds,
          static_cast<unsigned long long>(summary.pass_tasks),
          static_cast<unsigned long long>(summary.errors));
    }
    fflush(stdout);
    if (summary.errors > 0 || summary.tasks == 0) failed = true;
  }
  if (flags.watchers > 0) {
    const HotTaskWatchers::Summary summary = watchers.Stop();
    if (flags.json) {
      printf(
          "{\"workload\":\"watchers\",\"watchers\":%d,\"hot_events\":%lld,"
          "\"delivered\":%llu,\"caught_up\":%d,\"ended_early\":%d,"
          "\"errors\":%llu}\n",
          summary.watchers, static_cast<long long>(summary.hot_events),
          static_cast<unsigned long long>(summary.delivered), summary.caught_up,
          summary.ended_early,
          static_cast<unsigned long long>(summary.write_errors));
    } else {
      printf(
          "watchers      n=%d hot task events=%lld delivered=%llu "
          "caught up=%d ended early=%d write errors=%llu\n",
          summary.watchers, static_cast<long long>(summary.hot_events),
          static_cast<unsigned long long>(summary.delivered), summary.caught_up,
          summary.ended_early,
          static_cast<unsigned long long>(summary.write_errors));
    }
    fflush(stdout);
    if (summary.caught_up < summary.watchers || summary.ended_early > 0 ||
        summary.write_errors > 0) {
      failed = true;
    }
  }
  return failed ? 1 : 0;
}

}  // namespace
}  // namespace tasktrail::bench

int main(int argc, char** argv) {
  // As in tasktraild: no lock-order cycle detection on every Mutex, so that
  // store-submit measures the same code the server runs.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return tasktrail::bench::Main(argc, argv);
}
