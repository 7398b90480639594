#include "service/tracker/event_hub.h"

#include <pthread.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace tasktrail {

std::shared_ptr<const PublishedEvent> EventHub::Subscription::Pop() {
  absl::MutexLock lock(&mutex_);
  if (cut_ != Cut::kNone || buffer_.empty()) return nullptr;
  std::shared_ptr<const PublishedEvent> entry = std::move(buffer_.front());
  buffer_.pop_front();
  return entry;
}

EventHub::Subscription::Cut EventHub::Subscription::cut() const {
  absl::MutexLock lock(&mutex_);
  return cut_;
}

bool EventHub::Subscription::Deliver(
    const std::vector<std::shared_ptr<const PublishedEvent>>& events) {
  absl::MutexLock lock(&mutex_);
  if (cut_ != Cut::kNone) return false;
  if (buffer_.size() + events.size() > capacity_) {
    cut_ = Cut::kOverflow;
    buffer_.clear();
    return true;
  }
  buffer_.insert(buffer_.end(), events.begin(), events.end());
  return true;
}

bool EventHub::Subscription::CutWith(Cut why) {
  absl::MutexLock lock(&mutex_);
  if (cut_ != Cut::kNone) return false;
  cut_ = why;
  buffer_.clear();
  return true;
}

EventHub::EventHub(Options options)
    : options_(options), dispatcher_([this] { Dispatch(); }) {}

EventHub::~EventHub() {
  {
    absl::MutexLock attaching(&attach_mutex_);
    DetachLocked(CurrentAttachment());
  }
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  work_.Signal();
  dispatcher_.join();
}

std::shared_ptr<EventHub::Subscription> EventHub::Subscribe(
    absl::string_view task_id, std::function<void()> listener,
    int64_t known_seq) {
  auto subscription = std::make_shared<Subscription>(
      std::string(task_id), std::move(listener),
      std::max<size_t>(options_.buffer_events, 1));
  std::shared_ptr<Channel> channel;
  {
    absl::MutexLock lock(&mutex_);
    if (!closed_) {
      std::shared_ptr<Channel>& slot = channels_[task_id];
      if (slot == nullptr) {
        slot = std::make_shared<Channel>();
        slot->last_seq = known_seq < 0 ? kUnknownSeq : known_seq;
      }
      channel = slot;
      ++channel->subscribers;
      ++watchers_;
    }
  }
  if (channel == nullptr) {
    subscription->CutWith(Subscription::Cut::kClosing);
    subscription->listener_();
    return subscription;
  }
  absl::MutexLock fanout(&channel->fanout_mutex);
  channel->subscriptions.push_back(subscription);
  // Close may have passed this channel before the subscription joined it.
  bool closed;
  {
    absl::MutexLock lock(&mutex_);
    closed = closed_;
  }
  if (closed && subscription->CutWith(Subscription::Cut::kClosing)) {
    subscription->listener_();
  }
  return subscription;
}

void EventHub::Unsubscribe(const std::shared_ptr<Subscription>& subscription) {
  if (subscription == nullptr) return;
  std::shared_ptr<Channel> channel;
  {
    absl::MutexLock lock(&mutex_);
    auto it = channels_.find(subscription->task_id_);
    if (it == channels_.end()) return;
    channel = it->second;
  }
  bool removed = false;
  {
    // Waits for a running listener of this channel.
    absl::MutexLock fanout(&channel->fanout_mutex);
    auto& subscriptions = channel->subscriptions;
    auto it =
        std::find(subscriptions.begin(), subscriptions.end(), subscription);
    if (it != subscriptions.end()) {
      *it = std::move(subscriptions.back());
      subscriptions.pop_back();
      removed = true;
    }
  }
  if (!removed) return;
  absl::MutexLock lock(&mutex_);
  --watchers_;
  if (--channel->subscribers == 0) {
    auto it = channels_.find(subscription->task_id_);
    if (it != channels_.end() && it->second == channel) channels_.erase(it);
  }
}

