#include "corio/runtime/blocking_pool.hpp"

namespace corio {

BlockingPool::~BlockingPool() {
  std::deque<std::unique_ptr<Job>> dropped;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    dropped.swap(jobs_);
  }
  ready_.notify_all();
  for (std::thread& t : threads_) t.join();
}

std::size_t BlockingPool::queued() {
  std::lock_guard lock(mutex_);
  return jobs_.size();
}

void BlockingPool::post(std::unique_ptr<Job> job) {
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back(std::move(job));
    if (idle_ < jobs_.size() && threads_.size() < size_) {
      try {
        threads_.emplace_back([this] { work(); });
      } catch (...) {  // no new thread: the ones there take the job in turn; with none, it is refused
        if (threads_.empty()) {
          jobs_.pop_back();
          throw;
        }
      }
    }
  }
  ready_.notify_one();
}

void BlockingPool::work() {
  for (;;) {
    std::unique_ptr<Job> job;
    {
      std::unique_lock lock(mutex_);
      ++idle_;
      ready_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      --idle_;
      if (stopping_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job->run();
  }
}

}  // namespace corio
