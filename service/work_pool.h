// WorkPool: a fixed set of threads that run closures. The service prepares
// writes on it, because preparing may wait for an earlier write to the same
// task to become durable, and gRPC's threads must never wait.
//
// Thread safety: Schedule may be called from any thread. The destructor runs
// the closures already scheduled, then joins the threads.
#ifndef TASKTRAIL_SERVICE_WORK_POOL_H_
#define TASKTRAIL_SERVICE_WORK_POOL_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace tasktrail {

class WorkPool {
 public:
  // REQUIRES: threads >= 1.
  explicit WorkPool(int threads);
  ~WorkPool();

  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  void Schedule(std::function<void()> work);

  // Closures scheduled and not yet started.
  size_t queued() const;

 private:
  void Run();

  mutable absl::Mutex mutex_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_WORK_POOL_H_
