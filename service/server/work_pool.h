// WorkPool: a fixed set of threads that run closures. The service prepares
// on it the writes whose preparation must wait for an earlier write to the
// same task (or account) to become durable, since gRPC's threads must never
// wait.
//
// Its threads are named after Options::name ("tt-write" by default). An
// idle pool's threads run at SCHED_IDLE: they run only on a CPU that no
// thread of normal priority wants, and a waking thread of normal priority
// takes the CPU from them at once. They may wait for a long time while the
// machine is busy, so they must not hold what a foreground thread may wait
// for (a lock, a RocksDB write group) for longer than a short read, and
// work that must progress under load needs another way forward.
//
// Thread safety: Schedule may be called from any thread. The destructor runs
// the closures already scheduled, then joins the threads.
#ifndef TASKTRAIL_SERVICE_SERVER_WORK_POOL_H_
#define TASKTRAIL_SERVICE_SERVER_WORK_POOL_H_

#include <deque>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace tasktrail {

class WorkPool {
 public:
  struct Options {
    // The threads' name (at most 15 characters, as Linux keeps).
    const char* name = "tt-write";
    // Run the threads at SCHED_IDLE (see above).
    bool idle = false;
  };

  // REQUIRES: threads >= 1.
  explicit WorkPool(int threads) : WorkPool(threads, Options()) {}
  WorkPool(int threads, Options options);
  ~WorkPool();

  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  void Schedule(absl::AnyInvocable<void() &&> work);

  // Closures scheduled and not yet started.
  size_t queued() const;

 private:
  void Run();

  const Options options_;
  mutable absl::Mutex mutex_;
  std::deque<absl::AnyInvocable<void() &&>> queue_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace tasktrail

#endif  // TASKTRAIL_SERVICE_SERVER_WORK_POOL_H_
