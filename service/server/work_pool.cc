#include "service/server/work_pool.h"

#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <utility>

namespace tasktrail {

namespace {

// Lowers the calling thread to nice 19, the lowest priority of the normal
// scheduler. Not SCHED_IDLE: a SCHED_IDLE thread runs only when nothing
// else at all is runnable, so on a machine busy with other work (even at
// nice 19) an export crawled at a few hundred tasks per second while the
// server itself was idle; at nice 19 it still gets its share against other
// background work. Yielding to tasktraild's own foreground calls is the
// export pacer's job. On Linux a thread's nice value is its own (the tid
// names it).
void RunInBackground() {
  setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 19);
}

}  // namespace

WorkPool::WorkPool(int threads, Options options) : options_(options) {
  threads_.reserve(threads);
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Run(); });
}

WorkPool::~WorkPool() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  for (std::thread& thread : threads_) thread.join();
}

void WorkPool::Schedule(absl::AnyInvocable<void() &&> work) {
  absl::MutexLock lock(&mutex_);
  queue_.push_back(std::move(work));
}

size_t WorkPool::queued() const {
  absl::MutexLock lock(&mutex_);
  return queue_.size();
}

void WorkPool::Run() {
  pthread_setname_np(pthread_self(), options_.name);
  if (options_.background) RunInBackground();
  while (true) {
    absl::AnyInvocable<void() &&> work;
    {
      absl::MutexLock lock(&mutex_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
        return stopping_ || !queue_.empty();
      };
      mutex_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;  // stopping and drained
      work = std::move(queue_.front());
      queue_.pop_front();
    }
    std::move(work)();
  }
}

}  // namespace tasktrail
