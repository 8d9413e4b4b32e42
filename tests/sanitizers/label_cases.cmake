# Writes set_tests_properties(... LABELS label) for every doctest case that
# EXECUTABLE lists under FILTER (--source-file=... or --test-case=...); run
# after each build by pixpool_label_cases() in tests/CMakeLists.txt.
# Inputs: EXECUTABLE, PREFIX (the suite's ctest name prefix), FILTER, LABEL, OUTPUT.
execute_process(
  COMMAND "${EXECUTABLE}" "${FILTER}" --list-test-cases
  OUTPUT_VARIABLE listing
  RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "${EXECUTABLE} --list-test-cases failed (${status}):\n${listing}")
endif()
string(REPLACE "\n" ";" lines "${listing}")
set(script "")
set(count 0)
foreach(line IN LISTS lines)
  if(line STREQUAL "" OR line MATCHES "^===" OR line MATCHES "^\\[doctest\\] ")
    continue()
  endif()
  string(APPEND script "set_tests_properties([==[${PREFIX}${line}]==] PROPERTIES LABELS ${LABEL})\n")
  math(EXPR count "${count} + 1")
endforeach()
if(count EQUAL 0)
  message(FATAL_ERROR "no case of ${EXECUTABLE} is defined in ${FILTER}: fix the file list of label ${LABEL}")
endif()
file(WRITE "${OUTPUT}" "${script}")
