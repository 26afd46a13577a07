# aigis_module(NAME SOURCES ... DEPS ... [ASIO])
# One static library per folder under src/. Files ending in _test.cc become
# a GoogleTest executable registered with ctest; _benchmark.cc files a
# Google Benchmark executable.
function(aigis_module name)
  cmake_parse_arguments(M "ASIO" "" "DEPS" ${ARGN})
  file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cc)
  set(lib_srcs ${srcs})
  list(FILTER lib_srcs EXCLUDE REGEX "(_test|_benchmark|main|pch)\\.cc$")
  set(test_srcs ${srcs})
  list(FILTER test_srcs INCLUDE REGEX "_test\\.cc$")
  set(bench_srcs ${srcs})
  list(FILTER bench_srcs INCLUDE REGEX "_benchmark\\.cc$")

  add_library(aigis_${name} STATIC ${lib_srcs})
  target_include_directories(aigis_${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(aigis_${name} PUBLIC ${M_DEPS})
  if(M_ASIO)
    target_compile_definitions(aigis_${name} PUBLIC ${AIGIS_ASIO_DEFS})
    if(TARGET aigis_pch)
      target_precompile_headers(aigis_${name} REUSE_FROM aigis_pch)
    endif()
  endif()

  if(AIGIS_TESTS AND test_srcs)
    add_executable(aigis_${name}_test ${test_srcs})
    target_link_libraries(aigis_${name}_test PRIVATE aigis_${name} GTest::gtest GTest::gmock GTest::gtest_main)
    if(M_ASIO AND TARGET aigis_pch)
      target_precompile_headers(aigis_${name}_test REUSE_FROM aigis_pch)
    endif()
    gtest_discover_tests(aigis_${name}_test
      PROPERTIES ENVIRONMENT "AIGIS_SHARED_DATA=${PROJECT_SOURCE_DIR}/../shared/data"
      DISCOVERY_TIMEOUT 30)
  endif()
  if(AIGIS_BENCH AND bench_srcs AND TARGET benchmark::benchmark)
    add_executable(aigis_${name}_benchmark ${bench_srcs})
    target_link_libraries(aigis_${name}_benchmark PRIVATE aigis_${name} benchmark::benchmark_main)
  endif()
endfunction()
