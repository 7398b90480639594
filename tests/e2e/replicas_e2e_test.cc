// Two real tasktraild replicas (--postgres) on the tests' throwaway
// PostgreSQL cluster (a fresh database per test; the restart under load on a
// cluster of its own, since it stops the server): every
// guarantee holds across them. Dedup of a request_id and of content under
// 64 concurrent submissions spread over both, an event id replayed through
// the other replica, refund once under concurrent refunds to both, reads
// through the replica that did not write (gRPC and the CLI), a replica
// killed with kill -9 under load, and PostgreSQL stopped and started under
// load (UNAVAILABLE and health NOT_SERVING meanwhile, SERVING again without
// a restart, nothing acknowledged lost). WatchTask across replicas: a
// watcher on one replica gets what the other records, in order and once,
// and ends after the finish; a watch resumes on the other replica with
// after_seq; events recorded while the listening connections are being
// killed still arrive once; a purge through one replica ends a watch on the
// other with NOT_FOUND. The tests fail when the cluster
// cannot start (scripts/install-deps.sh --test installs PostgreSQL).
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/support/poll_until.h"
#include "tests/support/postgres_cluster.h"
#include "tests/support/test_support.h"

namespace tasktrail {
namespace {

using ::grpc::health::v1::HealthCheckResponse;
using ::tasktrail::testing::CommandResult;
using ::tasktrail::testing::DeadlineContext;
using ::tasktrail::testing::PollUntil;
using ::tasktrail::testing::PostgresCluster;
using ::tasktrail::testing::ServerProcess;
using ::testing::HasSubstr;

// Submissions that run in background threads against some replicas until
// stopped, remembering the task of every acknowledged one and the codes of
// the refused ones.
class SubmissionLoad {
 public:
  // Starts `threads` submitters; thread i submits through stubs[i % size].
  SubmissionLoad(std::vector<v1::TaskTracker::Stub*> stubs, int threads) {
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([this, stubs, i] {
        v1::TaskTracker::Stub* stub = stubs[i % stubs.size()];
        for (int n = 0; !stop_.load(); ++n) {
          v1::SubmitTaskRequest submit;
          submit.set_account_id("acct-load");
          submit.set_model("sora-2");
          submit.set_charge_units(5);
          submit.mutable_params()->set_prompt(absl::StrCat("load ", i, " ", n));
          v1::SubmitTaskResponse submitted;
          const grpc::Status status =
              stub->SubmitTask(DeadlineContext(30).get(), submit, &submitted);
          absl::MutexLock lock(&mutex_);
          if (status.ok()) {
            acknowledged_.push_back(submitted.task().task_id());
          } else {
            ++refused_[status.error_code()];
          }
        }
      });
    }
  }
  ~SubmissionLoad() { Stop(); }

  void Stop() {
    stop_.store(true);
    for (std::thread& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
  }
  size_t acknowledged_count() const {
    absl::MutexLock lock(&mutex_);
    return acknowledged_.size();
  }
  int refused(grpc::StatusCode code) const {
    absl::MutexLock lock(&mutex_);
    auto found = refused_.find(code);
    return found == refused_.end() ? 0 : found->second;
  }
  std::vector<std::string> acknowledged() const {
    absl::MutexLock lock(&mutex_);
    return acknowledged_;
  }
  std::map<grpc::StatusCode, int> refused_codes() const {
    absl::MutexLock lock(&mutex_);
    return refused_;
  }

 private:
  std::atomic<bool> stop_{false};
  mutable absl::Mutex mutex_;
  std::vector<std::string> acknowledged_ ABSL_GUARDED_BY(mutex_);
  std::map<grpc::StatusCode, int> refused_ ABSL_GUARDED_BY(mutex_);
  std::vector<std::thread> threads_;
};

// One WatchTask stream read on a thread of its own: keeps the events it
// receives and, once the stream ends, its status.
class StreamReader {
 public:
  StreamReader(v1::TaskTracker::Stub* stub, const std::string& task_id,
               int64_t after_seq) {
    context_.set_deadline(std::chrono::system_clock::now() +
                          std::chrono::seconds(120));
    v1::WatchTaskRequest request;
    request.set_task_id(task_id);
    request.set_after_seq(after_seq);
    stream_ = stub->WatchTask(&context_, request);
    thread_ = std::thread([this] {
      v1::TaskEvent event;
      while (stream_->Read(&event)) {
        absl::MutexLock lock(&mutex_);
        events_.push_back(event);
      }
      grpc::Status status = stream_->Finish();
      absl::MutexLock lock(&mutex_);
      status_ = std::move(status);
      ended_ = true;
    });
  }
  ~StreamReader() {
    Cancel();
    thread_.join();
  }

