// Test helper: counts the tasks alive, so a test can show that none outlived a call or a scope.
//   int live = 0;   ...   Live alive(live);   // in each task
#pragma once

namespace corio::testing {

struct Live {
  int& n;
  explicit Live(int& c) : n(c) { ++n; }
  ~Live() { --n; }
  Live(const Live&) = delete;
  Live& operator=(const Live&) = delete;
};

}  // namespace corio::testing
