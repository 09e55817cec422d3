# `cmake --install` and `cpack -G DEB`: the three libraries, their headers as <corio/...>, an exported
# package (find_package(corio 0.1) gives corio::runtime, corio::net, corio::tls) and corio.pc.
include(CMakePackageConfigHelpers)

set(CORIO_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/corio)
install(TARGETS corio_runtime corio_net corio_tls corio_http EXPORT corioTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
foreach(layer runtime net tls http)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${layer}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/corio/${layer}
          FILES_MATCHING PATTERN "*.hpp")
endforeach()
install(EXPORT corioTargets NAMESPACE corio:: DESTINATION ${CORIO_CMAKE_DIR})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/corioConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/corioConfig.cmake INSTALL_DESTINATION ${CORIO_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/corioConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/corioConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/corioConfigVersion.cmake
              ${CMAKE_CURRENT_LIST_DIR}/corioCompilerCheck.cmake DESTINATION ${CORIO_CMAKE_DIR})

# pkg-config: the same libraries and flags for builds without CMake.
if(CORIO_MIMALLOC_FRAMES)
  set(CORIO_PC_FRAMES "-DCORIO_MIMALLOC_FRAMES=1")
  set(CORIO_PC_MIMALLOC "-lmimalloc")
else()
  set(CORIO_PC_FRAMES "-DCORIO_MIMALLOC_FRAMES=0")
  set(CORIO_PC_MIMALLOC "")
endif()
file(RELATIVE_PATH CORIO_PC_UP /${CMAKE_INSTALL_LIBDIR}/pkgconfig /)  # relocatable: the .deb installs under /usr
configure_file(${CMAKE_CURRENT_LIST_DIR}/corio.pc.in ${CMAKE_CURRENT_BINARY_DIR}/corio.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/corio.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# A Debian package of the library: apt install ./corio-dev_*.deb
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME corio-dev)
set(CPACK_PACKAGE_VENDOR corio)
set(CPACK_PACKAGE_CONTACT "corio maintainers <corio@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "C++20 coroutine runtime for Linux network servers on io_uring (static libraries, headers)")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "liburing-dev, libssl-dev, libc-ares-dev, libmimalloc-dev, pkg-config")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
include(CPack)
