// WorkPool: a fixed set of threads that run closures. The service prepares
// on it the writes whose preparation must wait for an earlier write to the
// same task (or account) to become durable, since gRPC's threads must never
// wait.
//
// Its threads are named after Options::name ("tt-write" by default). A
// background pool's threads run at nice 19: against busy threads of normal
// priority they get a small share of the CPU, so they must not hold what a
// foreground thread may wait for (a lock, a RocksDB write group) for longer
// than a short read.
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
    // Run the threads at nice 19 (see above).
    bool background = false;
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
