// Which user a record belongs to (per-user adapters): data.user_key, else user_id, else user.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "percetrain/data/dataset.hpp"
#include "percetrain/data/records.hpp"
#include "percetrain/util/error.hpp"
#include "test_util.hpp"

namespace percetrain {
namespace user_id_test {

struct Read {
  std::vector<std::string> users;
  std::vector<std::string> problems;
};

Read read_users(const std::string& jsonl, const std::string& key) {
  const testing_util::ScratchDir dir("percetrain-users");
  testing_util::write_file(dir / "r.jsonl", jsonl);
  RecordReader reader((dir / "r.jsonl").string());
  reader.set_user_key(key);
  Read out;
  Record r;
  BadRecord bad;
  bool is_bad = false;
  while (reader.next(&r, &bad, &is_bad)) {
    if (is_bad) out.problems.push_back(bad.field + ": " + bad.what);
    else out.users.push_back(r.user);
  }
  return out;
}

const std::string kRecords =
    R"({"id": "a", "user_id": "U1", "user": "ignored", "reviewerId": "R1", "input": "x", "output": "y", "profile": []})"
    "\n"
    R"({"id": "b", "user": "u02", "reviewerId": 7, "input": "x", "output": "y", "profile": []})"
    "\n"
    R"({"id": "c", "user": {"name": "not an id"}, "input": "x", "output": "y", "profile": []})"
    "\n";

TEST(UserIds, UserIdThenUserUnlessAKeyIsGiven) {
  const Read fallback = read_users(kRecords, "");
  EXPECT_TRUE(fallback.problems.empty());
  EXPECT_EQ(fallback.users, (std::vector<std::string>{"U1", "u02", ""}));  // an object is no id

  const Read keyed = read_users(kRecords, "reviewerId");
  EXPECT_TRUE(keyed.problems.empty());
  EXPECT_EQ(keyed.users, (std::vector<std::string>{"R1", "7", ""}));  // numbers as text; absent: none

  const Read strict = read_users(kRecords, "user");
  ASSERT_EQ(strict.problems.size(), 1u);
  EXPECT_EQ(strict.problems[0], "user: is not a user id (a string or a number)");
}

TEST(UserIds, GroupingNamesARecordWithoutAUser) {
  std::vector<PairedExample> examples(3);
  examples[0].id = "a";
  examples[0].user = "u1";
  examples[1].id = "b";
  examples[1].user = "u0";
  examples[2].id = "c";
  examples[2].user = "u1";
  const auto groups = examples_by_user(examples, "f.jsonl");
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups.begin()->first, "u0");
  EXPECT_EQ(groups.at("u1"), (std::vector<size_t>{0, 2}));
  examples[1].user.clear();
  EXPECT_TRUE(testing_util::throws_error([&] { examples_by_user(examples, "f.jsonl"); },
                                         "f.jsonl: b: names no user"));
}

}  // namespace user_id_test
}  // namespace percetrain
