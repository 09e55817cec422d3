// BlockingPool: a few threads for calls that block (getaddrinfo, fsync, a library without async API), so
// reactors never do. Jobs queue under a mutex: this is the slow path by design, never the per-I/O one.
#pragma once
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace corio {

class BlockingPool {
 public:
  struct Job {
    virtual ~Job() = default;
    virtual void run() noexcept = 0;
  };

  explicit BlockingPool(unsigned threads) : size_(threads == 0 ? 1 : threads) {}
  // Lets running jobs finish, drops queued ones (destroying them) and joins the threads.
  ~BlockingPool();
  BlockingPool(const BlockingPool&) = delete;
  BlockingPool& operator=(const BlockingPool&) = delete;

  // Threads start on first use. Throws (std::system_error) only when not one thread can be started: the
  // job is then destroyed unrun.
  void post(std::unique_ptr<Job> job);
  std::size_t queued();  // jobs waiting for a thread

 private:
  void work();

  unsigned size_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::unique_ptr<Job>> jobs_;
  std::vector<std::thread> threads_;
  std::size_t idle_ = 0;  // threads waiting for a job
  bool stopping_ = false;
};

}  // namespace corio
