#include "service/rules/wire_fields.h"

#include <climits>

#include "base/utf8.h"
#include "google/protobuf/io/coded_stream.h"

namespace tasktrail {
namespace {

using google::protobuf::io::CodedInputStream;

// Groups nested deeper than this are refused; protobuf's parser refuses
// nesting deeper than 100.
constexpr int kMaxGroupDepth = 128;

// Tags and lengths are varints of at most 5 bytes, as protobuf's parser
// reads them (a longer encoding is refused, not truncated).
constexpr int kMaxTagOrLengthBytes = 5;

// Reads a tag or a length; false when it is longer than 5 bytes or cut off.
bool ReadShortVarint(CodedInputStream* in, uint64_t* value) {
  const int start = in->CurrentPosition();
  return in->ReadVarint64(value) &&
         in->CurrentPosition() - start <= kMaxTagOrLengthBytes;
}

// Reads one field after its tag into `field` (its number already set);
// returns false when it is not well formed. A group (wire type 3) is skipped
// through its end tag and reported as `*group`.
bool ReadField(absl::string_view message, uint32_t tag, int depth,
               CodedInputStream* in, WireField* field, bool* group);

// Reads a tag as protobuf's parser does: at most 5 bytes, the bits past 32
// dropped. False at a malformed tag or field number 0.
bool ReadTag(CodedInputStream* in, uint32_t* tag) {
  uint64_t value = 0;
  if (!ReadShortVarint(in, &value)) return false;
  *tag = static_cast<uint32_t>(value);
  return (*tag >> 3) != 0;
}

// Skips the fields of a group up to and including its end tag.
bool SkipGroup(absl::string_view message, int number, int depth,
               CodedInputStream* in) {
  if (depth >= kMaxGroupDepth) return false;
  const int size = static_cast<int>(message.size());
  while (in->CurrentPosition() < size) {
    uint32_t tag = 0;
    if (!ReadTag(in, &tag)) return false;
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
  switch (tag & 7) {
    case 0:
      field->type = WireType::kVarint;
      return in->ReadVarint64(&field->value);
    case 1:
      field->type = WireType::kFixed64;
      return in->ReadLittleEndian64(&field->value);
    case 2: {
      field->type = WireType::kLengthDelimited;
      uint64_t length = 0;
      if (!ReadShortVarint(in, &length)) return false;
      const int at = in->CurrentPosition();
      if (length > message.size() - static_cast<size_t>(at)) return false;
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
  if (message.size() > static_cast<size_t>(INT_MAX)) return false;
  const int size = static_cast<int>(message.size());
  CodedInputStream in(reinterpret_cast<const uint8_t*>(message.data()), size);
  while (in.CurrentPosition() < size) {
    uint32_t tag = 0;
    if (!ReadTag(&in, &tag)) return false;
    WireField field;
    bool group = false;
    if (!ReadField(message, tag, 0, &in, &field, &group)) return false;
    if (!group) visit(field);
  }
  return true;
}

bool IsValidUtf8(absl::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const size_t length = Utf8SequenceLength(text, i);
    if (length == 0) return false;
    i += length;
  }
  return true;
}

}  // namespace tasktrail
