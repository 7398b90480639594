// The notifications that tell PgTaskStores on one database of each other's
// writes (TaskStore::WatchOtherWriters): a Notifier sends those of this
// store's committed writes, a Listener receives the other stores'.
//
// A notification goes out on channel kNotifyChannel once a commit that
// appends to a timeline or purges a task is done; its payload
// (NotificationPayload) is small: the sending store's tag, the task id and
// the last seq written (0 for a purge).
#ifndef TASKTRAIL_STORE_POSTGRES_PG_NOTIFY_H_
#define TASKTRAIL_STORE_POSTGRES_PG_NOTIFY_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "store/postgres/pg_connection.h"
#include "store/postgres/pg_pool.h"
#include "store/task_store.h"

namespace tasktrail::store::postgres {

// The channel of the notifications of timeline appends and purges; the
// payload is NotificationPayload's.
constexpr char kNotifyChannel[] = "tasktrail_events";

// "TAG TASK_ID SEQ": the sending store's tag, the task and the last seq
// written (0: purged). Task ids hold no spaces; the seq is the last word.
std::string NotificationPayload(absl::string_view tag,
                                absl::string_view task_id, int64_t seq);

// A fresh tag for a store: 16 hex digits.
std::string NewStoreTag();

// Sends the notifications of committed writes on kNotifyChannel, in
// batches, each in its own transaction with synchronous_commit off.
// PostgreSQL serializes the commits of transactions that notify (a
// database-wide lock held through the commit's WAL flush): with pg_notify
// inside every write, the writes of all replicas committed one at a time
// (pgbench's submission transaction: 1,370-1,480 tx/s without pg_notify,
// 290-370 with). Apart, writes keep sharing their flushes and a batch
// commits without waiting for the disk. A notification lost (a crash
// between a write's commit and its batch, a failed batch, a full queue) is
// made good by the listeners' periodic re-read (Listener::kRefreshInterval).
// Thread safety: Enqueue may be called from any thread.
class Notifier {
 public:
  explicit Notifier(ConnectionPool* pool);

  // Sends what is queued, then stops.
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  void Enqueue(std::vector<std::string> payloads);

 private:
  static constexpr size_t kMaxQueued = 100000;
  static constexpr size_t kMaxBatch = 1000;

  void Run();
  absl::Status Send(const std::vector<std::string>& payloads);

  ConnectionPool* const pool_;
  absl::Mutex mutex_;
  std::deque<std::string> queue_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  // Last: started once the members above exist.
  std::thread thread_;
};

// The listening connection of WatchOtherWriters: one thread that keeps a
// connection (application_name `application_name`) LISTENing on
// kNotifyChannel and hands what arrives to the listener, skipping the
// notifications tagged `own_tag`. It reports that notifications may have
// been missed (an OtherWrite without a task) after reconnecting (with
// backoff) when that connection is lost, and every kRefreshInterval.
// Thread safety: SetListener may be called from any thread.
class Listener {
 public:
  Listener(std::string conninfo, std::string own_tag,
           std::string application_name);

  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Replaces the listener; once it returns the previous one is not running.
  void SetListener(std::function<void(const OtherWrite&)> listener);

  // Every watched task is re-read this often whatever arrives, so that a
  // notification lost after its write committed (see Notifier) delays its
  // watchers by at most this long.
  static constexpr absl::Duration kRefreshInterval = absl::Seconds(5);

 private:
  // How long a wait for notifications lasts before the thread looks whether
  // it should stop.
  static constexpr absl::Duration kPollInterval = absl::Milliseconds(200);
  // A connection idle this long is checked with a query, so that a
  // connection lost without a word is noticed.
  static constexpr absl::Duration kIdleCheck = absl::Seconds(5);
  static constexpr absl::Duration kFirstBackoff = absl::Milliseconds(100);
  static constexpr absl::Duration kMaxBackoff = absl::Seconds(5);

  void Run();
  // Hands on notifications until the connection is lost or the listener
  // stops.
  void Listen(PgConnection& connection);
  void Report(const OtherWrite& write);
  bool Stopping();
  // Waits `pause` or until stopping; true when stopping.
  bool WaitForStop(absl::Duration pause);

  const std::string conninfo_;
  const std::string own_tag_;
  const std::string application_name_;
  absl::Mutex call_mutex_;
  std::function<void(const OtherWrite&)> listener_ ABSL_GUARDED_BY(call_mutex_);
  absl::Mutex mutex_;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  // Last: started once the members above exist.
  std::thread thread_;
};

}  // namespace tasktrail::store::postgres

#endif  // TASKTRAIL_STORE_POSTGRES_PG_NOTIFY_H_
