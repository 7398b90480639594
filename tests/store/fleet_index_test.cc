// The indexes of format version 2 (unfinished tasks, account+state,
// model+state): their maintenance across every transition, the backfill of a
// version 1 store, oldest-first and id-bounded scans, and crash consistency
// (a writer killed with SIGKILL between transitions and refunds leaves
// indexes, the owed index of format version 4 among them, that agree with
// the tasks).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/rules/task_id.h"
#include "store/keys.h"
#include "store/rocksdb/rocksdb_task_store.h"
#include "tasktrail/v1/task.pb.h"
#include "tests/store/scan_ids.h"
#include "tests/support/temp_dir.h"

namespace tasktrail::store {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::IsEmpty;
using v1::TaskState;

constexpr TaskState kSubmitted = v1::TASK_STATE_SUBMITTED;
constexpr TaskState kQueued = v1::TASK_STATE_QUEUED;
constexpr TaskState kRunning = v1::TASK_STATE_RUNNING;
constexpr TaskState kSucceeded = v1::TASK_STATE_SUCCEEDED;
constexpr TaskState kFailed = v1::TASK_STATE_FAILED;
constexpr TaskState kCanceled = v1::TASK_STATE_CANCELED;

// Every path a task's state can take, first state SUBMITTED.
const std::vector<std::vector<TaskState>>& LifecyclePaths() {
  static const auto* const kPaths = new std::vector<std::vector<TaskState>>{
      {kSubmitted, kQueued, kRunning, kSucceeded},
      {kSubmitted, kQueued, kRunning, kFailed},
      {kSubmitted, kQueued, kRunning, kCanceled},
      {kSubmitted, kQueued, kSucceeded},
      {kSubmitted, kQueued, kFailed},
      {kSubmitted, kQueued, kCanceled},
      {kSubmitted, kRunning, kSucceeded},
      {kSubmitted, kRunning, kFailed},
      {kSubmitted, kSucceeded},
      {kSubmitted, kFailed},
      {kSubmitted, kCanceled},
  };
  return *kPaths;
}

StoreOptions OptionsAt(const std::string& path) {
  StoreOptions options;
  options.path = path;
  options.block_cache_mb = 8;
  return options;
}

std::unique_ptr<RocksDbTaskStore> OpenAt(const std::string& path) {
  absl::StatusOr<std::unique_ptr<RocksDbTaskStore>> store =
      RocksDbTaskStore::Open(OptionsAt(path));
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(*store) : nullptr;
}

TaskScan Unfinished() {
  TaskScan scan;
  scan.index = ScanIndex::kUnfinished;
  return scan;
}

TaskScan PairScan(ScanIndex index, std::string value, TaskState state) {
  TaskScan scan;
  scan.index = index;
  scan.value = std::move(value);
  scan.state = state;
  return scan;
}

// Moves `task` to `state` through the store, as the Tracker does: one write
// with the previous snapshot.
absl::Status Transition(RocksDbTaskStore& store, v1::Task* task,
                        TaskState state) {
  const v1::Task previous = *task;
  task->set_state(state);
  TaskWrite write;
  write.previous = &previous;
  write.task = task;
  return store.Write(write);
}

absl::Status Create(RocksDbTaskStore& store, const v1::Task& task) {
  TaskWrite write;
  write.task = &task;
  return store.Write(write);
}

// Refunds `task` through the store: one write that leaves the state.
absl::Status Refund(RocksDbTaskStore& store, v1::Task* task) {
  const v1::Task previous = *task;
  task->set_refunded(true);
  task->set_refunded_units(task->charge_units());
  TaskWrite write;
  write.previous = &previous;
  write.task = task;
  return store.Write(write);
}

// Most tasks are charged, and carry the origin their failure will have, so
// that the FAILED and CANCELED ones fill the owed index (IsOwedTask).
v1::Task NewTask(TaskIdGenerator& ids, int n) {
  v1::Task task;
  task.set_task_id(
      ids.Next(absl::FromUnixSeconds(1790000000) + absl::Milliseconds(n)));
  task.set_account_id(n % 3 == 0 ? "acct-a" : "acct-b");
  task.set_model(n % 2 == 0 ? "veo-3" : "sora-2");
  task.set_state(kSubmitted);
  task.set_charge_units(n % 5 == 0 ? 0 : 10);
  task.mutable_failure()->set_origin(n % 7 == 0
                                         ? v1::FAILURE_ORIGIN_CONFIGURATION
                                         : v1::FAILURE_ORIGIN_PROVIDER);
  return task;
}

TEST(FleetIndexTest, EveryTransitionKeepsTheIndexesExact) {
  testing::TempDir dir("fleet-index");
  std::unique_ptr<RocksDbTaskStore> store = OpenAt(dir.File("db"));
  ASSERT_NE(store, nullptr);
  TaskIdGenerator ids(/*seed=*/7);
  for (size_t p = 0; p < LifecyclePaths().size(); ++p) {
    const std::vector<TaskState>& path = LifecyclePaths()[p];
    SCOPED_TRACE(absl::StrCat("path ", p));
    v1::Task task = NewTask(ids, static_cast<int>(p));
    // An account and a model of its own, so that the earlier paths' tasks
    // (finished) do not show.
    const std::string account = absl::StrCat("acct-path-", p);
    const std::string model = absl::StrCat("model-path-", p);
    task.set_account_id(account);
    task.set_model(model);
    ASSERT_TRUE(Create(*store, task).ok());
    for (size_t step = 0; step < path.size(); ++step) {
      SCOPED_TRACE(absl::StrCat("state ", v1::TaskState_Name(path[step])));
      if (step > 0) {
        ASSERT_TRUE(Transition(*store, &task, path[step]).ok());
      }
      const bool unfinished = path[step] == kSubmitted ||
                              path[step] == kQueued || path[step] == kRunning;
      EXPECT_EQ(IsUnfinishedState(path[step]), unfinished);
      if (unfinished) {
        EXPECT_THAT(ScanIds(*store, Unfinished()), ElementsAre(task.task_id()));
      } else {
        EXPECT_THAT(ScanIds(*store, Unfinished()), IsEmpty());
      }
      for (TaskState state :
           {kSubmitted, kQueued, kRunning, kSucceeded, kFailed, kCanceled}) {
        const std::vector<std::string> expected =
            state == path[step] ? std::vector<std::string>{task.task_id()}
                                : std::vector<std::string>{};
        EXPECT_EQ(
            ScanIds(*store, PairScan(ScanIndex::kAccountState, account, state)),
            expected);
        EXPECT_EQ(
            ScanIds(*store, PairScan(ScanIndex::kModelState, model, state)),
            expected);
      }
      EXPECT_TRUE(store->VerifyIndexes().ok()) << store->VerifyIndexes();
    }
    // Finished: a write that changes nothing else keeps it out.
    task.set_note_count(1);
    ASSERT_TRUE(Transition(*store, &task, path.back()).ok());
    EXPECT_THAT(ScanIds(*store, Unfinished()), IsEmpty());
  }
  // An account+state value never matches an account that is a prefix of it.
  EXPECT_THAT(ScanIds(*store, PairScan(ScanIndex::kAccountState, "acct-path-",
                                       kSucceeded)),
              IsEmpty());
}

TEST(FleetIndexTest, ScansGoOldestFirstAndStayWithinTheIdBounds) {
  testing::TempDir dir("fleet-index");
  std::unique_ptr<RocksDbTaskStore> store = OpenAt(dir.File("db"));
  ASSERT_NE(store, nullptr);
  TaskIdGenerator ids(/*seed=*/8);
  std::vector<std::string> written;
  for (int n = 0; n < 20; ++n) {
    v1::Task task = NewTask(ids, n * 10);
    ASSERT_TRUE(Create(*store, task).ok());
    written.push_back(task.task_id());
  }
  for (ScanIndex index : {ScanIndex::kAll, ScanIndex::kUnfinished}) {
    TaskScan scan;
    scan.index = index;
    scan.oldest_first = true;
    EXPECT_THAT(ScanIds(*store, scan), ElementsAreArray(written));
    // Paged, oldest first: each page resumes past the last task visited.
    std::vector<std::string> paged;
    scan.max_visits = 3;
    for (int page = 0; page < 10; ++page) {
      absl::StatusOr<std::string> last =
          store->Scan(scan, [&](const v1::Task& task) {
            paged.push_back(task.task_id());
            return true;
          });
      ASSERT_TRUE(last.ok());
      if (last->empty()) break;
      scan.resume_after_task_id = *last;
    }
    EXPECT_THAT(paged, ElementsAreArray(written));

    // Bounds by creation millisecond: tasks 5..11 (made at 50..110 ms).
    const absl::Time base = absl::FromUnixSeconds(1790000000);
    TaskScan bounded;
    bounded.index = index;
    bounded.min_task_id = TaskIdFloor(base + absl::Milliseconds(50));
    bounded.end_task_id = TaskIdFloor(base + absl::Milliseconds(111));
    const std::vector<std::string> middle(written.begin() + 5,
                                          written.begin() + 12);
    bounded.oldest_first = true;
    EXPECT_THAT(ScanIds(*store, bounded), ElementsAreArray(middle));
    bounded.oldest_first = false;
    EXPECT_THAT(ScanIds(*store, bounded),
                ElementsAreArray(middle.rbegin(), middle.rend()));
    bounded.resume_after_task_id = written[8];
    EXPECT_THAT(ScanIds(*store, bounded),
                ElementsAre(written[7], written[6], written[5]));
  }
}

TEST(FleetIndexTest, AVersion1StoreIsBackfilledOnOpen) {
  testing::TempDir dir("fleet-index");
  const std::string path = dir.File("db");
  std::vector<std::string> unfinished;
  {
    std::unique_ptr<RocksDbTaskStore> store = OpenAt(path);
    ASSERT_NE(store, nullptr);
    TaskIdGenerator ids(/*seed=*/9);
    // More tasks than one backfill batch.
    for (int n = 0; n < 2500; ++n) {
      v1::Task task = NewTask(ids, n);
      const std::vector<TaskState>& path_of_task =
          LifecyclePaths()[n % LifecyclePaths().size()];
      task.set_state(path_of_task[n % path_of_task.size()]);
      ASSERT_TRUE(Create(*store, task).ok());
      if (IsUnfinishedState(task.state())) unfinished.push_back(task.task_id());
    }
    ASSERT_TRUE(store->VerifyIndexes().ok());
    // Make it the store an older build wrote: no entries of the version 2
    // indexes, format version 1.
    std::vector<RawMutation> version1;
    ASSERT_TRUE(
        store
            ->ScanRange(
                ColumnFamily::kIndexes,
                std::string(1, static_cast<char>(IndexKind::kUnfinished)),
                std::string(1,
                            static_cast<char>(
                                static_cast<int>(IndexKind::kModelState) + 1)),
                [&](absl::string_view key, absl::string_view) {
                  version1.push_back({ColumnFamily::kIndexes, std::string(key),
                                      absl::nullopt});
                  return true;
                })
            .ok());
    ASSERT_GT(version1.size(), 5000u);
    version1.push_back({ColumnFamily::kMeta, std::string(kFormatVersionKey),
                        std::string(kFormatVersionWithoutFleetIndexes)});
    ASSERT_TRUE(store->WriteRaw(version1).ok());
    EXPECT_FALSE(store->VerifyIndexes().ok());
    EXPECT_THAT(ScanIds(*store, Unfinished()), IsEmpty());
  }
  std::unique_ptr<RocksDbTaskStore> store = OpenAt(path);
  ASSERT_NE(store, nullptr);
  absl::StatusOr<absl::optional<std::string>> version =
      store->GetRaw(ColumnFamily::kMeta, kFormatVersionKey);
  ASSERT_TRUE(version.ok());
  EXPECT_EQ(version->value_or("<absent>"), kFormatVersion);
  EXPECT_TRUE(store->VerifyIndexes().ok()) << store->VerifyIndexes();
  TaskScan oldest_first = Unfinished();
  oldest_first.oldest_first = true;
  oldest_first.max_visits = 100000;
  EXPECT_THAT(ScanIds(*store, oldest_first), ElementsAreArray(unfinished));
}

// ---------------------------------------------------------------------------
// Crash consistency. The writer is this test binary run again (fork and
// exec, so that the child starts clean of the parent's threads) with
// kWriterEnv naming the store: FleetIndexCrashWriter.DISABLED_Run then moves
// tasks along LifecyclePaths and prints "TASK_ID STATE" after each acknowledged
// write, until it is killed.
// ---------------------------------------------------------------------------

constexpr char kWriterEnv[] = "TASKTRAIL_FLEET_INDEX_WRITER_DB";

// Disabled: gtest runs it only when asked (--gtest_also_run_disabled_tests),
// as RunWriterAndKill does.
TEST(FleetIndexCrashWriter, DISABLED_Run) {
  const char* path = std::getenv(kWriterEnv);
  ASSERT_NE(path, nullptr) << "the writer of FleetIndexCrashTest, run only "
                              "by it (with "
                           << kWriterEnv << " set); ctest does not list it";
  const char* seed = std::getenv("TASKTRAIL_FLEET_INDEX_WRITER_SEED");
  std::unique_ptr<RocksDbTaskStore> store = OpenAt(path);
  ASSERT_NE(store, nullptr);
  TaskIdGenerator ids(seed != nullptr ? std::strtoull(seed, nullptr, 10) : 1);
  // Several tasks in flight at once, so that a kill lands between the
  // transitions of different tasks.
  std::vector<std::pair<v1::Task, size_t>> live;
  for (int n = 0;; ++n) {
    if (live.size() < 4) {
      v1::Task task = NewTask(ids, n);
      ASSERT_TRUE(Create(*store, task).ok());
      std::printf("%s %d\n", task.task_id().c_str(), task.state());
      std::fflush(stdout);
      live.emplace_back(task, n % LifecyclePaths().size());
      continue;
    }
    auto& [task, path_index] = live[n % live.size()];
    const std::vector<TaskState>& path = LifecyclePaths()[path_index];
    const auto at = std::find(path.begin(), path.end(), task.state());
    ASSERT_NE(at, path.end());
    ASSERT_TRUE(Transition(*store, &task, *(at + 1)).ok());
    std::printf("%s %d\n", task.task_id().c_str(), task.state());
    std::fflush(stdout);
    if (at + 2 != path.end()) continue;
    // Every other owed task is refunded once it finished.
    if (IsOwedTask(task) && n % 2 == 0) {
      ASSERT_TRUE(Refund(*store, &task).ok());
      std::printf("%s %d\n", task.task_id().c_str(), task.state());
      std::fflush(stdout);
    }
    live.erase(live.begin() + (n % live.size()));
  }
}

// Runs the writer on `path` until it has acknowledged `kill_after` writes,
// kills it with SIGKILL and returns the last acknowledged state of each task.
std::map<std::string, int> RunWriterAndKill(const std::string& path,
                                            int kill_after, int seed) {
  int pipe_fds[2];
  EXPECT_EQ(pipe(pipe_fds), 0);
  const std::string filter =
      "--gtest_filter=FleetIndexCrashWriter.DISABLED_Run";
  const std::string also_disabled = "--gtest_also_run_disabled_tests";
  const std::string db_env = absl::StrCat(kWriterEnv, "=", path);
  const std::string seed_env =
      absl::StrCat("TASKTRAIL_FLEET_INDEX_WRITER_SEED=", seed);
  std::string self(4096, '\0');
  const ssize_t length = readlink("/proc/self/exe", self.data(), self.size());
  EXPECT_GT(length, 0);
  self.resize(static_cast<size_t>(std::max<ssize_t>(length, 0)));
  std::vector<char*> argv = {self.data(), const_cast<char*>(filter.c_str()),
                             const_cast<char*>(also_disabled.c_str()), nullptr};
  std::vector<char*> envp = {const_cast<char*>(db_env.c_str()),
                             const_cast<char*>(seed_env.c_str()), nullptr};
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(pipe_fds[1], 1);
    close(pipe_fds[0]);
    execve(self.c_str(), argv.data(), envp.data());
    _exit(127);
  }
  close(pipe_fds[1]);
  std::map<std::string, int> acknowledged;
  FILE* out = fdopen(pipe_fds[0], "r");
  char line[256];
  int count = 0;
  while (count < kill_after && std::fgets(line, sizeof(line), out) != nullptr) {
    std::vector<std::string> parts =
        absl::StrSplit(absl::StripTrailingAsciiWhitespace(line), ' ');
    int state = 0;
    if (parts.size() == 2 && parts[0].size() == kTaskIdLength &&
        absl::SimpleAtoi(parts[1], &state)) {
      acknowledged[parts[0]] = state;
      ++count;
    }
  }
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  std::fclose(out);
  EXPECT_EQ(count, kill_after) << "the writer stopped early";
  return acknowledged;
}

