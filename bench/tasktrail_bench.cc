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
// --rate R issues the calls of each run on a fixed schedule, R a second
// (open loop), instead of from each completion: a gateway's traffic does not
// slow down when tasktraild does. A call that finds no free slot (all
// --concurrency in flight) waits for one, and every latency counts from the
// call's scheduled time, so that falling behind shows in the percentiles.
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
// of each whole pass. With --raw-export the streams take the tasks as bytes,
// unparsed.
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
// calls/s, p50/p90/p99/p999 latency and errors by status code; a JSON line
// also carries the latency histogram ("latency_us": [[midpoint µs, calls],
// ...] of every non-empty bucket), so that runs can be pooled. Exit status:
// 0 when every run completed, 1 when any call failed or a run made no calls
// (so that smoke tests can rely on it), 2 on a usage error.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "bench/bench_common.h"
#include "bench/scenarios/exporters.h"
#include "bench/scenarios/store_submit.h"
#include "bench/scenarios/unary_load.h"
#include "bench/scenarios/watchers.h"

namespace tasktrail::bench {
namespace {

// One grpc.health.v1 Check that waits for the server to be reachable.
int Probe(const Flags& flags) {
  auto stub = health::Health::NewStub(
      grpc::CreateChannel(flags.server, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_wait_for_ready(true);
  context.set_deadline(CallDeadline(flags));
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
  app.add_option("--rate", flags.rate,
                 "calls/s of each workload run on a fixed schedule, latency "
                 "counted from each call's scheduled time (open loop; the "
                 "slots of --concurrency bound the calls in flight); 0: "
                 "closed loop")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e6));
  app.add_option("--exporters", flags.exporters,
                 "ExportTasks streams over the whole store while the runs "
                 "run")
      ->capture_default_str()
      ->check(CLI::Range(0, 64));
  app.add_flag("--raw-export", flags.raw_export,
               "the --exporters streams count each task's bytes without "
               "parsing it (a loader on another machine costs this one "
               "nothing for its parsing)");
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
    PrintSummary(summary, flags);
    if (summary.errors > 0 || summary.tasks == 0) failed = true;
  }
  if (flags.watchers > 0) {
    const HotTaskWatchers::Summary summary = watchers.Stop();
    PrintSummary(summary, flags);
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
