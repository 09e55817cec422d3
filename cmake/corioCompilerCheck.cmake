# GCC 12 (Debian 12's default) miscompiles ordinary coroutine code: a temporary in a co_await expression
# is destroyed twice (`co_await submit_to(1, [k = std::string(s)] {...})` frees a string it never owned)
# and `if (co_await x)` crashes. corio is built and tested with clang 16 and clang 19. Included by corio's
# own build and by find_package(corio): a consumer's coroutines, compiled with corio's headers, are hit too.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13 AND NOT CORIO_ALLOW_GCC12)
  message(FATAL_ERROR
    "corio: GCC ${CMAKE_CXX_COMPILER_VERSION} miscompiles coroutines (a temporary in a co_await expression "
    "is destroyed twice; `if (co_await x)` crashes), so corio does not build with it.\n"
    "Use clang 16 or 19 (Debian 12: apt-get install clang-19): -DCMAKE_CXX_COMPILER=clang++-19 in a fresh "
    "build folder. -DCORIO_ALLOW_GCC12=ON builds anyway, at your own risk.")
endif()
