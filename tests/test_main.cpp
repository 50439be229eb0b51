// The test runner: GoogleTest's, except that a run in which tests were skipped (a fixture that is
// not on this machine) and none failed exits with 77, which CTest reports as "Skipped".
#include <gtest/gtest.h>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const int status = RUN_ALL_TESTS();
  if (status != 0) return status;
  return ::testing::UnitTest::GetInstance()->skipped_test_count() > 0 ? 77 : 0;
}
