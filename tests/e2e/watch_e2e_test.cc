// WatchTask streams against the real tasktraild: a watcher that stops
// reading is ended UNAVAILABLE with an after_seq it can resume from, while
// the writes to the task it watches go on; and hundreds of watchers of one
// task get every event, in order, while writes to another task complete.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tasktrail/v1/tracker.grpc.pb.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_support.h"

namespace tasktrail::testing {
namespace {

using ::testing::HasSubstr;

// The after_seq a status message names ("... after_seq=N"); -1 if none.
int64_t AfterSeqOf(const std::string& message) {
  const std::string key = "after_seq=";
  const size_t at = message.rfind(key);
  if (at == std::string::npos) return -1;
  int64_t seq = -1;
  if (!absl::SimpleAtoi(message.substr(at + key.size()), &seq)) return -1;
  return seq;
}

class WatchE2eTest : public ::testing::Test {
 protected:
  void StartServer(std::vector<std::string> args) {
    server_ = std::make_unique<ServerProcess>(db_.path(), std::move(args));
    std::string error;
    ASSERT_TRUE(server_->Start(&error)) << error;
    stub_ = server_->NewStub();
  }

  std::string Submit(const std::string& account) {
    v1::SubmitTaskRequest request;
    request.set_account_id(account);
    request.set_model("veo-3");
    request.mutable_params()->set_prompt("a fox in the snow");
    v1::SubmitTaskResponse response;
    const grpc::Status status =
        stub_->SubmitTask(DeadlineContext().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.task().task_id();
  }

  // Records a poll; consecutive polls differ (progress 1, 2, 1, ...) so that
  // none is folded. `padding` bytes of upstream status make it bigger.
  grpc::Status Poll(const std::string& id, int n, size_t padding = 0) {
    v1::RecordEventRequest request;
    request.set_task_id(id);
    request.mutable_polled()->set_upstream_status("running" +
                                                  std::string(padding, '.'));
    request.mutable_polled()->set_progress_percent(1 + n % 2);
    v1::RecordEventResponse response;
    return stub_->RecordEvent(DeadlineContext().get(), request, &response);
  }

  grpc::Status Fail(const std::string& id) {
    v1::RecordEventRequest request;
    request.set_task_id(id);
    request.mutable_failed()->set_http_status(500);
    v1::RecordEventResponse response;
    return stub_->RecordEvent(DeadlineContext().get(), request, &response);
  }

  TempDir db_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<v1::TaskTracker::Stub> stub_;
};

TEST_F(WatchE2eTest, AWatcherThatStopsReadingIsEndedAndResumesWithAfterSeq) {
  StartServer({"--watch-buffer", "8"});
  const std::string id = Submit("acct-slow");

  // A client that opens a stream and then reads nothing: its connection
  // takes at most a few KB before the server must hold the rest.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 4096);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto slow_stub = v1::TaskTracker::NewStub(grpc::CreateCustomChannel(
      server_->address(), grpc::InsecureChannelCredentials(), args));
  grpc::ClientContext slow_context;
  slow_context.set_deadline(std::chrono::system_clock::now() +
                            std::chrono::seconds(60));
  v1::WatchTaskRequest request;
  request.set_task_id(id);
  auto slow = slow_stub->WatchTask(&slow_context, request);
  // The server answered with the stream's first event: it is subscribed.
  slow->WaitForInitialMetadata();

  // Writes to the watched task go on and are acknowledged: far more than
  // the connection and the watcher's buffer of 8 hold.
  constexpr int kPolls = 200;
  for (int n = 1; n <= kPolls; ++n) {
    const grpc::Status status = Poll(id, n, /*padding=*/100);
    ASSERT_TRUE(status.ok()) << "poll " << n << ": " << status.error_message();
  }
  ASSERT_TRUE(Fail(id).ok());
  const int64_t last_seq = kPolls + 2;

  // The client reads again: what was sent before the cut, then UNAVAILABLE
  // naming the last seq it got.
  std::vector<int64_t> first;
  v1::TaskEvent event;
  while (slow->Read(&event)) first.push_back(event.seq());
  const grpc::Status cut = slow->Finish();
  EXPECT_EQ(cut.error_code(), grpc::StatusCode::UNAVAILABLE)
      << cut.error_message();
  EXPECT_THAT(cut.error_message(), HasSubstr("fell more than 8 events"));
  ASSERT_FALSE(first.empty());
  const int64_t after_seq = AfterSeqOf(cut.error_message());
  EXPECT_EQ(after_seq, first.back());
  EXPECT_LT(after_seq, last_seq) << "the watcher was not cut";
  for (size_t i = 0; i < first.size(); ++i) {
    ASSERT_EQ(first[i], static_cast<int64_t>(i + 1));
  }

