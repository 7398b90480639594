#include "bench/scenarios/watchers.h"

#include <cstdio>
#include <random>
#include <utility>

namespace tasktrail::bench {

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

HotTaskWatchers::HotTaskWatchers(const Flags& flags) : flags_(flags) {}

HotTaskWatchers::~HotTaskWatchers() { Stop(); }

bool HotTaskWatchers::Start(const std::string& nonce) {
  writer_ = v1::TaskTracker::NewStub(
      NewOwnChannel(flags_, "tasktrail.bench.watch_writer", 0));
  std::mt19937_64 rng(flags_.seed);
  v1::SubmitTaskRequest submit = MakeSubmit(rng, nonce + "-hot", 1);
  submit.set_account_id("hot-" + nonce);
  v1::SubmitTaskResponse submitted;
  grpc::ClientContext context;
  context.set_deadline(CallDeadline(flags_));
  const grpc::Status status = writer_->SubmitTask(&context, submit, &submitted);
  if (!status.ok()) {
    fprintf(stderr, "watchers: the hot task was not submitted: %s\n",
            status.error_message().c_str());
    return false;
  }
  task_id_ = submitted.task().task_id();
  last_seq_ = submitted.task().last_event_seq();
  constexpr int kStreamsPerConnection = 200;
  for (int i = 0; i * kStreamsPerConnection < flags_.watchers; ++i) {
    stubs_.push_back(v1::TaskTracker::NewStub(
        NewOwnChannel(flags_, "tasktrail.bench.watch_channel", i)));
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

HotTaskWatchers::Summary HotTaskWatchers::Stop() {
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

bool HotTaskWatchers::WaitForSeq(int64_t seq, std::chrono::seconds limit) {
  const auto deadline = SteadyClock::now() + limit;
  for (auto& watch : watches_) {
    while (watch->last_seq() < seq && !watch->done()) {
      if (SteadyClock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  return true;
}

void HotTaskWatchers::Write() {
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
    context.set_deadline(CallDeadline(flags_));
    const grpc::Status status =
        writer_->RecordEvent(&context, request, &response);
    if (status.ok()) {
      last_seq_ = response.seq();
    } else {
      ++write_errors_;
    }
  }
}

void PrintSummary(const HotTaskWatchers::Summary& summary, const Flags& flags) {
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
}

}  // namespace tasktrail::bench