  void Cancel() { context_.TryCancel(); }
  std::vector<v1::TaskEvent> events() const {
    absl::MutexLock lock(&mutex_);
    return events_;
  }
  // Waits until `count` events arrived (or the stream ended).
  bool AwaitEvents(size_t count) const {
    return PollUntil([&] {
             absl::MutexLock lock(&mutex_);
             return events_.size() >= count || ended_;
           }) &&
           events().size() >= count;
  }
  // Waits for the end of the stream and returns its status.
  grpc::Status AwaitEnd() const {
    if (!PollUntil([&] {
          absl::MutexLock lock(&mutex_);
          return ended_;
        })) {
      return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                          "the stream did not end");
    }
    absl::MutexLock lock(&mutex_);
    return status_;
  }
  // The seqs received, in order.
  std::vector<int64_t> seqs() const {
    std::vector<int64_t> seqs;
    for (const v1::TaskEvent& event : events()) seqs.push_back(event.seq());
    return seqs;
  }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<v1::TaskEvent>> stream_;
  mutable absl::Mutex mutex_;
  std::vector<v1::TaskEvent> events_ ABSL_GUARDED_BY(mutex_);
  grpc::Status status_ ABSL_GUARDED_BY(mutex_);
  bool ended_ ABSL_GUARDED_BY(mutex_) = false;
  std::thread thread_;
};

// The seqs from `first` to `last`.
std::vector<int64_t> SeqRange(int64_t first, int64_t last) {
  std::vector<int64_t> seqs;
  for (int64_t seq = first; seq <= last; ++seq) seqs.push_back(seq);
  return seqs;
}

class ReplicasE2eTest : public ::testing::Test {
 protected:
  static constexpr int kReplicas = 2;

  void SetUp() override {
    absl::StatusOr<testing::TestDatabase> database =
        PostgresCluster::FreshDatabase("replicas_e2e", Use());
    ASSERT_TRUE(database.ok()) << database.status();
    cluster_ = database->cluster;
    database_ = database->name;
    own_cluster_ = database->own_cluster;
    for (int i = 0; i < kReplicas; ++i) {
      replicas_[i] = std::make_unique<ServerProcess>(
          "",
          std::vector<std::string>{"--postgres", cluster_->ConnInfo(database_),
                                   "--postgres-pool", "4"});
      std::string error;
      ASSERT_TRUE(replicas_[i]->Start(&error)) << error;
      stubs_[i] = replicas_[i]->NewStub();
    }
  }

  // The cluster the replicas' database is on.
  virtual testing::ClusterUse Use() const {
    return testing::ClusterUse::kShared;
  }

  static v1::SubmitTaskRequest Request(const std::string& request_id,
                                       const std::string& prompt) {
    v1::SubmitTaskRequest request;
    request.set_account_id("acct-7");
    request.set_model("sora-2");
    request.set_charge_units(10);
    request.set_request_id(request_id);
    request.mutable_params()->set_prompt(prompt);
    return request;
  }

  // Sends `request` 64 times at once, alternating between the replicas, and
  // expects one task: one original and 63 duplicates of it.
  void ExpectOneTaskFrom64Submissions(const v1::SubmitTaskRequest& request) {
    constexpr int kSubmissions = 64;
    std::vector<grpc::Status> statuses(kSubmissions);
    std::vector<v1::SubmitTaskResponse> answers(kSubmissions);
    std::vector<std::thread> submitters;
    for (int i = 0; i < kSubmissions; ++i) {
      submitters.emplace_back([&, i] {
        statuses[i] = stubs_[i % kReplicas]->SubmitTask(
            DeadlineContext(60).get(), request, &answers[i]);
      });
    }
    for (std::thread& submitter : submitters) submitter.join();
    std::set<std::string> task_ids;
    int originals = 0;
    for (int i = 0; i < kSubmissions; ++i) {
      ASSERT_TRUE(statuses[i].ok()) << statuses[i].error_message();
      task_ids.insert(answers[i].task().task_id());
      if (!answers[i].deduplicated()) ++originals;
    }
    EXPECT_EQ(originals, 1);
    ASSERT_EQ(task_ids.size(), 1u);
    for (int i = 0; i < kReplicas; ++i) {
      v1::GetTaskRequest get;
      get.set_task_id(*task_ids.begin());
      v1::Task task;
      const grpc::Status status =
          stubs_[i]->GetTask(DeadlineContext().get(), get, &task);
      ASSERT_TRUE(status.ok()) << status.error_message();
      EXPECT_EQ(task.duplicate_count(), kSubmissions - 1);
    }
  }

