// Records found by fuzzing the records reader (fuzz/records.cpp): each is a bad record with a
// reason, and the records after it are still read.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "percetrain/data/records.hpp"
#include "test_util.hpp"

namespace percetrain {
namespace {

TEST(RecordsFuzzFindings, NumberBeyondDoubleIsABadRecord) {
  const testing_util::ScratchDir dir("percetrain-records");
  // nlohmann reports 1e10000 as out_of_range, which escaped the reader's parse-error handler.
  testing_util::write_file(dir / "r.jsonl",
                           "{\"id\": \"a\", \"input\": \"x\", \"output\": \"y\", \"profile\": [{\"overall\": 1e10000}]}\n"
                           "{\"id\": \"b\", \"input\": \"x\", \"output\": \"y\", \"profile\": []}\n");
  RecordReader reader((dir / "r.jsonl").string());
  Record record;
  BadRecord bad;
  std::vector<std::string> read, problems;
  bool is_bad = false;
  while (reader.next(&record, &bad, &is_bad)) {
    if (is_bad) problems.push_back(bad.where + ": " + bad.what);
    else read.push_back(record.id);
  }
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("r.jsonl:1: not valid JSON: number overflow"), std::string::npos) << problems[0];
  EXPECT_EQ(read, std::vector<std::string>{"b"});
}

}  // namespace
}  // namespace percetrain