void EventHub::Publish(absl::string_view task_id,
                       std::shared_ptr<PublishedEvent> entry) {
  bool wake = false;
  {
    absl::MutexLock lock(&mutex_);
    if (closed_) return;
    auto it = channels_.find(task_id);
    if (it == channels_.end()) return;
    Channel& channel = *it->second;
    if (channel.last_seq != kUnknownSeq) {
      const int64_t seq = entry->event.seq();
      if (seq <= channel.last_seq) return;  // carried already
      if (seq > channel.last_seq + 1 && store_ != nullptr) {
        // Entries before it were written elsewhere and are not carried yet:
        // the store has them, and this one.
        if (refresh_.insert(std::string(task_id)).second) {
          refresh_work_.Signal();
        }
        return;
      }
      channel.last_seq = seq;
    }
    channel.pending.push_back(std::move(entry));
    if (!channel.queued) {
      channel.queued = true;
      ready_.push_back(it->second);
      wake = true;
    }
  }
  if (wake) work_.Signal();
}

uint64_t EventHub::Attach(store::TaskStore* store) {
  absl::MutexLock attaching(&attach_mutex_);
  DetachLocked(CurrentAttachment());
  uint64_t attachment;
  {
    absl::MutexLock lock(&mutex_);
    store_ = store;
    stopping_refresh_ = false;
    attachment = ++attachment_;
  }
  refresher_ = std::thread([this] { RefreshLoop(); });
  store->WatchOtherWriters([this](const store::OtherWrite& write) {
    if (write.task_id.empty()) {
      RefreshAll();
    } else {
      Refresh(write.task_id);
    }
  });
  return attachment;
}

uint64_t EventHub::CurrentAttachment() const {
  absl::MutexLock lock(&mutex_);
  return attachment_;
}

void EventHub::Detach(uint64_t attachment) {
  absl::MutexLock attaching(&attach_mutex_);
  DetachLocked(attachment);
}

void EventHub::DetachLocked(uint64_t attachment) {
  store::TaskStore* store;
  {
    absl::MutexLock lock(&mutex_);
    if (store_ == nullptr || attachment != attachment_) return;
    store = store_;
  }
  store->WatchOtherWriters(nullptr);
  {
    absl::MutexLock lock(&mutex_);
    stopping_refresh_ = true;
  }
  refresh_work_.SignalAll();
  refresher_.join();
  absl::MutexLock lock(&mutex_);
  store_ = nullptr;
  refresh_.clear();
  refresh_all_ = false;
}

void EventHub::Refresh(absl::string_view task_id) {
  absl::MutexLock lock(&mutex_);
  if (store_ == nullptr || closed_ || !channels_.contains(task_id)) return;
  if (refresh_.insert(std::string(task_id)).second) refresh_work_.Signal();
}

void EventHub::RefreshAll() {
  absl::MutexLock lock(&mutex_);
  if (store_ == nullptr || closed_) return;
  refresh_all_ = true;
  refresh_work_.Signal();
}

void EventHub::RefreshLoop() {
  pthread_setname_np(pthread_self(), "tt-watch-read");
  // A task whose read failed (the database unreachable, say) is read again
  // after a pause that doubles up to kMaxRetryPause.
  constexpr absl::Duration kFirstRetryPause = absl::Milliseconds(50);
  constexpr absl::Duration kMaxRetryPause = absl::Seconds(2);
  absl::Duration retry_pause = kFirstRetryPause;
  std::vector<std::string> failed;
  for (;;) {
    std::vector<std::string> tasks;
    {
      absl::MutexLock lock(&mutex_);
      if (!failed.empty()) {
        refresh_work_.WaitWithTimeout(&mutex_, retry_pause);
        retry_pause = std::min(retry_pause * 2, kMaxRetryPause);
        for (std::string& task_id : failed) refresh_.insert(std::move(task_id));
        failed.clear();
      }
      while (!stopping_refresh_ && !refresh_all_ && refresh_.empty()) {
        refresh_work_.Wait(&mutex_);
      }
      if (stopping_refresh_) return;
      if (refresh_all_) {
        refresh_all_ = false;
        for (const auto& [task_id, channel] : channels_) {
          refresh_.insert(task_id);
        }
      }
      tasks.assign(refresh_.begin(), refresh_.end());
      refresh_.clear();
    }
    for (std::string& task_id : tasks) {
      if (!RefreshTask(task_id).ok()) failed.push_back(std::move(task_id));
    }
    if (failed.empty()) retry_pause = kFirstRetryPause;
  }
}

