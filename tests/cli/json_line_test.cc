// Tests of JsonLineWriter (cli/json_line.h): for Tasks filled at random
// (fixed seed) through every field, with strings holding what JSON must
// escape, unknown enum values, negative durations and every fraction of a
// second, its line is byte for byte what ToJson prints; so is the line of
// a message it leaves to protobuf (a double, a map).
#include "cli/json_line.h"

#include <random>
#include <string>
#include <vector>

#include "cli/format.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"
#include "gtest/gtest.h"
#include "tasktrail/v1/tracker.pb.h"

namespace tasktrail::cli {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

const std::vector<std::string>& Strings() {
  static const auto* const strings = new std::vector<std::string>{
      "",
      "a cat on a skateboard, 16:9",
      "quote \" backslash \\ slash / tab \t newline \n cr \r",
      std::string("nul \0 and \x01 \x1f \x7f", 15),
      "<script>&'</script>",
      "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80",
      "format \xc2\xad \xe2\x80\x8b \xe2\x80\xa8 \xe2\x80\xa9 \xef\xbb\xbf "
      "\xf0\x9d\x85\xb3 \xf3\xa0\x80\x81 \xc2\x80 \xc2\x9f \xd8\x80",
      "https://cdn.example.com/ref/0001.png?sig=abc%20def",
  };
  return *strings;
}

class Filler {
 public:
  explicit Filler(uint32_t seed) : random_(seed) {}

  void Fill(Message* message, int depth) {
    const Descriptor* d = message->GetDescriptor();
    const Reflection* r = message->GetReflection();
    if (d->full_name() == "google.protobuf.Timestamp") {
      static const int32_t kNanos[] = {0, 5, 120000000, 123456000, 999999999};
      r->SetInt64(message, d->FindFieldByNumber(1),
                  Pick({0, 1, 1700000000, 1800000000, 4102444800}));
      r->SetInt32(message, d->FindFieldByNumber(2), kNanos[Below(5)]);
      return;
    }
    if (d->full_name() == "google.protobuf.Duration") {
      const int64_t seconds = Pick({0, 1, 59, 86400, -3});
      int32_t nanos = static_cast<int32_t>(Pick({0, 500000000, 1000, 7}));
      if (seconds < 0) nanos = -nanos;
      r->SetInt64(message, d->FindFieldByNumber(1), seconds);
      r->SetInt32(message, d->FindFieldByNumber(2), nanos);
      return;
    }
    for (int i = 0; i < d->field_count(); ++i) {
      const FieldDescriptor* field = d->field(i);
      if (Below(3) == 0) continue;  // left unset
      if (field->is_repeated()) {
        const int count = static_cast<int>(Below(depth > 2 ? 1 : 4));
        for (int k = 0; k < count; ++k) Add(message, field, depth);
      } else {
        if (field->containing_oneof() != nullptr && Below(2) == 0) continue;
        Set(message, field, depth);
      }
    }
  }

 private:
  uint64_t Below(uint64_t n) { return n == 0 ? 0 : random_() % n; }
  int64_t Pick(std::initializer_list<int64_t> values) {
    return *(values.begin() + Below(values.size()));
  }
  int64_t Integer() {
    return Pick({0, 1, -1, 42, 2147483647, -2147483648LL, 9007199254740993LL,
                 INT64_MIN});
  }
  int EnumNumber(const FieldDescriptor* field) {
    const auto* type = field->enum_type();
    if (Below(10) == 0) return 97;  // a value this build does not know
    return type->value(static_cast<int>(Below(type->value_count())))->number();
  }

  void Set(Message* message, const FieldDescriptor* field, int depth) {
    const Reflection* r = message->GetReflection();
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
        r->SetInt32(message, field, static_cast<int32_t>(Integer()));
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        r->SetUInt32(message, field, static_cast<uint32_t>(Integer()));
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        r->SetInt64(message, field, Integer());
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        r->SetUInt64(message, field, static_cast<uint64_t>(Integer()));
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        r->SetBool(message, field, Below(2) == 1);
        break;
      case FieldDescriptor::CPPTYPE_ENUM:
        r->SetEnumValue(message, field, EnumNumber(field));
        break;
      case FieldDescriptor::CPPTYPE_STRING:
        r->SetString(message, field, Strings()[Below(Strings().size())]);
        break;
      case FieldDescriptor::CPPTYPE_MESSAGE:
        if (depth < 4) Fill(r->MutableMessage(message, field), depth + 1);
        break;
      default:
        break;
    }
  }

  void Add(Message* message, const FieldDescriptor* field, int depth) {
    const Reflection* r = message->GetReflection();
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
        r->AddInt32(message, field, static_cast<int32_t>(Integer()));
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        r->AddInt64(message, field, Integer());
        break;
      case FieldDescriptor::CPPTYPE_ENUM:
        r->AddEnumValue(message, field, EnumNumber(field));
        break;
      case FieldDescriptor::CPPTYPE_STRING:
        r->AddString(message, field, Strings()[Below(Strings().size())]);
        break;
      case FieldDescriptor::CPPTYPE_MESSAGE:
        if (depth < 4) Fill(r->AddMessage(message, field), depth + 1);
        break;
      default:
        break;
    }
  }

  std::mt19937_64 random_;
};

std::string Expected(const Message& message) {
  absl::StatusOr<std::string> line = ToJson(message, /*pretty=*/false);
  EXPECT_TRUE(line.ok()) << line.status();
  return line.ok() ? *line : "";
}

TEST(JsonLineWriterTest, RandomTasksPrintAsToJson) {
  Filler filler(20261206);
  JsonLineWriter writer;
  for (int i = 0; i < 2000; ++i) {
    v1::Task task;
    filler.Fill(&task, 0);
    std::string out = "before\n";
    ASSERT_TRUE(writer.AppendLine(task, &out).ok());
    ASSERT_EQ(out, "before\n" + Expected(task)) << "task " << i;
  }
  EXPECT_EQ(writer.lines_left_to_protobuf(), 0);
}

TEST(JsonLineWriterTest, EmptyTaskPrintsEveryPrimitiveAtItsDefault) {
  v1::Task task;
  std::string out;
  ASSERT_TRUE(JsonLineWriter().AppendLine(task, &out).ok());
  EXPECT_EQ(out, Expected(task));
  EXPECT_NE(out.find("\"task_id\":\"\""), std::string::npos) << out;
}

TEST(JsonLineWriterTest, MessagesItLeavesToProtobufPrintAsToJson) {
  v1::Stats stats;  // maps
  (*stats.add_models()->mutable_tasks_by_state())["TASK_STATE_QUEUED"] = 3;
  v1::ListModelsResponse models;  // doubles
  v1::ModelSpec* model = models.add_models();
  model->set_name("veo-3");
  model->mutable_reference_images()->set_min_aspect(0.5);
  JsonLineWriter writer;
  for (const Message* message : std::vector<const Message*>{&stats, &models}) {
    std::string out;
    ASSERT_TRUE(writer.AppendLine(*message, &out).ok());
    EXPECT_EQ(out, Expected(*message));
  }
  EXPECT_EQ(writer.lines_left_to_protobuf(), 2);
}

}  // namespace
}  // namespace tasktrail::cli
