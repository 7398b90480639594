#include "bench/scenarios/unary_load.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"

namespace tasktrail::bench {

RunResult Engine::Preload(int64_t count, int concurrency,
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

RunResult Engine::Run(const std::string& workload, int concurrency,
                      double seconds) {
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
  open_loop_ = flags_.rate > 0 && seconds >= 0;
  std::thread scheduler;
  if (open_loop_) {
    {
      std::lock_guard<std::mutex> lock(schedule_mutex_);
      parked_.clear();
      due_.clear();
      schedule_ended_ = false;
      for (auto& slot : slots_) parked_.push_back(slot.get());
    }
    scheduler = std::thread([this] { Schedule(flags_.rate); });
  } else {
    for (auto& slot : slots_) Next(slot.get(), grpc::Status::OK);
  }

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
  if (scheduler.joinable()) scheduler.join();
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

template <typename Request, typename Response, typename Start, typename Then>
void Engine::Call(Slot* slot, Request request, Start start, Then then) {
  struct Pending {
    grpc::ClientContext context;
    Request request;
    Response response;
    SteadyClock::time_point began;
  };
  auto* pending = new Pending;
  pending->request = std::move(request);
  pending->context.set_deadline(CallDeadline(flags_));
  pending->began = open_loop_ ? slot->scheduled : SteadyClock::now();
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

void Engine::ReportFirstError(const grpc::Status& status) {
  const int code = CodeIndex(status.error_code());
  if (error_reported_[code].exchange(true)) return;
  fprintf(stderr, "%s: first %s: %s\n", workload_.c_str(),
          CodeName(code).c_str(), status.error_message().c_str());
}

const std::string& Engine::RandomId(Slot* slot) {
  return (*ids_)[slot->rng() % ids_->size()];
}

void Engine::Finish() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (--active_ == 0) done_.notify_all();
}

void Engine::Submit(Slot* slot, v1::SubmitTaskRequest request) {
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

void Engine::Event(Slot* slot, v1::RecordEventRequest request) {
  Call<v1::RecordEventRequest, v1::RecordEventResponse>(
      slot, std::move(request),
      [](Connection* c, grpc::ClientContext* ctx,
         const v1::RecordEventRequest* req, v1::RecordEventResponse* resp,
         std::function<void(grpc::Status)> done) {
        c->tracker->async()->RecordEvent(ctx, req, resp, std::move(done));
      },
      [this, slot](const grpc::Status& status, const v1::RecordEventResponse&) {
        Next(slot, status);
      });
}

void Engine::Get(Slot* slot, const std::string& task_id, bool include_events) {
  v1::GetTaskRequest request;
  request.set_task_id(task_id);
  request.set_include_events(include_events);
  Call<v1::GetTaskRequest, v1::Task>(
      slot, std::move(request),
      [](Connection* c, grpc::ClientContext* ctx, const v1::GetTaskRequest* req,
         v1::Task* resp, std::function<void(grpc::Status)> done) {
        c->tracker->async()->GetTask(ctx, req, resp, std::move(done));
      },
      [this, slot](const grpc::Status& status, const v1::Task&) {
        Next(slot, status);
      });
}

void Engine::QueueStatus(Slot* slot, const std::string& task_id) {
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

void Engine::Health(Slot* slot) {
  Call<health::HealthCheckRequest, health::HealthCheckResponse>(
      slot, health::HealthCheckRequest(),
      [](Connection* c, grpc::ClientContext* ctx,
         const health::HealthCheckRequest* req,
         health::HealthCheckResponse* resp,
         std::function<void(grpc::Status)> done) {
        c->health->async()->Check(ctx, req, resp, std::move(done));
      },
      [this, slot](const grpc::Status& status,
                   const health::HealthCheckResponse&) { Next(slot, status); });
}

std::string Engine::Tag(Slot* slot) {
  return absl::StrCat(nonce_, "-", run_, "-", slot->index, "-",
                      slot->sequence++);
}

void Engine::Next(Slot* slot, const grpc::Status& previous) {
  if (phase_ == Phase::kStop) {
    Finish();
    return;
  }
  if (open_loop_ && !TakeScheduledTime(slot, previous)) return;
  Issue(slot, previous);
}

bool Engine::TakeScheduledTime(Slot* slot, const grpc::Status& previous) {
  {
    std::lock_guard<std::mutex> lock(schedule_mutex_);
    if (!schedule_ended_) {
      if (due_.empty()) {
        slot->previous = previous;
        parked_.push_back(slot);
        return false;
      }
      slot->scheduled = due_.front();
      due_.pop_front();
      return true;
    }
  }
  Finish();
  return false;
}

void Engine::Schedule(double rate) {
  const SteadyClock::time_point start = SteadyClock::now();
  const std::chrono::duration<double> interval(1.0 / rate);
  for (uint64_t k = 0;; ++k) {
    const SteadyClock::time_point due =
        start + std::chrono::duration_cast<SteadyClock::duration>(interval * k);
    std::this_thread::sleep_until(due);
    Slot* slot = nullptr;
    {
      std::lock_guard<std::mutex> lock(schedule_mutex_);
      if (phase_ == Phase::kStop) {
        schedule_ended_ = true;
        break;
      }
      if (parked_.empty()) {
        due_.push_back(due);
        continue;
      }
      slot = parked_.back();
      parked_.pop_back();
    }
    slot->scheduled = due;
    Issue(slot, slot->previous);
  }
  // Stopping: the parked slots are retired here, the busy ones by Next.
  std::vector<Slot*> parked;
  {
    std::lock_guard<std::mutex> lock(schedule_mutex_);
    parked.swap(parked_);
  }
  for (size_t i = 0; i < parked.size(); ++i) Finish();
}

void Engine::Issue(Slot* slot, const grpc::Status& previous) {
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

void Engine::NextMixed(Slot* slot, const grpc::Status& previous) {
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

void Engine::NextPreload(Slot* slot, const grpc::Status& previous) {
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

}  // namespace tasktrail::bench