  grpc::Status Record(int replica, const std::string& task_id,
                      v1::RecordEventRequest request,
                      v1::RecordEventResponse* response) {
    request.set_task_id(task_id);
    return stubs_[replica]->RecordEvent(DeadlineContext(60).get(), request,
                                        response);
  }

  // The task with its timeline, read through `replica`.
  v1::Task GetWithEvents(int replica, const std::string& task_id) {
    v1::GetTaskRequest get;
    get.set_task_id(task_id);
    get.set_include_events(true);
    v1::Task task;
    const grpc::Status status =
        stubs_[replica]->GetTask(DeadlineContext().get(), get, &task);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return task;
  }

  static void ExpectDenseTimeline(const v1::Task& task) {
    ASSERT_GT(task.events_size(), 0);
    for (int i = 0; i < task.events_size(); ++i) {
      EXPECT_EQ(task.events(i).seq(), i + 1);
    }
    EXPECT_EQ(task.last_event_seq(), task.events_size());
  }

  // Submits a task through `replica` and returns its id (empty, with a
  // test failure, when refused).
  std::string Submit(int replica, const std::string& prompt) {
    v1::SubmitTaskResponse submitted;
    const grpc::Status status = stubs_[replica]->SubmitTask(
        DeadlineContext().get(), Request("", prompt), &submitted);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return submitted.task().task_id();
  }

