// Messages between threads and reactors: a Message is posted to a reactor from any thread and run on it.
// MessageQueue is an intrusive multi-producer single-consumer queue (Vyukov's): push is one exchange,
// no lock and no allocation, so cross-reactor traffic never blocks the receiving reactor.
#pragma once
#include <atomic>

namespace corio {

class Message {
 public:
  Message() = default;
  Message(const Message&) = delete;
  Message& operator=(const Message&) = delete;
  virtual ~Message() = default;
  // Runs on the receiving reactor's thread; the message owns itself from here (delete it or reuse it).
  virtual void run() noexcept = 0;
  // The receiving reactor shut down before running it.
  virtual void discard() noexcept { delete this; }

 private:
  friend class MessageQueue;
  std::atomic<Message*> next_{nullptr};
};

class MessageQueue {
 public:
  MessageQueue() noexcept : head_(&stub_), tail_(&stub_) {}
  MessageQueue(const MessageQueue&) = delete;
  MessageQueue& operator=(const MessageQueue&) = delete;

  // Any thread.
  void push(Message* m) noexcept {
    m->next_.store(nullptr, std::memory_order_relaxed);
    Message* prev = head_.exchange(m, std::memory_order_acq_rel);
    prev->next_.store(m, std::memory_order_release);
  }

  // Consumer thread only. Returns nullptr when empty, or when a producer is between its two steps
  // (the message then arrives on a later pop, and the producer's wake-up guarantees that pop happens).
  Message* pop() noexcept {
    Message* tail = tail_;
    Message* next = tail->next_.load(std::memory_order_acquire);
    if (tail == &stub_) {
      if (next == nullptr) return nullptr;
      tail_ = next;
      tail = next;
      next = next->next_.load(std::memory_order_acquire);
    }
    if (next != nullptr) {
      tail_ = next;
      return tail;
    }
    if (tail != head_.load(std::memory_order_acquire)) return nullptr;
    push(&stub_);
    next = tail->next_.load(std::memory_order_acquire);
    if (next != nullptr) {
      tail_ = next;
      return tail;
    }
    return nullptr;
  }

 private:
  struct Stub final : Message {
    void run() noexcept override {}
  };
  std::atomic<Message*> head_;
  Message* tail_;
  Stub stub_;
};

}  // namespace corio
