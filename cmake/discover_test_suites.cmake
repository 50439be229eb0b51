# Run after percetrain_tests is built: writes one CTest test per GoogleTest suite (all of the
# suite's tests in one process) into OUT. A suite whose tests skipped exits 77 (tests/test_main.cpp),
# which CTest shows as skipped. Invoked with -DTEST_BINARY=... -DOUT=... -DWORKDIR=...
execute_process(COMMAND "${TEST_BINARY}" --gtest_list_tests
                WORKING_DIRECTORY "${WORKDIR}" OUTPUT_VARIABLE listing RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "${TEST_BINARY} --gtest_list_tests failed (${status}):\n${listing}")
endif()
string(REPLACE "\n" ";" lines "${listing}")
set(content "")
foreach(line IN LISTS lines)
  # Suite lines are unindented "Name." (parameterised: "Prefix/Name."); test lines are indented.
  # DistWorker's tests run only inside ranks that DistLaunch starts through torchrun.
  # (Two tests, not one `A AND NOT B` condition: the failing second MATCHES clears CMAKE_MATCH_1.)
  if(line MATCHES "^([^ ]+)\\.( |$)")
    set(suite "${CMAKE_MATCH_1}")
  else()
    continue()
  endif()
  if(NOT suite STREQUAL "DistWorker")
    string(APPEND content
      "add_test([=[${suite}]=] [=[${TEST_BINARY}]=] [=[--gtest_filter=${suite}.*]=])\n"
      "set_tests_properties([=[${suite}]=] PROPERTIES WORKING_DIRECTORY [=[${WORKDIR}]=] TIMEOUT 600 SKIP_RETURN_CODE 77)\n")
  endif()
endforeach()
if(content STREQUAL "")
  message(FATAL_ERROR "no GoogleTest suites found in the listing of ${TEST_BINARY}:\n${listing}")
endif()
file(WRITE "${OUT}" "${content}")
