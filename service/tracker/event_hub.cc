#include "service/tracker/event_hub.h"

#include <pthread.h>

#include <algorithm>
#include <utility>

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
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  work_.Signal();
  dispatcher_.join();
}

std::shared_ptr<EventHub::Subscription> EventHub::Subscribe(
    absl::string_view task_id, std::function<void()> listener) {
  auto subscription = std::make_shared<Subscription>(
      std::string(task_id), std::move(listener),
      std::max<size_t>(options_.buffer_events, 1));
  std::shared_ptr<Channel> channel;
  {
    absl::MutexLock lock(&mutex_);
    if (!closed_) {
      std::shared_ptr<Channel>& slot = channels_[task_id];
      if (slot == nullptr) slot = std::make_shared<Channel>();
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
    channel.pending.push_back(std::move(entry));
    if (!channel.queued) {
      channel.queued = true;
      ready_.push_back(it->second);
      wake = true;
    }
  }
  if (wake) work_.Signal();
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
