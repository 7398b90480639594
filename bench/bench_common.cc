#include "bench/bench_common.h"

#include <unistd.h>

#include <cstdio>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tasktrail::bench {

std::string CodeName(int code) {
  if (code < 0 || code >= kStatusCodes) return "UNKNOWN";
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

std::chrono::system_clock::time_point CallDeadline(const Flags& flags) {
  return std::chrono::system_clock::now() +
         std::chrono::microseconds(static_cast<int64_t>(flags.deadline * 1e6));
}

namespace {

// The words of generated prompts.
const char* const kSubjects[] = {"a red fox",     "an old lighthouse",
                                 "a paper boat",  "a city at night",
                                 "a hummingbird", "waves on basalt"};
const char* const kActions[] = {"in falling snow",   "under a storm",
                                "at golden hour",    "in slow motion",
                                "seen from a drone", "drawn in ink"};

}  // namespace

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
    // Every non-empty bucket as [midpoint, count], so that a report can
    // take percentiles over several runs together.
    std::string buckets;
    r.latency.ForEachBucket([&buckets](uint64_t midpoint, uint64_t count) {
      absl::StrAppend(&buckets, buckets.empty() ? "" : ",", "[", midpoint, ",",
                      count, "]");
    });
    printf(
        "{\"workload\":\"%s\",\"concurrency\":%d,\"seconds\":%.3f,"
        "\"calls\":%llu,\"errors\":%llu,\"errors_by_code\":{%s},"
        "\"calls_per_second\":%.1f,\"p50_us\":%llu,\"p90_us\":%llu,"
        "\"p99_us\":%llu,\"p999_us\":%llu,\"max_us\":%llu,\"mean_us\":%.1f,"
        "\"deduplicated\":%llu,\"preloaded\":%lld,\"latency_us\":[%s]}\n",
        r.workload.c_str(), r.concurrency, r.seconds,
        static_cast<unsigned long long>(r.calls),
        static_cast<unsigned long long>(r.errors()), errors.c_str(), rate,
        static_cast<unsigned long long>(r.latency.Percentile(0.50)),
        static_cast<unsigned long long>(r.latency.Percentile(0.90)),
        static_cast<unsigned long long>(r.latency.Percentile(0.99)),
        static_cast<unsigned long long>(r.latency.Percentile(0.999)),
        static_cast<unsigned long long>(r.latency.max()), r.latency.mean(),
        static_cast<unsigned long long>(r.deduplicated),
        static_cast<long long>(preloaded), buckets.c_str());
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

std::shared_ptr<grpc::Channel> NewOwnChannel(const Flags& flags,
                                             const std::string& name, int index,
                                             grpc::ChannelArguments arguments) {
  // Separate subchannel pools: each channel is its own TCP connection.
  arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  arguments.SetInt(name, index);
  return grpc::CreateCustomChannel(
      flags.server, grpc::InsecureChannelCredentials(), arguments);
}

std::vector<Connection> Connect(const Flags& flags) {
  std::vector<Connection> connections;
  for (int i = 0; i < flags.channels; ++i) {
    Connection c;
    c.channel = NewOwnChannel(flags, "tasktrail.bench.channel", i);
    c.tracker = v1::TaskTracker::NewStub(c.channel);
    c.health = health::Health::NewStub(c.channel);
    connections.push_back(std::move(c));
  }
  return connections;
}

}  // namespace tasktrail::bench
