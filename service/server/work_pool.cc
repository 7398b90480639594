#include "service/server/work_pool.h"

#include <pthread.h>
#include <sched.h>

#include <utility>

namespace tasktrail {

namespace {

// Moves the calling thread to SCHED_IDLE, which an unprivileged thread may
// always do (it cannot move back). On Linux a thread's policy is its own.
void RunWhenIdle() {
  const sched_param param{};
  pthread_setschedparam(pthread_self(), SCHED_IDLE, &param);
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
  if (options_.idle) RunWhenIdle();
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
