// Where coroutine frames come from. With CORIO_MIMALLOC_FRAMES (the default outside sanitizer builds) every
// task frame is a mimalloc allocation: bench/runtime_bench.cpp measures what that buys over glibc malloc.
#pragma once
#include <cstddef>
#include <new>
#if CORIO_MIMALLOC_FRAMES
#include <mimalloc.h>
#endif

namespace corio::detail {

inline void* allocate_frame(std::size_t size) {
#if CORIO_MIMALLOC_FRAMES
  void* p = mi_malloc(size);
  if (p == nullptr) throw std::bad_alloc();
  return p;
#else
  return ::operator new(size);
#endif
}

inline void free_frame(void* p, std::size_t size) noexcept {
#if CORIO_MIMALLOC_FRAMES
  mi_free_size(p, size);
#else
  (void)size;
  ::operator delete(p);
#endif
}

}  // namespace corio::detail
