# Every tests/test_*.c is one CTest test; every tests/test_*.sh is a shell test that gets the
# CLI path in $JADE and the data folder in $JADE_TEST_DATA. Tests labelled "slow" take >30 s.
# JADE_TEST_THREADS sets OMP_NUM_THREADS for every test (run the suite with 1 and 2 threads:
# cmake -DJADE_TEST_THREADS=1 only rewrites the test list, nothing is rebuilt).
set(JADE_TEST_THREADS 2 CACHE STRING "OMP_NUM_THREADS given to every test")
# OMP_WAIT_POLICY=passive: ctest -j 2 runs two 2-thread tests on 2 cores, and libgomp's threads
# spin at every barrier by default, so oversubscribed threads burn each other's time slices (a
# 3-galaxy sed fit: 21 s instead of 5 s next to one busy process). Results do not depend on it.
file(GLOB JADE_C_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/test_*.c)
foreach(src ${JADE_C_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/tests ${CMAKE_SOURCE_DIR}/src)
  target_link_libraries(${name} PRIVATE jade)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES
    ENVIRONMENT "JADE_TEST_DATA=${CMAKE_SOURCE_DIR}/tests/data;JADE=$<TARGET_FILE:jade_cli>;OMP_NUM_THREADS=${JADE_TEST_THREADS};OMP_WAIT_POLICY=passive"
    TIMEOUT 600)
endforeach()
file(GLOB JADE_SH_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/test_*.sh)
foreach(src ${JADE_SH_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_test(NAME ${name} COMMAND bash ${src})
  set_tests_properties(${name} PROPERTIES
    ENVIRONMENT "JADE_TEST_DATA=${CMAKE_SOURCE_DIR}/tests/data;JADE=$<TARGET_FILE:jade_cli>;JADE_SOURCE_DIR=${CMAKE_SOURCE_DIR};JADE_WITH_MPI=$<BOOL:${JADE_WITH_MPI}>;OMP_NUM_THREADS=${JADE_TEST_THREADS};OMP_WAIT_POLICY=passive"
    TIMEOUT 600)
endforeach()
# Exit code 77 = skipped (the bf16 tests on CPUs without AVX512-BF16, test_full_disk without root).
set_tests_properties(test_nn_gemm_bf16 PROPERTIES SKIP_RETURN_CODE 77)
set_tests_properties(test_sample_bf16 PROPERTIES SKIP_RETURN_CODE 77)
# The full-disk test mounts a tmpfs: 77 (skipped) where mount is not permitted.
set_tests_properties(test_full_disk PROPERTIES SKIP_RETURN_CODE 77)
# The Python package's tests (77 = no python3-numpy, or a sanitizer build).
set_tests_properties(test_python PROPERTIES SKIP_RETURN_CODE 77)
# Optional PyTorch cross-check (77 = no python3-torch).
set_tests_properties(test_torch_crosscheck PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 1200)
# The longest tests start first (a clean clone has no timing history for ctest -j to use).
set_tests_properties(test_diffusion_exact PROPERTIES COST 1000 LABELS slow)
set_tests_properties(test_docs test_cli_bad_input test_sample_bf16 test_report test_mcmc_cli PROPERTIES COST 100)
