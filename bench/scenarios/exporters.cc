#include "bench/scenarios/exporters.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "absl/strings/str_cat.h"
#include "grpcpp/generic/generic_stub.h"

namespace tasktrail::bench {
namespace {

// Reads one ExportTasks stream through the generated stub and parses each
// task. Calls received() with each task's size in bytes. Returns the
// stream's status.
grpc::Status ExportParsed(v1::TaskTracker::Stub* stub,
                          const v1::ExportTasksRequest& request,
                          grpc::ClientContext* context,
                          const std::function<void(size_t)>& received) {
  auto reader = stub->ExportTasks(context, request);
  v1::Task task;
  while (reader->Read(&task)) received(task.ByteSizeLong());
  return reader->Finish();
}

// Reads one ExportTasks stream through gRPC's generic stub. The request is
// sent serialized. Each task is handed over as the bytes it came in, and is
// not parsed.
//
// Thread safety: the reactor's callbacks run on gRPC's threads; Wait() on
// the calling thread returns once OnDone has run.
class RawExportReader final
    : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  RawExportReader(const std::shared_ptr<grpc::Channel>& channel,
                  const v1::ExportTasksRequest& request,
                  grpc::ClientContext* context,
                  const std::function<void(size_t)>& received)
      : stub_(channel), received_(received) {
    const std::string serialized = request.SerializeAsString();
    grpc::Slice slice(serialized);
    request_ = grpc::ByteBuffer(&slice, 1);
    stub_.PrepareBidiStreamingCall(
        context,
        absl::StrCat("/", v1::TaskTracker::service_full_name(), "/ExportTasks"),
        grpc::StubOptions(), this);
    StartWriteLast(&request_, grpc::WriteOptions());
    StartRead(&task_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;
    received_(task_.Length());
    StartRead(&task_);
  }

  void OnDone(const grpc::Status& status) override {
    std::lock_guard<std::mutex> lock(mutex_);
    status_ = status;
    done_ = true;
    done_changed_.notify_all();
  }

  grpc::Status Wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    done_changed_.wait(lock, [this] { return done_; });
    return status_;
  }

 private:
  grpc::GenericStub stub_;
  const std::function<void(size_t)>& received_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer task_;
  std::mutex mutex_;
  std::condition_variable done_changed_;
  bool done_ = false;    // guarded by mutex_
  grpc::Status status_;  // guarded by mutex_
};

grpc::Status ExportRaw(const std::shared_ptr<grpc::Channel>& channel,
                       const v1::ExportTasksRequest& request,
                       grpc::ClientContext* context,
                       const std::function<void(size_t)>& received) {
  RawExportReader reader(channel, request, context, received);
  return reader.Wait();
}

}  // namespace

void Exporters::Start() {
  start_ = SteadyClock::now();
  for (int i = 0; i < flags_.exporters; ++i) {
    threads_.emplace_back([this, i] { Export(i); });
  }
}

Exporters::Summary Exporters::Stop() {
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

void Exporters::Export(int index) {
  grpc::ChannelArguments args;
  // A task with a long timeline may exceed the default 4 MiB.
  args.SetMaxReceiveMessageSize(-1);
  const std::shared_ptr<grpc::Channel> channel =
      NewOwnChannel(flags_, "tasktrail.bench.export_channel", index, args);
  auto stub = v1::TaskTracker::NewStub(channel);
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
    uint64_t tasks = 0;
    const auto received = [this, &tasks](size_t bytes) {
      ++tasks;
      tasks_.fetch_add(1, std::memory_order_relaxed);
      bytes_.fetch_add(bytes, std::memory_order_relaxed);
    };
    const grpc::Status status =
        flags_.raw_export
            ? ExportRaw(channel, request, &context, received)
            : ExportParsed(stub.get(), request, &context, received);
    std::lock_guard<std::mutex> lock(mutex_);
    contexts_.erase(std::find(contexts_.begin(), contexts_.end(), &context));
    if (status.ok()) {
      ++passes_;
      pass_seconds_ +=
          std::chrono::duration<double>(SteadyClock::now() - began).count();
      pass_tasks_ = tasks;
    } else if (status.error_code() != grpc::StatusCode::CANCELLED ||
               !stop_.load()) {
      fprintf(stderr, "export: %s %s\n", CodeName(status.error_code()).c_str(),
              status.error_message().c_str());
      ++errors_;
      return;
    }
  }
}

void PrintSummary(const Exporters::Summary& summary, const Flags& flags) {
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
}

}  // namespace tasktrail::bench
