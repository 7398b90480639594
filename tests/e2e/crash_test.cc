// Crash test: clients submit tasks and record events from several threads,
// the server is killed with SIGKILL at a seeded random point, restarted on the
// same directory, and every acknowledged task and event must be there.
#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace tasktrail::testing {
namespace {

struct Acknowledged {
  std::string task_id;
  int64_t seq = 0;
  v1::EventType type = v1::EVENT_TYPE_UNSPECIFIED;
};

class AckLog {
 public:
  void Add(Acknowledged ack) {
    std::lock_guard<std::mutex> lock(mutex_);
    acks_.push_back(std::move(ack));
    count_.fetch_add(1);
  }
  int64_t count() const { return count_.load(); }
  std::vector<Acknowledged> Take() {
    std::lock_guard<std::mutex> lock(mutex_);
    return acks_;
  }

 private:
  std::mutex mutex_;
  std::vector<Acknowledged> acks_;
  std::atomic<int64_t> count_{0};
};

// One client thread: submits a task (request_id c<client>-<n>), then records
// queued, polls, started and completed with event ids, logging each
// acknowledged write, until a call fails (the server died) or `stop` is set.
// `*next` advances only when a task's whole life was acknowledged, so the
// next round first retries whatever was in flight when the server died: the
// retry must neither lose nor duplicate anything.
void DriveTasks(const std::string& address, int client, int* next, AckLog* log,
                const std::atomic<bool>* stop) {
  auto stub = v1::TaskTracker::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  auto deadline = [] {
    return std::chrono::system_clock::now() + std::chrono::seconds(5);
  };
  while (!stop->load()) {
    const int n = *next;
    v1::SubmitTaskRequest submit;
    submit.set_account_id("acct-" + std::to_string(client));
    submit.set_model("kling-v2-1");
    submit.set_request_id("c" + std::to_string(client) + "-" +
                          std::to_string(n));
    submit.mutable_params()->set_prompt("crash test " + std::to_string(n));
    v1::SubmitTaskResponse submitted;
    grpc::ClientContext submit_context;
    submit_context.set_deadline(deadline());
    if (!stub->SubmitTask(&submit_context, submit, &submitted).ok()) return;
    const std::string id = submitted.task().task_id();
    log->Add({id, 1, v1::EVENT_TYPE_SUBMITTED});

    std::vector<v1::RecordEventRequest> events(5);
    events[0].mutable_queued()->set_upstream_task_id("up-" + id);
    events[1].mutable_polled()->set_upstream_status("in_queue");
    events[2].mutable_started()->set_progress_percent(1);
    events[3].mutable_polled()->set_progress_percent(60);
    events[4].mutable_completed()->add_result_uris("https://cdn.example.com/r");
    for (size_t i = 0; i < events.size(); ++i) {
      events[i].set_task_id(id);
      events[i].set_event_id("e" + std::to_string(i));
      v1::RecordEventResponse response;
      grpc::ClientContext context;
      context.set_deadline(deadline());
      if (!stub->RecordEvent(&context, events[i], &response).ok()) return;
      log->Add({id, response.seq(),
                i == 0   ? v1::EVENT_TYPE_QUEUED
                : i == 2 ? v1::EVENT_TYPE_STARTED
                : i == 4 ? v1::EVENT_TYPE_COMPLETED
                         : v1::EVENT_TYPE_POLLED});
    }
    *next = n + 1;
  }
}

TEST(CrashTest, AcknowledgedWritesSurviveKill9) {
  constexpr int kClients = 4;
  constexpr int kRounds = 3;
  TempDir db;
  std::mt19937 random(20261127);  // fixed seed: a failure can be replayed
  std::vector<Acknowledged> all_acks;
  std::vector<int> next(kClients, 0);
  for (int round = 0; round < kRounds; ++round) {
    ServerProcess server(db.path());
    std::string error;
    ASSERT_TRUE(server.Start(&error)) << error;
    AckLog log;
    std::atomic<bool> stop{false};
    std::vector<std::thread> clients;
    for (int client = 0; client < kClients; ++client) {
      clients.emplace_back(DriveTasks, server.address(), client, &next[client],
                           &log, &stop);
    }
    // Kill once a seeded random number of writes has been acknowledged.
    const int64_t kill_after = 100 + static_cast<int64_t>(random() % 200);
    const auto give_up =
        std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (log.count() < kill_after &&
           std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ASSERT_GE(log.count(), kill_after) << "clients made no progress";
    server.Kill();
    stop = true;
    for (std::thread& client : clients) client.join();
    for (Acknowledged& ack : log.Take()) all_acks.push_back(std::move(ack));
  }

  ServerProcess server(db.path());
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  auto stub = server.NewStub();
  auto get = [&](const std::string& id, v1::Task* task) {
    v1::GetTaskRequest request;
    request.set_task_id(id);
    request.set_include_events(true);
    grpc::ClientContext context;
    return stub->GetTask(&context, request, task);
  };
  for (const Acknowledged& ack : all_acks) {
    v1::Task task;
    ASSERT_TRUE(get(ack.task_id, &task).ok())
        << "acknowledged task lost: " << ack.task_id;
    ASSERT_GE(task.events_size(), ack.seq) << ack.task_id;
    EXPECT_EQ(task.events(static_cast<int>(ack.seq) - 1).type(), ack.type)
        << ack.task_id << " seq " << ack.seq;
  }
  EXPECT_GT(all_acks.size(), 300u);

  // The index of unfinished tasks, written with each transition, agrees with
  // the tasks' states: `unfinished` lists exactly the tasks whose state is
  // SUBMITTED, QUEUED or RUNNING.
  auto list_all = [&](v1::ListTasksRequest request) {
    request.set_page_size(1000);
    grpc::Status status;
    std::vector<v1::Task> tasks = ListAllTasks(stub.get(), request, &status);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return tasks;
  };
  std::vector<std::string> expected_unfinished;
  for (const v1::Task& task : list_all(v1::ListTasksRequest())) {
    if (task.state() == v1::TASK_STATE_SUBMITTED ||
        task.state() == v1::TASK_STATE_QUEUED ||
        task.state() == v1::TASK_STATE_RUNNING) {
      expected_unfinished.push_back(task.task_id());
    }
  }
  v1::ListTasksRequest unfinished;
  unfinished.set_unfinished(true);
  std::vector<std::string> listed_unfinished;
  for (const v1::Task& task : list_all(unfinished)) {
    listed_unfinished.push_back(task.task_id());
  }
  EXPECT_EQ(listed_unfinished, expected_unfinished);

  // Every request_id ever sent maps to at most one task (exactly one when it
  // was acknowledged), and no timeline changes state after it finished.
  for (int client = 0; client < kClients; ++client) {
    for (int n = 0; n <= next[client]; ++n) {
      v1::ListTasksRequest request;
      request.set_account_id("acct-" + std::to_string(client));
      request.set_request_id("c" + std::to_string(client) + "-" +
                             std::to_string(n));
      v1::ListTasksResponse response;
      grpc::ClientContext context;
      ASSERT_TRUE(stub->ListTasks(&context, request, &response).ok());
      ASSERT_LE(response.tasks_size(), 1) << request.request_id();
      if (n < next[client]) {
        ASSERT_EQ(response.tasks_size(), 1) << request.request_id();
      }
      for (const v1::Task& listed : response.tasks()) {
        v1::Task task;
        ASSERT_TRUE(get(listed.task_id(), &task).ok());
        EXPECT_EQ(task.last_event_seq(), task.events_size());
        EXPECT_EQ(task.events(task.events_size() - 1).state_after(),
                  task.state());
        bool finished = false;
        for (const v1::TaskEvent& event : task.events()) {
          const bool changes_state =
              event.type() != v1::EVENT_TYPE_DOWNLOADED &&
              event.type() != v1::EVENT_TYPE_NOTE_ADDED &&
              event.type() != v1::EVENT_TYPE_REFUNDED &&
              event.type() != v1::EVENT_TYPE_DUPLICATE_BLOCKED;
          EXPECT_FALSE(finished && changes_state)
              << task.task_id() << " seq " << event.seq();
          if (event.type() == v1::EVENT_TYPE_COMPLETED ||
              event.type() == v1::EVENT_TYPE_FAILED ||
              event.type() == v1::EVENT_TYPE_CANCELED) {
            finished = true;
          }
        }
      }
    }
  }
}

TEST(CrashTest, ACorruptedDataDirectoryStopsStartupWithAClearError) {
  TempDir db;
  {
    ServerProcess server(db.path());
    std::string error;
    ASSERT_TRUE(server.Start(&error)) << error;
    EXPECT_EQ(server.Stop(), 0);
  }
  {
    std::ofstream current(db.path() + "/CURRENT", std::ios::trunc);
    current << "MANIFEST-999999\n";
  }
  CommandResult result =
      RunCommand({DaemonPath(), "--listen", "127.0.0.1:0", "--db", db.path()});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_THAT(result.err, ::testing::HasSubstr("cannot open store"));
  EXPECT_THAT(result.err, ::testing::HasSubstr(db.path()));
}

v1::SubmitTaskRequest Intent(int n, bool with_request_id) {
  v1::SubmitTaskRequest request;
  request.set_account_id("acct-dedup");
  request.set_model("kling-v2-1");
  request.set_endpoint("/v1/videos");
  if (with_request_id) request.set_request_id("req-" + std::to_string(n));
  request.mutable_params()->set_prompt("intent " + std::to_string(n));
  return request;
}

TEST(CrashTest, DedupGuardRemembersEveryAcknowledgedTaskAfterKill9) {
  TempDir db;
  std::vector<std::string> ids;
  {
    ServerProcess server(db.path());
    std::string error;
    ASSERT_TRUE(server.Start(&error)) << error;
    auto stub = server.NewStub();
    for (int n = 0; n < 40; ++n) {
      v1::SubmitTaskResponse response;
      grpc::ClientContext context;
      ASSERT_TRUE(
          stub->SubmitTask(&context, Intent(n, n % 2 == 0), &response).ok());
      ids.push_back(response.task().task_id());
    }
    server.Kill();
  }
  ServerProcess server(db.path());
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  auto stub = server.NewStub();
  for (int n = 0; n < 40; ++n) {
    v1::SubmitTaskResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(
        stub->SubmitTask(&context, Intent(n, n % 2 == 0), &response).ok());
    EXPECT_TRUE(response.deduplicated()) << n;
    EXPECT_EQ(response.dedup_reason(), n % 2 == 0
                                           ? v1::DEDUP_REASON_SAME_REQUEST_ID
                                           : v1::DEDUP_REASON_SAME_CONTENT);
    EXPECT_EQ(response.task().task_id(), ids[n]);
  }
}

TEST(CrashTest, ConcurrentDoubleClicksThroughTheServerCreateOneTask) {
  TempDir db;
  ServerProcess server(db.path());
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;
  constexpr int kClients = 64;
  std::vector<std::string> ids(kClients);
  std::vector<std::thread> clients;
  auto channel =
      grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      auto stub = v1::TaskTracker::NewStub(channel);
      v1::SubmitTaskResponse response;
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() +
                           std::chrono::seconds(30));
      ASSERT_TRUE(stub->SubmitTask(&context, Intent(7, false), &response).ok());
      ids[i] = response.task().task_id();
    });
  }
  for (std::thread& client : clients) client.join();
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), 1u);
}

}  // namespace
}  // namespace tasktrail::testing