  // Resumed with after_seq, it gets the rest and ends with the finish.
  request.set_after_seq(after_seq);
  grpc::ClientContext resume_context;
  resume_context.set_deadline(std::chrono::system_clock::now() +
                              std::chrono::seconds(30));
  auto resumed = stub_->WatchTask(&resume_context, request);
  std::vector<int64_t> rest;
  while (resumed->Read(&event)) rest.push_back(event.seq());
  const grpc::Status end = resumed->Finish();
  EXPECT_TRUE(end.ok()) << end.error_message();
  ASSERT_EQ(rest.size(), static_cast<size_t>(last_seq - after_seq));
  for (size_t i = 0; i < rest.size(); ++i) {
    ASSERT_EQ(rest[i], after_seq + 1 + static_cast<int64_t>(i));
  }
  EXPECT_EQ(event.type(), v1::EVENT_TYPE_FAILED);
}

// A WatchTask stream read by the client's callback threads: records the
// seqs it gets (checking their order) and its end.
class CountingWatch : public grpc::ClientReadReactor<v1::TaskEvent> {
 public:
  CountingWatch(v1::TaskTracker::Stub* stub, const std::string& task_id) {
    context_.set_deadline(std::chrono::system_clock::now() +
                          std::chrono::seconds(120));
    request_.set_task_id(task_id);
    stub->async()->WatchTask(&context_, &request_, this);
    StartRead(&event_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (event_.seq() != last_seq_ + 1) in_order_ = false;
      last_seq_ = event_.seq();
      ++received_;
    }
    changed_.notify_all();
    StartRead(&event_);
  }

  void OnDone(const grpc::Status& status) override {
    std::lock_guard<std::mutex> lock(mutex_);
    status_ = status;
    done_ = true;
    changed_.notify_all();
  }

  // Waits (up to 60 s) until `count` events arrived or the stream ended.
  bool WaitForEvents(int64_t count) {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_for(lock, std::chrono::seconds(60), [&] {
      return received_ >= count || done_;
    }) && received_ >= count;
  }
  // Waits (up to 60 s) for the end; false if it did not come.
  bool WaitForEnd() {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_for(lock, std::chrono::seconds(60),
                             [&] { return done_; });
  }
  void Cancel() { context_.TryCancel(); }

  int64_t received() {
    std::lock_guard<std::mutex> lock(mutex_);
    return received_;
  }
  int64_t last_seq() {
    std::lock_guard<std::mutex> lock(mutex_);
    return last_seq_;
  }
  bool in_order() {
    std::lock_guard<std::mutex> lock(mutex_);
    return in_order_;
  }
  grpc::Status status() {
    std::lock_guard<std::mutex> lock(mutex_);
    return status_;
  }

 private:
  grpc::ClientContext context_;
  v1::WatchTaskRequest request_;
  v1::TaskEvent event_;
  std::mutex mutex_;
  std::condition_variable changed_;
  int64_t received_ = 0;
  int64_t last_seq_ = 0;
  bool in_order_ = true;
  bool done_ = false;
  grpc::Status status_;
};

TEST_F(WatchE2eTest, FiveHundredWatchersOfOneTaskDoNotStopWritesToAnother) {
  StartServer({});
  const std::string hot = Submit("acct-hot");
  const std::string other = Submit("acct-other");

  // 500 streams over 4 connections (a connection carries at most 256).
  constexpr int kWatchers = 500;
  constexpr int kConnections = 4;
  std::vector<std::unique_ptr<v1::TaskTracker::Stub>> stubs;
  for (int c = 0; c < kConnections; ++c) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    stubs.push_back(v1::TaskTracker::NewStub(grpc::CreateCustomChannel(
        server_->address(), grpc::InsecureChannelCredentials(), args)));
  }
  std::vector<std::unique_ptr<CountingWatch>> watches;
  for (int w = 0; w < kWatchers; ++w) {
    watches.push_back(
        std::make_unique<CountingWatch>(stubs[w % kConnections].get(), hot));
  }
  for (auto& watch : watches) ASSERT_TRUE(watch->WaitForEvents(1));

  // Writes to the other task, interleaved with events on the hot one.
  constexpr int kRounds = 20;
  for (int n = 1; n <= kRounds; ++n) {
    const grpc::Status hot_write = Poll(hot, n);
    ASSERT_TRUE(hot_write.ok()) << hot_write.error_message();
    for (int k = 0; k < 5; ++k) {
      const grpc::Status write = Poll(other, 5 * n + k);
      ASSERT_TRUE(write.ok()) << write.error_message();
    }
  }
  ASSERT_TRUE(Fail(hot).ok());
  const int64_t hot_events = kRounds + 2;

  // The other task has every write, in order.
  v1::GetTaskRequest get;
  get.set_task_id(other);
  get.set_include_events(true);
  v1::Task task;
  ASSERT_TRUE(stub_->GetTask(DeadlineContext().get(), get, &task).ok());
  ASSERT_EQ(task.events_size(), 1 + 5 * kRounds);
  for (int i = 0; i < task.events_size(); ++i) {
    EXPECT_EQ(task.events(i).seq(), i + 1);
  }

  // Every watcher got every event of the hot task, in order, and ended OK.
  int ended_ok = 0;
  for (auto& watch : watches) {
    ASSERT_TRUE(watch->WaitForEnd());
    if (watch->status().ok() && watch->received() == hot_events &&
        watch->last_seq() == hot_events && watch->in_order()) {
      ++ended_ok;
    } else {
      ADD_FAILURE() << "a watcher got " << watch->received() << " events up to "
                    << watch->last_seq()
                    << (watch->in_order() ? "" : ", out of order")
                    << ", status " << watch->status().error_code() << " "
                    << watch->status().error_message();
      break;
    }
  }
  EXPECT_EQ(ended_ok, kWatchers);
}

}  // namespace
}  // namespace tasktrail::testing
