// Fuzz target: a records file (JSONL or a JSON array of LaMP / LongLaMP records), streamed to the end.
#include "fuzz_util.hpp"
#include "percetrain/data/records.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = percetrain::fuzz::write_scratch("records.jsonl", data, size);
  return percetrain::fuzz::expect_only_errors([&] {
    percetrain::RecordReader reader(path);
    percetrain::Record record;
    percetrain::BadRecord bad;
    bool is_bad = false;
    while (reader.next(&record, &bad, &is_bad)) {
    }
  });
}
