// What the scenarios of tasktrail-bench share: the flags, the tally of one
// workload run (calls, status codes, latency histogram) and its report line,
// the generated requests (deterministic from --seed), and the pool of
// client connections the unary load is spread over.
//
// Thread safety: RunResult is not thread-safe (each slot or thread keeps
// its own and they are merged after the run); the functions are.
#ifndef TASKTRAIL_BENCH_BENCH_COMMON_H_
#define TASKTRAIL_BENCH_BENCH_COMMON_H_

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench/latency_histogram.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "tasktrail/v1/tracker.grpc.pb.h"

namespace tasktrail::bench {

using SteadyClock = std::chrono::steady_clock;
namespace health = grpc::health::v1;

inline constexpr int kStatusCodes = 17;  // grpc::StatusCode 0..16

// The canonical name of a status code (gRPC and absl share the numbering).
std::string CodeName(int code);

// The index of `code` in RunResult::codes: UNKNOWN for a code out of range.
inline int CodeIndex(int code) {
  return code >= 0 && code < kStatusCodes ? code : 2;
}

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
  // The export streams take each task's bytes without parsing them, so
  // that the exporting process costs the machine little more than its
  // network reads: it stands for a loader on another machine.
  bool raw_export = false;
  bool preload_finished = false;
  // Calls per second of each workload run, issued on a fixed schedule
  // whatever the answers' latency (open loop); 0: each slot issues its next
  // call when the previous one completes (closed loop).
  double rate = 0;
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

// Where a run is: calls are measured in kMeasure only.
enum class Phase { kWarmup, kMeasure, kStop };

// The deadline of a call made now, --deadline seconds ahead.
std::chrono::system_clock::time_point CallDeadline(const Flags& flags);

// Prints one line for the run `r` (one JSON object with --json): calls/s,
// the latency percentiles, the errors by status code.
void Report(const RunResult& r, const Flags& flags, int64_t preloaded);

// ---------------------------------------------------------------------------
// Request generation. Deterministic from --seed; a per-process nonce keeps
// prompts and request ids unique across repeated runs against one store.

// The random sequence of slot (or thread) `index` in the `run`-th run:
// deterministic from --seed, and different in every run, so that a rotation
// does not replay the previous one's choices.
std::mt19937_64 RunRng(uint64_t seed, int run, int index);

// A nonce unique to this process (its pid and start time).
std::string RunNonce();

// A valid submission against the built-in catalog (kling-v2-1 or veo-3),
// from one of `accounts` accounts, its request id and prompt made unique by
// `tag`.
v1::SubmitTaskRequest MakeSubmit(std::mt19937_64& rng, const std::string& tag,
                                 int accounts);

// RecordEvent `queued` of `task_id` at queue `position`.
v1::RecordEventRequest MakeQueued(const std::string& task_id, int position);

// RecordEvent `polled` of `task_id` with `progress` percent, at queue
// `position` (0: processing).
v1::RecordEventRequest MakePoll(const std::string& task_id, int progress,
                                int position);

// ---------------------------------------------------------------------------
// The client pool: --channels connections, each its own TCP connection.

struct Connection {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::TaskTracker::Stub> tracker;
  std::unique_ptr<health::Health::Stub> health;
};

std::vector<Connection> Connect(const Flags& flags);

// A channel to --server of its own (not shared with any other), named by
// `name` and `index` in its arguments; `arguments` adds to them.
std::shared_ptr<grpc::Channel> NewOwnChannel(
    const Flags& flags, const std::string& name, int index,
    grpc::ChannelArguments arguments = {});

}  // namespace tasktrail::bench

#endif  // TASKTRAIL_BENCH_BENCH_COMMON_H_