absl::Status EventHub::RefreshTask(const std::string& task_id) {
  // Entries read per store read.
  constexpr int kReadBatch = 256;
  store::TaskStore* store;
  int64_t after_seq;
  {
    absl::MutexLock lock(&mutex_);
    auto it = channels_.find(task_id);
    if (closed_ || it == channels_.end()) return absl::OkStatus();
    store = store_;
    after_seq = it->second->last_seq;
  }
  absl::StatusOr<v1::Task> task = store->GetTask(task_id);
  if (absl::IsNotFound(task.status())) {
    CutTask(task_id, Subscription::Cut::kPurged);
    return absl::OkStatus();
  }
  if (!task.ok()) return task.status();
  // A channel that carries entries as published has no seq to read from.
  if (after_seq == kUnknownSeq) return absl::OkStatus();
  while (after_seq < task->last_event_seq()) {
    absl::StatusOr<std::vector<v1::TaskEvent>> events =
        store->ReadEvents(task_id, after_seq, kReadBatch);
    if (!events.ok()) return events.status();
    for (v1::TaskEvent& event : *events) {
      after_seq = event.seq();
      auto entry = std::make_shared<PublishedEvent>();
      entry->event = std::move(event);
      Publish(task_id, std::move(entry));
    }
    if (events->size() < static_cast<size_t>(kReadBatch)) break;
  }
  return absl::OkStatus();
}

void EventHub::CutTask(absl::string_view task_id, Subscription::Cut why) {
  std::shared_ptr<Channel> channel;
  {
    absl::MutexLock lock(&mutex_);
    auto it = channels_.find(task_id);
    if (it == channels_.end()) return;
    channel = it->second;
  }
  absl::MutexLock fanout(&channel->fanout_mutex);
  for (const std::shared_ptr<Subscription>& subscription :
       channel->subscriptions) {
    if (subscription->CutWith(why)) subscription->listener_();
  }
}

void EventHub::Close() {
  std::vector<std::shared_ptr<Channel>> channels;
  {
    absl::MutexLock lock(&mutex_);
    closed_ = true;
    for (const auto& [task_id, channel] : channels_) {
      channels.push_back(channel);
    }
  }
  for (const std::shared_ptr<Channel>& channel : channels) {
    absl::MutexLock fanout(&channel->fanout_mutex);
    for (const std::shared_ptr<Subscription>& subscription :
         channel->subscriptions) {
      if (subscription->CutWith(Subscription::Cut::kClosing)) {
        subscription->listener_();
      }
    }
  }
}

size_t EventHub::watcher_count() const {
  absl::MutexLock lock(&mutex_);
  return watchers_;
}

void EventHub::Dispatch() {
  pthread_setname_np(pthread_self(), "tt-watch");
  for (;;) {
    std::shared_ptr<Channel> channel;
    std::vector<std::shared_ptr<PublishedEvent>> pending;
    {
      absl::MutexLock lock(&mutex_);
      while (!stopping_ && ready_.empty()) work_.Wait(&mutex_);
      if (stopping_) return;
      channel = std::move(ready_.front());
      ready_.pop_front();
      channel->queued = false;
      pending.swap(channel->pending);
    }
    // Serialized once here, for every watcher of the task; immutable after.
    std::vector<std::shared_ptr<const PublishedEvent>> entries;
    entries.reserve(pending.size());
    for (std::shared_ptr<PublishedEvent>& entry : pending) {
      entry->event.SerializeToString(&entry->bytes);
      entries.push_back(std::move(entry));
    }
    absl::MutexLock fanout(&channel->fanout_mutex);
    for (const std::shared_ptr<Subscription>& subscription :
         channel->subscriptions) {
      if (subscription->Deliver(entries)) subscription->listener_();
    }
  }
}

}  // namespace tasktrail
