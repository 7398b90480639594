#include "service/wire_fields.h"

#include "google/protobuf/io/coded_stream.h"

namespace tasktrail {
namespace {

using google::protobuf::io::CodedInputStream;

// Groups nested deeper than this are refused; protobuf's parser refuses
// nesting deeper than 100.
constexpr int kMaxGroupDepth = 128;

// Reads one field after its tag. `field->number` is set; returns false when
// the field is not well formed. A group (wire type 3) is skipped through its
// end tag and reported as `*group`.
bool ReadField(absl::string_view message, uint32_t tag, int depth,
               CodedInputStream* in, WireField* field, bool* group);

// Skips the fields of a group up to and including its end tag.
bool SkipGroup(absl::string_view message, int number, int depth,
               CodedInputStream* in) {
  if (depth >= kMaxGroupDepth) return false;
  const int size = static_cast<int>(message.size());
  while (in->CurrentPosition() < size) {
    const uint32_t tag = in->ReadTagNoLastTag();
    if ((tag & 7) == 4) return static_cast<int>(tag >> 3) == number;
    WireField field;
    bool group = false;
    if (!ReadField(message, tag, depth + 1, in, &field, &group)) return false;
  }
  return false;  // no end tag
}

bool ReadField(absl::string_view message, uint32_t tag, int depth,
               CodedInputStream* in, WireField* field, bool* group) {
  field->number = static_cast<int>(tag >> 3);
  if (field->number == 0) return false;  // also a malformed tag
  switch (tag & 7) {
    case 0:
      field->type = WireType::kVarint;
      return in->ReadVarint64(&field->value);
    case 1:
      field->type = WireType::kFixed64;
      return in->ReadLittleEndian64(&field->value);
    case 2: {
      field->type = WireType::kLengthDelimited;
      uint32_t length = 0;
      if (!in->ReadVarint32(&length)) return false;
      const int at = in->CurrentPosition();
      if (length >
          static_cast<uint32_t>(static_cast<int>(message.size()) - at)) {
        return false;
      }
      field->payload = message.substr(at, length);
      return in->Skip(static_cast<int>(length));
    }
    case 3:
      *group = true;
      return SkipGroup(message, field->number, depth, in);
    case 5: {
      field->type = WireType::kFixed32;
      uint32_t value = 0;
      if (!in->ReadLittleEndian32(&value)) return false;
      field->value = value;
      return true;
    }
    default:  // an end tag outside its group, or wire type 6 or 7
      return false;
  }
}

}  // namespace

bool ForEachWireField(absl::string_view message,
                      absl::FunctionRef<void(const WireField&)> visit) {
  const int size = static_cast<int>(message.size());
  CodedInputStream in(reinterpret_cast<const uint8_t*>(message.data()), size);
  while (in.CurrentPosition() < size) {
    const uint32_t tag = in.ReadTagNoLastTag();
    WireField field;
    bool group = false;
    if (!ReadField(message, tag, 0, &in, &field, &group)) return false;
    if (!group) visit(field);
  }
  return true;
}

}  // namespace tasktrail
