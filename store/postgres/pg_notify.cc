#include "store/postgres/pg_notify.h"

#include <algorithm>
#include <memory>
#include <random>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace tasktrail::store::postgres {
namespace {

// Sends each line of $1 as one notification.
constexpr char kNotifyLines[] =
    "SELECT pg_notify('tasktrail_events', payload) "
    "FROM unnest(string_to_array($1, E'\\n')) AS payload";

}  // namespace

std::string NotificationPayload(absl::string_view tag,
                                absl::string_view task_id, int64_t seq) {
  return absl::StrCat(tag, " ", task_id, " ", seq);
}

std::string NewStoreTag() {
  std::random_device random;
  const uint64_t bits =
      (static_cast<uint64_t>(random()) << 32) ^ static_cast<uint64_t>(random());
  return absl::StrCat(absl::Hex(bits, absl::kZeroPad16));
}

Notifier::Notifier(ConnectionPool* pool)
    : pool_(pool), thread_([this] { Run(); }) {}

Notifier::~Notifier() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  thread_.join();
}

void Notifier::Enqueue(std::vector<std::string> payloads) {
  absl::MutexLock lock(&mutex_);
  for (std::string& payload : payloads) {
    if (queue_.size() >= kMaxQueued) return;
    queue_.push_back(std::move(payload));
  }
}

void Notifier::Run() {
  while (true) {
    std::vector<std::string> batch;
    {
      absl::MutexLock lock(&mutex_);
      mutex_.Await(absl::Condition(
          +[](Notifier* notifier)
               ABSL_EXCLUSIVE_LOCKS_REQUIRED(notifier->mutex_) {
                 return notifier->stopping_ || !notifier->queue_.empty();
               },
          this));
      if (queue_.empty()) return;  // stopping, and drained
      while (!queue_.empty() && batch.size() < kMaxBatch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    Send(batch).IgnoreError();  // made good by the listeners' re-read
  }
}

absl::Status Notifier::Send(const std::vector<std::string>& payloads) {
  absl::StatusOr<ConnectionPool::Lease> lease = pool_->Acquire();
  if (!lease.ok()) return lease.status();
  PgConnection& connection = lease->connection();
  // One flight: an error makes the server skip the rest, COMMIT included.
  const PgParams lines = {absl::StrJoin(payloads, "\n")};
  const PgPipelineStatement transaction[] = {
      {"BEGIN"},
      {"SET LOCAL synchronous_commit TO OFF"},
      {kNotifyLines, &lines},
      {"COMMIT"}};
  absl::StatusOr<std::vector<absl::StatusOr<PgRows>>> answers =
      connection.RunPipeline(transaction, "notifying other replicas");
  if (!answers.ok()) return answers.status();  // the connection is dropped
  for (const absl::StatusOr<PgRows>& answer : *answers) {
    if (answer.ok()) continue;
    if (!connection.Execute("ROLLBACK", "rolling back").ok()) {
      lease->Discard();
    }
    return answer.status();
  }
  return absl::OkStatus();
}

Listener::Listener(std::string conninfo, std::string own_tag,
                   std::string application_name)
    : conninfo_(std::move(conninfo)),
      own_tag_(std::move(own_tag)),
      application_name_(std::move(application_name)),
      thread_([this] { Run(); }) {}

Listener::~Listener() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  thread_.join();
}

void Listener::SetListener(std::function<void(const OtherWrite&)> listener) {
  absl::MutexLock lock(&call_mutex_);
  listener_ = std::move(listener);
}

void Listener::Run() {
  absl::Duration backoff = kFirstBackoff;
  while (!Stopping()) {
    absl::StatusOr<std::unique_ptr<PgConnection>> connection =
        PgConnection::Connect(conninfo_);
    absl::Status listening = connection.status();
    if (listening.ok()) {
      listening = (*connection)
                      ->Execute(absl::StrCat("SET application_name = '",
                                             application_name_, "'; LISTEN ",
                                             kNotifyChannel),
                                "listening for other replicas' writes");
    }
    if (!listening.ok()) {
      if (WaitForStop(backoff)) return;
      backoff = std::min(backoff * 2, kMaxBackoff);
      continue;
    }
    backoff = kFirstBackoff;
    // Whatever was written while nobody listened went unreported.
    Report(OtherWrite{});
    Listen(**connection);
  }
}

void Listener::Listen(PgConnection& connection) {
  absl::Time last_heard = absl::Now();
  absl::Time last_refresh = absl::Now();
  while (!Stopping()) {
    if (absl::Now() - last_refresh > kRefreshInterval) {
      Report(OtherWrite{});
      last_refresh = absl::Now();
    }
    absl::StatusOr<std::vector<PgNotification>> received =
        connection.AwaitNotifications(kPollInterval);
    if (!received.ok()) return;
    if (!received->empty()) last_heard = absl::Now();
    for (const PgNotification& notification : *received) {
      std::vector<absl::string_view> words =
          absl::StrSplit(notification.payload, ' ');
      int64_t seq = 0;
      if (words.size() != 3 || words[0] == own_tag_ ||
          !absl::SimpleAtoi(words[2], &seq)) {
        continue;
      }
      Report(OtherWrite{std::string(words[1]), seq});
    }
    if (absl::Now() - last_heard > kIdleCheck) {
      if (!connection.Execute("SELECT 1", "checking the listening connection")
               .ok()) {
        return;
      }
      last_heard = absl::Now();
    }
  }
}

void Listener::Report(const OtherWrite& write) {
  absl::MutexLock lock(&call_mutex_);
  if (listener_ != nullptr) listener_(write);
}

bool Listener::Stopping() {
  absl::MutexLock lock(&mutex_);
  return stopping_;
}

bool Listener::WaitForStop(absl::Duration pause) {
  absl::MutexLock lock(&mutex_);
  mutex_.AwaitWithTimeout(absl::Condition(&stopping_), pause);
  return stopping_;
}

}  // namespace tasktrail::store::postgres
