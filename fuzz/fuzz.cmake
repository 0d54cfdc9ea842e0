# libFuzzer harnesses (JADE_FUZZ=ON, clang): one executable per fuzz/fuzz_*.c, run by
# scripts/fuzz.sh.
file(GLOB JADE_FUZZ_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/fuzz/fuzz_*.c)
set(JADE_FUZZ_TARGETS "")
foreach(src ${JADE_FUZZ_SOURCES})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/fuzz ${CMAKE_SOURCE_DIR}/src ${CMAKE_SOURCE_DIR}/app)
  target_link_libraries(${name} PRIVATE jade)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  list(APPEND JADE_FUZZ_TARGETS ${name})
endforeach()
add_custom_target(fuzz_all DEPENDS ${JADE_FUZZ_TARGETS})