  // Records a poll with `progress` percent through `replica`.
  void Poll(int replica, const std::string& task_id, int progress) {
    v1::RecordEventRequest polled;
    polled.mutable_polled()->set_upstream_status("running");
    polled.mutable_polled()->set_progress_percent(progress);
    v1::RecordEventResponse answer;
    const grpc::Status status = Record(replica, task_id, polled, &answer);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  void Start(int replica, const std::string& task_id, int progress) {
    v1::RecordEventRequest started;
    started.mutable_started()->set_progress_percent(progress);
    v1::RecordEventResponse answer;
    const grpc::Status status = Record(replica, task_id, started, &answer);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  void Complete(int replica, const std::string& task_id) {
    v1::RecordEventRequest completed;
    completed.mutable_completed()->add_result_uris(
        "https://cdn.example.com/result.mp4");
    v1::RecordEventResponse answer;
    const grpc::Status status = Record(replica, task_id, completed, &answer);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  // Adds a note through `replica`: an event that keeps the task unfinished.
  void Note(int replica, const std::string& task_id, const std::string& text) {
    v1::AddNoteRequest note;
    note.set_task_id(task_id);
    note.set_text(text);
    v1::Task task;
    const grpc::Status status =
        stubs_[replica]->AddNote(DeadlineContext().get(), note, &task);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  // Ends the connections the replicas LISTEN on; returns how many.
  int KillListeners() {
    absl::StatusOr<std::string> killed = cluster_->Psql(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM "
        "pg_stat_activity WHERE application_name = 'tasktraild-listener' "
        "AND datname = current_database()) AS ended",
        database_);
    EXPECT_TRUE(killed.ok()) << killed.status();
    return killed.ok() ? std::atoi(killed->c_str()) : 0;
  }

  HealthCheckResponse::ServingStatus Health(int replica) {
    auto health = grpc::health::v1::Health::NewStub(grpc::CreateChannel(
        replicas_[replica]->address(), grpc::InsecureChannelCredentials()));
    grpc::health::v1::HealthCheckRequest request;
    HealthCheckResponse response;
    if (!health->Check(DeadlineContext(5).get(), request, &response).ok()) {
      return HealthCheckResponse::UNKNOWN;
    }
    return response.status();
  }

  // Expects every task of `task_ids` to be readable through `replica`.
  void ExpectAllPresent(int replica, const std::vector<std::string>& task_ids) {
    int missing = 0;
    for (const std::string& task_id : task_ids) {
      v1::GetTaskRequest get;
      get.set_task_id(task_id);
      v1::Task task;
      const grpc::Status status =
          stubs_[replica]->GetTask(DeadlineContext().get(), get, &task);
      if (!status.ok()) {
        ++missing;
        ADD_FAILURE() << "acknowledged task " << task_id << ": "
                      << status.error_message();
        if (missing > 5) return;
      }
    }
  }

  PostgresCluster* cluster_ = nullptr;
  std::string database_;
  // Declared before the replicas: it outlives them.
  std::shared_ptr<PostgresCluster> own_cluster_;
  std::unique_ptr<ServerProcess> replicas_[kReplicas];
  std::unique_ptr<v1::TaskTracker::Stub> stubs_[kReplicas];
};

// Replicas whose database is stopped under them, on a cluster of its own.
class ReplicasOutageE2eTest : public ReplicasE2eTest {
 protected:
  testing::ClusterUse Use() const override { return testing::ClusterUse::kOwn; }
};

TEST_F(ReplicasE2eTest, AReplicaRefusesASchemaNewerThanItKnows) {
  ASSERT_TRUE(cluster_
                  ->Psql("INSERT INTO tasktrail.schema_migrations "
                         "(version, description) VALUES (999, 'from the "
                         "future')",
                         database_)
                  .ok());
  ServerProcess newer_schema("", {"--postgres", cluster_->ConnInfo(database_)});
  std::string error;
  ASSERT_FALSE(newer_schema.Start(&error));
  EXPECT_THAT(error, HasSubstr("999"));
  EXPECT_THAT(error, HasSubstr("newer than this tasktraild knows"));
}

TEST_F(ReplicasE2eTest, IdenticalSubmissionsOverBothReplicasAreOneTask) {
  ExpectOneTaskFrom64Submissions(Request("req-64", "a lighthouse at dusk"));
  // Content duplicates (no request_id) are blocked the same way.
  ExpectOneTaskFrom64Submissions(Request("", "a harbour at dawn"));
}

TEST_F(ReplicasE2eTest, ReplayAndRefundsThroughBothReplicasApplyOnce) {
  v1::SubmitTaskResponse submitted;
  ASSERT_TRUE(stubs_[0]
                  ->SubmitTask(DeadlineContext().get(),
                               Request("", "a storm over the sea"), &submitted)
                  .ok());
  const std::string task_id = submitted.task().task_id();

  // One event id sent through both replicas at once: applied once.
  v1::RecordEventRequest failed;
  failed.set_event_id("ev-failed");
  failed.mutable_failed()->set_http_status(503);
  failed.mutable_failed()->set_message("upstream overloaded");
  grpc::Status replay_status[kReplicas];
  v1::RecordEventResponse replay_answer[kReplicas];
  {
    std::vector<std::thread> senders;
    for (int i = 0; i < kReplicas; ++i) {
      senders.emplace_back([&, i] {
        replay_status[i] = Record(i, task_id, failed, &replay_answer[i]);
      });
    }
    for (std::thread& sender : senders) sender.join();
  }
  for (int i = 0; i < kReplicas; ++i) {
    ASSERT_TRUE(replay_status[i].ok()) << replay_status[i].error_message();
  }
  EXPECT_NE(replay_answer[0].applied(), replay_answer[1].applied());

  // Sixteen refunds of the whole charge, half through each replica: one is
  // recorded, the others are refused as a second refund.
  constexpr int kRefunds = 16;
  std::vector<grpc::Status> refunds(kRefunds);
  {
    std::vector<std::thread> senders;
    for (int i = 0; i < kRefunds; ++i) {
      senders.emplace_back([&, i] {
        v1::RecordEventRequest refund;
        refund.set_event_id(absl::StrCat("refund-", i));
        refund.mutable_refunded()->set_units(10);
        v1::RecordEventResponse ignored;
        refunds[i] = Record(i % kReplicas, task_id, refund, &ignored);
      });
    }
    for (std::thread& sender : senders) sender.join();
  }
  int recorded = 0;
  for (const grpc::Status& status : refunds) {
    if (status.ok()) {
      ++recorded;
    } else {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
          << status.error_message();
    }
  }
  EXPECT_EQ(recorded, 1);

  for (int i = 0; i < kReplicas; ++i) {
    const v1::Task task = GetWithEvents(i, task_id);
    EXPECT_TRUE(task.refunded());
    EXPECT_EQ(task.refunded_units(), 10);
    EXPECT_EQ(task.state(), v1::TASK_STATE_FAILED);
    // Submitted, failed, refunded: the replay and the refused refunds
    // added nothing.
    EXPECT_EQ(task.events_size(), 3);
    ExpectDenseTimeline(task);
  }
}

TEST_F(ReplicasE2eTest, WhatOneReplicaRecordsTheOtherReads) {
  v1::SubmitTaskResponse submitted;
  ASSERT_TRUE(stubs_[0]
                  ->SubmitTask(DeadlineContext().get(),
                               Request("", "a fox in the snow"), &submitted)
                  .ok());
  const std::string task_id = submitted.task().task_id();
  v1::RecordEventRequest queued;
  queued.mutable_queued()->set_upstream_task_id("up-fox-1");
  v1::RecordEventResponse answer;
  ASSERT_TRUE(Record(0, task_id, queued, &answer).ok());

  const v1::Task task = GetWithEvents(1, task_id);
  EXPECT_EQ(task.state(), v1::TASK_STATE_QUEUED);
  EXPECT_EQ(task.events_size(), 2);
  ExpectDenseTimeline(task);

  const CommandResult get = replicas_[1]->RunCli({"get", task_id});
  EXPECT_EQ(get.exit_code, 0) << get.err;
  EXPECT_THAT(get.out, HasSubstr(task_id));
  EXPECT_THAT(get.out, HasSubstr("up-fox-1"));
}

TEST_F(ReplicasE2eTest, AReplicaKilledUnderLoadLosesNoAcknowledgedWrite) {
  SubmissionLoad load({stubs_[0].get()}, 4);
  ASSERT_TRUE(PollUntil([&] { return load.acknowledged_count() >= 100; }));
  replicas_[0]->Kill();
  load.Stop();
  const std::vector<std::string> acknowledged = load.acknowledged();
  ASSERT_GE(acknowledged.size(), 100u);
  ExpectAllPresent(1, acknowledged);
  // The survivor keeps serving writes.
  v1::SubmitTaskResponse submitted;
  EXPECT_TRUE(stubs_[1]
                  ->SubmitTask(DeadlineContext().get(),
                               Request("", "after the crash"), &submitted)
                  .ok());
}

TEST_F(ReplicasOutageE2eTest, PostgresRestartUnderLoadRecoversWithoutARestart) {
  for (int i = 0; i < kReplicas; ++i) {
    ASSERT_EQ(Health(i), HealthCheckResponse::SERVING);
  }
  SubmissionLoad load({stubs_[0].get(), stubs_[1].get()}, 4);
  ASSERT_TRUE(PollUntil([&] { return load.acknowledged_count() >= 50; }));

  ASSERT_TRUE(cluster_->Stop().ok());
  for (int i = 0; i < kReplicas; ++i) {
    EXPECT_TRUE(PollUntil([&] {
      return Health(i) == HealthCheckResponse::NOT_SERVING;
    })) << "replica "
        << i << " still serving with the database down";
  }
  EXPECT_TRUE(PollUntil(
      [&] { return load.refused(grpc::StatusCode::UNAVAILABLE) >= 4; }));
  const size_t acknowledged_while_down = load.acknowledged_count();

  ASSERT_TRUE(cluster_->Restart().ok());
  for (int i = 0; i < kReplicas; ++i) {
    EXPECT_TRUE(PollUntil([&] {
      return Health(i) == HealthCheckResponse::SERVING;
    })) << "replica "
        << i << " did not recover";
  }
  EXPECT_TRUE(PollUntil([&] {
    return load.acknowledged_count() >= acknowledged_while_down + 50;
  }));
  load.Stop();

  // Every refusal was UNAVAILABLE: retry the call.
  for (const auto& [code, count] : load.refused_codes()) {
    EXPECT_EQ(code, grpc::StatusCode::UNAVAILABLE) << count << " refused";
  }
  const std::vector<std::string> acknowledged = load.acknowledged();
  for (int i = 0; i < kReplicas; ++i) ExpectAllPresent(i, acknowledged);
}

// The daemon's exit code and log for `args`, run to completion.
CommandResult RunDaemon(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {testing::DaemonPath()};
  argv.insert(argv.end(), args.begin(), args.end());
  return testing::RunCommand(argv);
}

TEST(PostgresFlagsTest, DbAndPostgresTogetherAreRefusedNamingBoth) {
  const CommandResult run =
      RunDaemon({"--db", "unused", "--postgres", "host=127.0.0.1 port=1"});
  EXPECT_NE(run.exit_code, 0);
  EXPECT_THAT(run.err, HasSubstr("--db and --postgres are mutually exclusive"));
}

TEST(PostgresFlagsTest, BackupFlagsWithPostgresAreRefusedSayingWhy) {
  for (const std::vector<std::string>& flag :
       std::vector<std::vector<std::string>>{{"--backup-dir", "b"},
                                             {"--restore-from", "b"}}) {
    std::vector<std::string> args = {"--postgres", "host=127.0.0.1 port=1"};
    args.insert(args.end(), flag.begin(), flag.end());
    const CommandResult run = RunDaemon(args);
    EXPECT_NE(run.exit_code, 0) << flag[0];
    EXPECT_THAT(run.err,
                HasSubstr(flag[0] + " does not apply with --postgres"));
    EXPECT_THAT(run.err, HasSubstr("pg_dump"));
  }
}

TEST(PostgresFlagsTest, APoolBelowOneIsRefused) {
  const CommandResult run = RunDaemon(
      {"--postgres", "host=127.0.0.1 port=1", "--postgres-pool", "0"});
  EXPECT_NE(run.exit_code, 0);
  EXPECT_THAT(run.err, HasSubstr("--postgres-pool"));
}

TEST(PostgresFlagsTest, ABatchOutsideOneToSixtyFourIsRefused) {
  for (const char* batch : {"0", "65"}) {
    const CommandResult run = RunDaemon(
        {"--postgres", "host=127.0.0.1 port=1", "--postgres-batch", batch});
    EXPECT_NE(run.exit_code, 0) << batch;
    EXPECT_THAT(run.err, HasSubstr("--postgres-batch")) << batch;
  }
}

TEST(PostgresFlagsTest, PostgresFlagsNeedPostgres) {
  for (const std::vector<std::string>& flag :
       std::vector<std::vector<std::string>>{
           {"--postgres-pool", "4"},
           {"--postgres-batch", "8"},
           {"--postgres-listen", "host=127.0.0.1"},
           {"--postgres-prepared-statements", "false"}}) {
    const CommandResult run = RunDaemon({flag[0], flag[1]});
    EXPECT_NE(run.exit_code, 0) << flag[0];
    EXPECT_THAT(run.err, HasSubstr(flag[0] + " needs --postgres"));
  }
}

TEST(PostgresFlagsTest, AnUnreachableDatabaseIsAStartupErrorNamingIt) {
  const int port = testing::FreeLoopbackPort();
  const CommandResult run = RunDaemon(
      {"--postgres",
       absl::StrCat("host=127.0.0.1 port=", port, " connect_timeout=5"),
       "--listen", "127.0.0.1:0"});
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.err, HasSubstr("cannot open the PostgreSQL store"));
}

}  // namespace
}  // namespace tasktrail

namespace tasktrail {
namespace {

TEST_F(ReplicasE2eTest, AWatcherOnOneReplicaSeesWhatTheOtherRecords) {
  const std::string task_id = Submit(1, "a paper boat on a river");
  ASSERT_FALSE(task_id.empty());
  StreamReader watcher(stubs_[0].get(), task_id, 0);
  ASSERT_TRUE(watcher.AwaitEvents(1)) << "the SUBMITTED event";

  // Each event recorded through the other replica reaches the watcher
  // before the next is recorded.
  Start(1, task_id, 5);
  ASSERT_TRUE(watcher.AwaitEvents(2));
  for (int n = 1; n <= 5; ++n) {
    Poll(1, task_id, 10 * n);
    ASSERT_TRUE(watcher.AwaitEvents(2 + n)) << "poll " << n;
  }
  // Events through both replicas at once reach it once each, in order.
  for (int n = 0; n < 10; ++n) Note(n % kReplicas, task_id, "note");
  Complete(1, task_id);
  const grpc::Status end = watcher.AwaitEnd();
  EXPECT_TRUE(end.ok()) << end.error_message();
  EXPECT_EQ(watcher.seqs(), SeqRange(1, 18));
  ASSERT_FALSE(watcher.events().empty());
  EXPECT_EQ(watcher.events().back().type(), v1::EVENT_TYPE_COMPLETED);
  EXPECT_EQ(watcher.events()[1].type(), v1::EVENT_TYPE_STARTED);
}

TEST_F(ReplicasE2eTest, AWatchResumesOnTheOtherReplicaWithAfterSeq) {
  const std::string task_id = Submit(0, "a kite over a beach");
  ASSERT_FALSE(task_id.empty());
  Start(0, task_id, 1);
  int64_t after_seq = 0;
  {
    StreamReader first(stubs_[0].get(), task_id, 0);
    ASSERT_TRUE(first.AwaitEvents(2));
    Poll(1, task_id, 20);
    ASSERT_TRUE(first.AwaitEvents(3));
    first.Cancel();
    first.AwaitEnd();
    after_seq = first.seqs().back();
  }
  ASSERT_GE(after_seq, 3);
  // Written while nobody watched, through both replicas.
  Poll(0, task_id, 30);
  Poll(1, task_id, 40);
  StreamReader resumed(stubs_[1].get(), task_id, after_seq);
  ASSERT_TRUE(resumed.AwaitEvents(5 - after_seq));
  Note(0, task_id, "still running");
  Complete(0, task_id);
  const grpc::Status end = resumed.AwaitEnd();
  EXPECT_TRUE(end.ok()) << end.error_message();
  EXPECT_EQ(resumed.seqs(), SeqRange(after_seq + 1, 7));
}

TEST_F(ReplicasE2eTest, EventsRecordedWhileTheListenerIsDownStillReachIt) {
  const std::string task_id = Submit(1, "a lantern in the fog");
  ASSERT_FALSE(task_id.empty());
  StreamReader watcher(stubs_[0].get(), task_id, 0);
  ASSERT_TRUE(watcher.AwaitEvents(1));
  // The replica listens (it reconnects on its own after the first kill).
  ASSERT_TRUE(PollUntil([&] { return KillListeners() > 0; }));

  // Listeners are ended again and again while the other replica records:
  // notifications are lost, and each reconnection re-reads what it missed.
  std::atomic<bool> stop{false};
  std::atomic<int> kills{1};
  std::thread killer([&] {
    while (!stop.load()) {
      kills.fetch_add(KillListeners());
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
    }
  });
  Start(1, task_id, 1);
  for (int n = 1; n <= 20; ++n) Poll(1, task_id, n);
  stop.store(true);
  killer.join();
  EXPECT_GT(kills.load(), 1);
  Complete(1, task_id);

  const grpc::Status end = watcher.AwaitEnd();
  EXPECT_TRUE(end.ok()) << end.error_message();
  EXPECT_EQ(watcher.seqs(), SeqRange(1, 23));
}

TEST_F(ReplicasE2eTest, PurgeThroughOneReplicaEndsAWatchOnTheOther) {
  const std::string task_id = Submit(0, "a snowman at noon");
  ASSERT_FALSE(task_id.empty());
  StreamReader watcher(stubs_[0].get(), task_id, 0);
  ASSERT_TRUE(watcher.AwaitEvents(1));
  v1::PurgeTaskRequest purge;
  purge.set_task_id(task_id);
  purge.set_reason("erasure request");
  v1::PurgeTaskResponse purged;
  const grpc::Status status =
      stubs_[1]->PurgeTask(DeadlineContext().get(), purge, &purged);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const grpc::Status end = watcher.AwaitEnd();
  EXPECT_EQ(end.error_code(), grpc::StatusCode::NOT_FOUND)
      << end.error_message();
  EXPECT_EQ(end.error_message(), absl::StrCat("task ", task_id, " not found"));
}

}  // namespace
}  // namespace tasktrail