TEST(FleetIndexCrashTest, AKilledWriterLeavesTheIndexesEqualToTheStates) {
  testing::TempDir dir("fleet-index-crash");
  const std::string path = dir.File("db");
  std::map<std::string, int> acknowledged;
  int seed = 100;
  for (int kill_after : {1, 7, 40, 113}) {
    SCOPED_TRACE(absl::StrCat("killed after ", kill_after, " writes"));
    std::map<std::string, int> acks =
        RunWriterAndKill(path, kill_after, ++seed);
    acknowledged.insert(acks.begin(), acks.end());
    std::unique_ptr<RocksDbTaskStore> store = OpenAt(path);
    ASSERT_NE(store, nullptr);
    EXPECT_TRUE(store->VerifyIndexes().ok()) << store->VerifyIndexes();
    // The unfinished index is exactly the tasks whose state is unfinished,
    // and every acknowledged state is there (or a later one, written but
    // not yet acknowledged when the writer died).
    std::vector<std::string> expected_unfinished;
    std::vector<std::string> expected_owed;
    TaskScan all;
    all.oldest_first = true;
    all.max_visits = 1 << 20;
    absl::StatusOr<std::string> scanned =
        store->Scan(all, [&](const v1::Task& task) {
          if (IsUnfinishedState(task.state())) {
            expected_unfinished.push_back(task.task_id());
          }
          if (IsOwedTask(task)) expected_owed.push_back(task.task_id());
          const auto ack = acknowledged.find(task.task_id());
          if (ack != acknowledged.end()) {
            EXPECT_GE(static_cast<int>(task.state()), ack->second)
                << task.task_id();
          }
          return true;
        });
    ASSERT_TRUE(scanned.ok());
    TaskScan unfinished = Unfinished();
    unfinished.oldest_first = true;
    unfinished.max_visits = 1 << 20;
    EXPECT_THAT(ScanIds(*store, unfinished),
                ElementsAreArray(expected_unfinished));
    TaskScan owed;
    owed.index = ScanIndex::kOwed;
    owed.oldest_first = true;
    owed.max_visits = 1 << 20;
    EXPECT_THAT(ScanIds(*store, owed), ElementsAreArray(expected_owed));
    for (const auto& [task_id, state] : acknowledged) {
      EXPECT_TRUE(store->GetTask(task_id).ok()) << task_id;
    }
  }
}

}  // namespace
}  // namespace tasktrail::store
