// Tests of CheckPublicHttpsUrl: URLs the vendor must not be sent (SSRF targets
// and broken input) are refused with a sentence naming the problem; public
// https URLs pass.

#include "service/rules/url_rules.h"

#include <ostream>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/types/optional.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tasktrail {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct RejectedCase {
  const char* url;
  // A fact the sentence must mention; "" checks only that it is rejected.
  const char* mentions;
};

void PrintTo(const RejectedCase& c, std::ostream* os) {
  *os << absl::CHexEscape(c.url);
}

class RejectedUrlTest : public ::testing::TestWithParam<RejectedCase> {};

TEST_P(RejectedUrlTest, IsRefusedWithASentence) {
  const RejectedCase& c = GetParam();
  for (UrlUse use : {UrlUse::kCallback, UrlUse::kReferenceImage}) {
    const absl::optional<std::string> problem = CheckPublicHttpsUrl(c.url, use);
    ASSERT_TRUE(problem.has_value());
    EXPECT_THAT(*problem, HasSubstr(c.mentions));
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllRules, RejectedUrlTest,
    ::testing::Values(
        // Scheme.
        RejectedCase{"http://example.com/", "https"},
        RejectedCase{"HTTP://example.com/", "https"},
        RejectedCase{"ftp://example.com/a.png", "https"},
        RejectedCase{"file:///etc/passwd", "https"},
        RejectedCase{"javascript:alert(1)", "https"},
        RejectedCase{"gopher://example.com:70/_", "https"},
        RejectedCase{"example.com/a.png", "https"},
        RejectedCase{"//example.com/a.png", "https"},
        RejectedCase{"https:/example.com", "https"},
        RejectedCase{"https:///example.com", "no host"},
        RejectedCase{"https://", "no host"},
        RejectedCase{"https://:443/", "no host"}, RejectedCase{"", "https"},
        // data: URIs, any case.
        RejectedCase{"data:image/png;base64,iVBORw0KGgo=", "data:"},
        RejectedCase{"DATA:image/png;base64,iVBORw0KGgo=", "data:"},
        // Userinfo and backslash in the authority.
        RejectedCase{"https://user:pass@example.com/", "user name"},
        RejectedCase{"https://user@example.com", "user name"},
        RejectedCase{"https://example.com@169.254.169.254/", "user name"},
        RejectedCase{"https://@example.com/", "user name"},
        RejectedCase{"https://evil.com\\@good.com/", "backslash"},
        RejectedCase{"https://good.com\\evil.com/", "backslash"},
        // Whitespace and control characters anywhere.
        RejectedCase{"https://example.com/a b.png", "whitespace"},
        RejectedCase{" https://example.com/", "whitespace"},
        RejectedCase{"https://example.com/\t", "whitespace"},
        RejectedCase{"https://exa\nmple.com/", "whitespace"},
        RejectedCase{"https://example.com/\x7f", "control"},
        RejectedCase{"https://example.com/\x01", "control"},
        // Ports.
        RejectedCase{"https://example.com:0/", "port"},
        RejectedCase{"https://example.com:65536/", "port"},
        RejectedCase{"https://example.com:99999999999/", "port"},
        RejectedCase{"https://example.com:abc/", "port"},
        RejectedCase{"https://example.com:/", "port"},
        RejectedCase{"https://example.com:+443/", "port"},
        RejectedCase{"https://example.com:-1/", "port"},
        RejectedCase{"https://example.com:443:443/", "port"},
        // IPv4 in every notation.
        RejectedCase{"https://127.0.0.1/", "127.0.0.1 is an IP address"},
        RejectedCase{"https://10.0.0.1/", "IP address"},
        RejectedCase{"https://192.168.1.1:8443/x", "IP address"},
        RejectedCase{"https://169.254.169.254/latest/meta-data/", "IP address"},
        RejectedCase{"https://2130706433/", "2130706433 is an IP address"},
        RejectedCase{"https://0x7f000001/", "IP address"},
        RejectedCase{"https://0X7F000001/", "IP address"},
        RejectedCase{"https://0x7f.0.0.1/", "IP address"},
        RejectedCase{"https://0177.0.0.1/", "IP address"},
        RejectedCase{"https://017700000001/", "IP address"},
        RejectedCase{"https://127.1/", "IP address"},
        RejectedCase{"https://127.0.1/", "IP address"},
        RejectedCase{"https://127.0.0.1./", "IP address"},
        RejectedCase{"https://0/", "IP address"},
        RejectedCase{"https://example.123/", "IP address"},
        RejectedCase{"https://example.0x1f/", "IP address"},
        // IPv6, always bracketed.
        RejectedCase{"https://[::1]/", "[::1] is an IP address"},
        RejectedCase{"https://[::1]:443/", "IP address"},
        RejectedCase{"https://[::ffff:127.0.0.1]/", "IP address"},
        RejectedCase{"https://[fe80::1%25eth0]/", "IP address"},
        RejectedCase{"https://[2001:db8::1]/", "IP address"},
        // localhost, any case, with or without the trailing dot.
        RejectedCase{"https://localhost/", "localhost"},
        RejectedCase{"https://LOCALHOST/", "localhost"},
        RejectedCase{"https://LocalHost./", "localhost"},
        RejectedCase{"https://localhost:8443/cb", "localhost"},
        RejectedCase{"https://api.localhost/", "localhost"},
        RejectedCase{"https://a.b.LOCALHOST./", "localhost"},
        // Percent-encoded and non-ASCII hosts.
        RejectedCase{"https://%31%32%37.0.0.1/", "punycode"},
        RejectedCase{"https://exa%6Dple.com/", "punycode"},
        RejectedCase{"https://ex\xC3\xA4mple.com/", "punycode"},
        // Not a domain name.
        RejectedCase{"https://intranet/", "not one"},
        RejectedCase{"https://metadata/computeMetadata/v1/", "not one"},
        RejectedCase{"https://a..com/", "not one"},
        RejectedCase{"https://.example.com/", "not one"},
        RejectedCase{"https://example.com../", "not one"},
        RejectedCase{"https://./", "not one"},
        RejectedCase{"https://-example.com/", "not one"},
        RejectedCase{"https://example-.com/", "not one"},
        RejectedCase{"https://example.-com/", "not one"},
        RejectedCase{"https://under_score.example.com/", "not one"},
        RejectedCase{"https://example.com*/", "not one"},
        RejectedCase{"https://[::1/", "IP address"}));

class AcceptedUrlTest : public ::testing::TestWithParam<const char*> {};

TEST_P(AcceptedUrlTest, Passes) {
  EXPECT_EQ(CheckPublicHttpsUrl(GetParam(), UrlUse::kCallback), absl::nullopt);
  EXPECT_EQ(CheckPublicHttpsUrl(GetParam(), UrlUse::kReferenceImage),
            absl::nullopt);
}

INSTANTIATE_TEST_SUITE_P(
    PublicHttpsUrls, AcceptedUrlTest,
    ::testing::Values("https://example.com", "https://example.com/",
                      "https://cdn.example.com/a/b.png?sig=abc#x",
                      "https://EXAMPLE.com:8443/cb", "HTTPS://example.com/",
                      "https://xn--bcher-kva.example/",
                      "https://a-b.c-d.io/path", "https://example.com./",
                      "https://1.example.com/",
                      "https://127.0.0.1.example.com/",
                      "https://s3.amazonaws.com/bucket/key.jpg",
                      "https://example.com:1/", "https://example.com:65535/",
                      "https://example.com?q=1", "https://example.com#frag",
                      "https://example.com/a@b.png",
                      "https://example.com/?next=http://localhost/",
                      "https://example.com/%20name.png",
                      "https://a.b.c.d.e.example.co.uk/x"));

// A label of `n` letters.
std::string Label(size_t n) { return std::string(n, 'a'); }

TEST(CheckPublicHttpsUrlTest, LengthLimitIsInclusive) {
  const std::string prefix = "https://example.com/";
  const std::string at_limit = prefix + std::string(100 - prefix.size(), 'x');
  ASSERT_EQ(at_limit.size(), 100u);
  EXPECT_EQ(CheckPublicHttpsUrl(at_limit, UrlUse::kCallback, 100),
            absl::nullopt);

  const absl::optional<std::string> problem =
      CheckPublicHttpsUrl(at_limit + "x", UrlUse::kCallback, 100);
  ASSERT_TRUE(problem.has_value());
  EXPECT_THAT(*problem, HasSubstr("101 bytes"));
  EXPECT_THAT(*problem, HasSubstr("100 bytes"));
}

TEST(CheckPublicHttpsUrlTest, DefaultLengthLimitIs2048) {
  const std::string prefix = "https://example.com/";
  const std::string at_limit = prefix + std::string(2048 - prefix.size(), 'x');
  EXPECT_EQ(CheckPublicHttpsUrl(at_limit, UrlUse::kReferenceImage),
            absl::nullopt);
  EXPECT_NE(CheckPublicHttpsUrl(at_limit + "x", UrlUse::kReferenceImage),
            absl::nullopt);
}

TEST(CheckPublicHttpsUrlTest, LabelAndDomainLengths) {
  EXPECT_EQ(
      CheckPublicHttpsUrl("https://" + Label(63) + ".com/", UrlUse::kCallback),
      absl::nullopt);
  EXPECT_NE(
      CheckPublicHttpsUrl("https://" + Label(64) + ".com/", UrlUse::kCallback),
      absl::nullopt);
  // 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 characters.
  const std::string host_253 =
      Label(63) + "." + Label(63) + "." + Label(63) + "." + Label(61);
  ASSERT_EQ(host_253.size(), 253u);
  EXPECT_EQ(CheckPublicHttpsUrl("https://" + host_253 + "/", UrlUse::kCallback),
            absl::nullopt);
  EXPECT_EQ(
      CheckPublicHttpsUrl("https://" + host_253 + "./", UrlUse::kCallback),
      absl::nullopt);
  EXPECT_NE(
      CheckPublicHttpsUrl("https://" + host_253 + "a/", UrlUse::kCallback),
      absl::nullopt);
}

TEST(CheckPublicHttpsUrlTest, SentenceNamesTheField) {
  const absl::optional<std::string> callback =
      CheckPublicHttpsUrl("http://example.com/", UrlUse::kCallback);
  ASSERT_TRUE(callback.has_value());
  EXPECT_THAT(*callback, HasSubstr("callback_url"));
  EXPECT_THAT(*callback, Not(HasSubstr("reference image")));

  const absl::optional<std::string> image =
      CheckPublicHttpsUrl("http://example.com/", UrlUse::kReferenceImage);
  ASSERT_TRUE(image.has_value());
  EXPECT_THAT(*image, HasSubstr("reference image URI"));
  EXPECT_THAT(*image, Not(HasSubstr("callback_url")));
}

TEST(CheckPublicHttpsUrlTest, IpAddressSentenceMatchesTheContract) {
  EXPECT_EQ(CheckPublicHttpsUrl("https://2130706433/", UrlUse::kCallback),
            "callback_url must be an https URL whose host is a domain name; "
            "2130706433 is an IP address");
}

TEST(CheckPublicHttpsUrlTest, DataUriForImagesSaysToUpload) {
  const std::string data_uri =
      "data:image/png;base64," + std::string(5000, 'A');
  const absl::optional<std::string> image =
      CheckPublicHttpsUrl(data_uri, UrlUse::kReferenceImage);
  ASSERT_TRUE(image.has_value());
  EXPECT_THAT(*image, HasSubstr("upload the image"));
  EXPECT_THAT(*image, HasSubstr("evidence, not media"));

  const absl::optional<std::string> callback =
      CheckPublicHttpsUrl(data_uri, UrlUse::kCallback);
  ASSERT_TRUE(callback.has_value());
  EXPECT_THAT(*callback, HasSubstr("https"));
  EXPECT_THAT(*callback, Not(HasSubstr("upload")));
}

}  // namespace
}  // namespace tasktrail
