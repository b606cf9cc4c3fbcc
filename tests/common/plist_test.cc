// The plist codec: real captures parse, round trips hold, hostile input is
// refused with a precise error and never crashes.
#include "common/plist/plist.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <unordered_set>

#include "tests/support/colliding_keys.h"

namespace courier::plist {
namespace {

std::string read(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string wrap(const std::string& inner) {
    return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\">" + inner +
           "</plist>";
}

Status error_of(const std::string& xml, const ParseLimits& limits = {}) {
    auto r = parse(xml, limits);
    EXPECT_FALSE(r.is_ok()) << "accepted: " << xml.substr(0, 200);
    return r.status();
}

TEST(Plist, EveryFixturePlistParsesAndRoundTrips) {
    size_t count = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(COURIER_FIXTURES_DIR)) {
        if (e.path().extension() != ".plist") continue;
        ++count;
        auto v = parse(read(e.path()));
        ASSERT_TRUE(v.is_ok()) << e.path() << ": " << v.status().to_string();
        ASSERT_TRUE(v->as_dict()) << e.path();
        auto again = parse(write_xml(*v));
        ASSERT_TRUE(again.is_ok()) << e.path() << ": " << again.status().to_string();
        EXPECT_EQ(*again, *v) << e.path();
    }
    EXPECT_GE(count, 12u);
}

TEST(Plist, AllValueTypesRoundTrip) {
    Dict d;
    d.set("s", "a <b> & \"c\" é");
    d.set("i", int64_t{-9223372036854775807LL - 1});
    d.set("r", 3.25);
    d.set("t", true);
    d.set("f", false);
    d.set("d", Data{std::string("\0\x01\xff", 3)});
    d.set("date", Date{from_unix(1767758686)});
    d.set("a", Array{Value(1), Value("x"), Value(Array{}), Value(Dict{})});
    d.set("empty", "");
    Value v(d);
    auto back = parse(write_xml(v));
    ASSERT_TRUE(back.is_ok()) << back.status().to_string();
    EXPECT_EQ(*back, v);
    EXPECT_NE(write_xml(v).find("<date>2026-01-07T04:04:46Z</date>"), std::string::npos);
}

TEST(Plist, KeepsDictOrderAndWhitespaceOnlyStrings) {
    auto d = parse_dict(
        wrap("<dict><key>b</key><string> </string><key>a</key><integer>1</integer></dict>"));
    ASSERT_TRUE(d.is_ok()) << d.status().to_string();
    EXPECT_EQ(d->entries()[0].first, "b");
    EXPECT_EQ(*d->find_string("b"), " ");
}

TEST(Plist, AppleDoctypeIsIgnored) {
    auto d = parse_dict(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD "
        "PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist "
        "version=\"1.0\"><dict><key>k</key><string>v</string></dict></plist>");
    ASSERT_TRUE(d.is_ok()) << d.status().to_string();
}

TEST(Plist, PredefinedAndCharacterEntitiesAreDecoded) {
    auto d = parse_dict(wrap("<dict><key>k</key><string>&lt;&amp;&#65;&#x42;</string></dict>"));
    ASSERT_TRUE(d.is_ok());
    EXPECT_EQ(*d->find_string("k"), "<&AB");
}

TEST(Plist, DataToleratesWhitespace) {
    auto d = parse_dict(wrap("<dict><key>d</key><data>\n\tZm9v\n\tYmFy\n</data></dict>"));
    ASSERT_TRUE(d.is_ok());
    EXPECT_EQ(d->find_data("d")->bytes, "foobar");
}

TEST(Plist, NegativeIntegersAreValid) {
    auto d = parse_dict(wrap("<dict><key>c</key><integer>-12021</integer></dict>"));
    ASSERT_TRUE(d.is_ok());
    EXPECT_EQ(*d->find_integer("c"), -12021);
}

TEST(PlistHostile, IntegerBeyondInt64) {
    auto s = error_of(wrap("<integer>9223372036854775808</integer>"));
    EXPECT_NE(s.message().find("outside int64"), std::string::npos) << s.message();
}

TEST(PlistHostile, DuplicateKeys) {
    auto s = error_of(wrap("<dict><key>a</key><true/><key>a</key><false/></dict>"));
    EXPECT_NE(s.message().find("duplicate key 'a'"), std::string::npos) << s.message();
}

TEST(PlistHostile, BillionLaughs) {
    auto s = error_of(
        "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 "
        "\"&lol;&lol;&lol;&lol;\">]><plist><string>&lol2;</string></plist>");
    EXPECT_NE(s.message().find("internal subset"), std::string::npos) << s.message();
}

TEST(PlistHostile, ExternalEntity) {
    auto s = error_of(
        "<?xml version=\"1.0\"?><!DOCTYPE plist [<!ENTITY xxe SYSTEM "
        "\"file:///etc/passwd\">]><plist><string>&xxe;</string></plist>");
    EXPECT_EQ(s.code(), Code::kInvalid);
}

TEST(PlistHostile, UndeclaredEntityReference) {
    auto s = error_of(wrap("<string>&foo;</string>"));
    EXPECT_NE(s.message().find("&foo;"), std::string::npos) << s.message();
}

TEST(PlistHostile, TruncatedDocuments) {
    std::string full =
        wrap("<dict><key>UDID</key><string>abc</string><key>n</key><integer>1</integer></dict>");
    for (size_t n = 0; n < full.size(); n += 3) {
        auto r = parse(full.substr(0, n));
        EXPECT_FALSE(r.is_ok()) << "prefix of " << n << " bytes was accepted";
    }
}

TEST(PlistHostile, WrongContentAndUnknownElements) {
    EXPECT_NE(error_of(wrap("<integer>12a</integer>")).message().find("not an integer"),
              std::string::npos);
    EXPECT_NE(error_of(wrap("<real>x</real>")).message().find("not a real"), std::string::npos);
    EXPECT_NE(error_of(wrap("<data>!!!</data>")).message().find("base64"), std::string::npos);
    EXPECT_NE(error_of(wrap("<date>yesterday</date>")).message().find("not a date"),
              std::string::npos);
    EXPECT_NE(error_of(wrap("<true>yes</true>")).message().find("no content"), std::string::npos);
    EXPECT_NE(error_of(wrap("<blob/>")).message().find("unknown element <blob>"),
              std::string::npos);
    EXPECT_NE(error_of(wrap("<dict><string>v</string></dict>")).message().find("without a <key>"),
              std::string::npos);
    EXPECT_NE(error_of(wrap("<dict><key>k</key></dict>")).message().find("has no value"),
              std::string::npos);
    EXPECT_NE(error_of(wrap("<array>text</array>")).message().find("text outside"),
              std::string::npos);
    EXPECT_NE(error_of(wrap("<string>a<b/></string>")).message().find("unexpected element"),
              std::string::npos);
    EXPECT_NE(error_of("<dict/>").message().find("must be <plist>"), std::string::npos);
    EXPECT_NE(error_of(wrap("<true/><false/>")).message().find("more than one value"),
              std::string::npos);
    EXPECT_NE(error_of(wrap("")).message().find("empty"), std::string::npos);
    EXPECT_FALSE(parse("").is_ok());
}

TEST(PlistHostile, ErrorsSayWhere) {
    auto s = error_of(wrap("<dict><key>a</key><integer>x</integer></dict>"));
    EXPECT_NE(s.message().find("offset"), std::string::npos) << s.message();
}

TEST(PlistHostile, InvalidUtf8) {
    EXPECT_NE(error_of(wrap("<string>\xff\xfe</string>")).message().find("UTF-8"),
              std::string::npos);
    EXPECT_FALSE(parse(wrap("<string>\xc0\xaf</string>")).is_ok()) << "overlong";
    EXPECT_FALSE(parse(wrap("<string>\xed\xa0\x80</string>")).is_ok()) << "surrogate";
    EXPECT_FALSE(parse(wrap("<dict><key>\xe2\x82</key><true/></dict>")).is_ok()) << "truncated";
    EXPECT_TRUE(parse(wrap("<string>\xe2\x82\xac \xf0\x9f\x98\x80</string>")).is_ok());
}

TEST(PlistHostile, DeepNestingIsRefusedWithoutRecursing) {
    std::string open, close;
    for (int i = 0; i < 100000; ++i) {
        open += "<array>";
        close += "</array>";
    }
    auto s = error_of(wrap(open + close));
    EXPECT_NE(s.message().find("nested deeper"), std::string::npos) << s.message();
    std::string ok_open, ok_close;
    for (int i = 0; i < 60; ++i) {
        ok_open += "<array>";
        ok_close += "</array>";
    }
    EXPECT_TRUE(parse(wrap(ok_open + ok_close)).is_ok());
}

TEST(PlistHostile, MillionElementArrayWithinAndOverLimits) {
    std::string body = "<array>";
    body.reserve(1'000'000 * 8 + 32);
    for (int i = 0; i < 1'000'000; ++i) body += "<true/>";
    body += "</array>";
    auto ok = parse(wrap(body), ParseLimits{.max_bytes = 64 << 20});
    ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
    EXPECT_EQ(ok->as_array()->size(), 1'000'000u);
    auto over = error_of(wrap(body), ParseLimits{.max_bytes = 64 << 20, .max_elements = 1000});
    EXPECT_NE(over.message().find("more than 1000 values"), std::string::npos);
}

TEST(PlistHostile, OversizedBodyIsTooLarge) {
    std::string big = wrap("<data>" + std::string(2048, 'A') + "</data>");
    auto r = parse(big, ParseLimits{.max_bytes = 1024});
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), Code::kTooLarge);
}

TEST(PlistHostile, HugeDataWithinLimitParses) {
    std::string payload(4 << 20, 'A');
    auto r = parse(wrap("<data>" + payload + "</data>"));
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r->as_data()->bytes.size(), 3u << 20);
}

TEST(PlistHostile, NonDictRootForParseDict) {
    auto r = parse_dict(wrap("<array/>"));
    ASSERT_FALSE(r.is_ok());
    EXPECT_NE(r.status().message().find("not a <dict>"), std::string::npos);
}

// ---- input limits (docs/security.md "Input limits") ------------------------------------

std::string wide_dict(size_t keys) {
    std::string body = "<dict>";
    body.reserve(keys * 32 + 16);
    for (size_t i = 0; i < keys; ++i) body += "<key>k" + std::to_string(i) + "</key><true/>";
    return body + "</dict>";
}

std::string nested_arrays(int depth) {
    std::string open, close;
    for (int i = 0; i < depth; ++i) {
        open += "<array>";
        close += "</array>";
    }
    return open + close;
}

TEST(PlistLimits, TenThousandKeysInOneDictAreAccepted) {
    auto r = parse_dict(wrap(wide_dict(10'000)));
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ(r->size(), 10'000u);
    EXPECT_EQ(r->entries().back().first, "k9999") << "order kept";
    EXPECT_NE(r->find_bool("k5000"), nullptr);
}

TEST(PlistLimits, TenThousandAndOneKeysAreRefused) {
    auto s = error_of(wrap(wide_dict(10'001)));
    EXPECT_NE(s.message().find("more than 10000 keys in one dict"), std::string::npos)
        << s.message();
}

// The attack of issue #11: 200,000 keys in an Idle. Refused by the key limit
// after at most 10,000 keys are taken, each in O(1) (no scan of the dict).
TEST(PlistLimits, TwoHundredThousandKeysAreRefusedByTheKeyLimit) {
    auto s = error_of(wrap(wide_dict(200'000)));
    EXPECT_NE(s.message().find("more than 10000 keys"), std::string::npos) << s.message();
}

TEST(PlistLimits, DuplicateKeyAfterManyKeysIsRefused) {
    std::string body = wide_dict(9'000);
    body.insert(body.size() - 7, "<key>k17</key><false/>");
    auto s = error_of(wrap(body));
    EXPECT_NE(s.message().find("duplicate key 'k17'"), std::string::npos) << s.message();
}

TEST(PlistLimits, DepthSixtyFourIsAcceptedAndSixtyFiveRefused) {
    EXPECT_TRUE(parse(wrap(nested_arrays(64))).is_ok());
    auto s = error_of(wrap(nested_arrays(65)));
    EXPECT_NE(s.message().find("nested deeper than 64"), std::string::npos) << s.message();
}

// A tag that never ends, many times over: refused at the first, without
// searching the rest of the body for a '>' once per '<' (quadratic before).
TEST(PlistLimits, UnterminatedTagsAreRefusedAtTheFirst) {
    std::string body = wrap("<array>") + std::string(64 * 1024, '<');
    for (size_t i = body.size() - 64 * 1024; i < body.size(); i += 2) body[i + 1] = 'a';
    auto s = error_of(body);
    EXPECT_NE(s.message().find("unterminated tag"), std::string::npos) << s.message();
}

TEST(PlistLimits, ManyDoctypesAreScannedOnceEach) {
    std::string body;
    for (int i = 0; i < 5'000; ++i) body += "<!DOCTYPE plist>";
    body += "<!DOCTYPE x [";
    auto s = error_of(body);
    EXPECT_NE(s.message().find("internal subset"), std::string::npos) << s.message();
}

TEST(PlistXmlText, CharacterReferencesToForbiddenCharactersAreRefused) {
    for (const char* bad :
         {"&#1;", "&#0;", "&#x1F;", "&#xFFFE;", "&#xFFFF;", "&#xD800;", "&#27;"}) {
        auto r = parse(wrap(std::string("<string>a") + bad + "b</string>"));
        EXPECT_FALSE(r.is_ok()) << bad;
    }
    auto s = error_of(wrap("<string>a&#1;b</string>"));
    EXPECT_NE(s.message().find("XML 1.0 forbids"), std::string::npos) << s.message();
}

TEST(PlistXmlText, RawControlBytesAndNonCharactersAreRefused) {
    EXPECT_FALSE(parse(wrap(std::string("<string>a\x01") + "b</string>")).is_ok());
    EXPECT_FALSE(parse(wrap("<string>a\x1b[2Jb</string>")).is_ok());
    EXPECT_FALSE(parse(wrap("<string>a\xef\xbf\xbe</string>")).is_ok()) << "U+FFFE";
    EXPECT_FALSE(parse(wrap("<string>a\xef\xbf\xbf</string>")).is_ok()) << "U+FFFF";
    EXPECT_FALSE(parse(wrap("<dict><key>a&#2;</key><true/></dict>")).is_ok()) << "in a key";
}

TEST(PlistXmlText, TabLineFeedCarriageReturnAndAstralCharactersAreText) {
    auto r = parse(wrap("<string>a&#9;b&#10;c&#13;d\xf0\x9f\x98\x80\xef\xbf\xbd</string>"));
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ(*r->as_string(), "a\tb\nc\rd\xf0\x9f\x98\x80\xef\xbf\xbd");
    EXPECT_TRUE(is_xml_text("plain\ttext\r\n"));
    EXPECT_FALSE(is_xml_text(std::string("a\0b", 3)));
    EXPECT_FALSE(is_xml_text("\x7f\x01"));
    EXPECT_TRUE(is_xml_text("\x7f"));  // DEL is allowed by XML 1.0
}

TEST(PlistXmlText, CharacterReferencesToForbiddenCharactersAreRefusedAnywhere) {
    // In an attribute value pugixml decodes them and nothing else looks.
    auto s = error_of(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0&#1;\"><true/></plist>");
    EXPECT_NE(s.message().find("XML 1.0 forbids"), std::string::npos) << s.message();
    EXPECT_FALSE(parse("<plist version=\"&#x1b;\"><true/></plist>").is_ok());
    EXPECT_FALSE(parse("<plist version=\"&#xFFFE;\"><true/></plist>").is_ok());
    EXPECT_FALSE(parse(wrap("<string>&#x;</string>")).is_ok()) << "no digits";
    EXPECT_TRUE(parse("<plist version=\"1&#46;0\"><true/></plist>").is_ok());
}

// ---- counted work (review finding 16): no timing, the parser counts ---------

// `dicts` dicts of `keys` keys each, in one array; every key is `key_of(i)`.
std::string many_dicts(size_t dicts, size_t keys,
                       const std::function<std::string(size_t)>& key_of) {
    std::string one = "<dict>";
    for (size_t i = 0; i < keys; ++i) one += "<key>" + key_of(i) + "</key><true/>";
    one += "</dict>";
    std::string body = "<array>";
    body.reserve(one.size() * dicts + 16);
    for (size_t d = 0; d < dicts; ++d) body += one;
    return wrap(body + "</array>");
}

uint64_t comparisons_to_parse(const std::string& xml, bool expect_ok = true) {
    uint64_t before = key_comparisons();
    auto r = parse(xml);
    EXPECT_EQ(r.is_ok(), expect_ok) << r.status().to_string();
    return key_comparisons() - before;
}

// Quadratic key handling (a dict scanned on every insert, issue #11) makes the
// work per key grow with the keys per dict: 4x the keys per dict, 4x the work
// per key. Sorting grows it by log(4n)/log(n); the test allows less than 2x.
TEST(PlistWork, KeyComparisonsPerKeyBarelyGrowWithKeysPerDict) {
    auto key_of = [](size_t i) {
        std::string k = std::to_string(i);
        k.insert(k.begin(), 'k');
        return k;
    };
    const size_t n = 2'500;
    uint64_t narrow = comparisons_to_parse(many_dicts(16, n, key_of));
    uint64_t wide = comparisons_to_parse(many_dicts(16, 4 * n, key_of));
    ASSERT_GT(narrow, 0u) << "the counter counts";
    double per_key_narrow = double(narrow) / (16 * n), per_key_wide = double(wide) / (16 * 4 * n);
    EXPECT_LT(per_key_wide, 2 * per_key_narrow) << narrow << " vs " << wide;
    // And an absolute bound: at most 3 log2(n) + 2 comparisons per key (std::sort
    // makes about 2.3 n log2(n)).
    EXPECT_LT(per_key_wide, 3 * 13.3 + 2) << wide;
}

// The hash-flooding body of review finding 10: ~16 MiB of 10,000-key dicts
// whose keys all share one std::hash value, so a std::unordered_set would
// compare every key with every earlier one (10^8 string comparisons per
// dict). The sorting check does the same bounded work as for any keys.
TEST(PlistWork, HashCollidingKeysCostTheSameBoundedWork) {
    auto keys = test::hash_colliding_keys(10'000);
#ifdef __GLIBCXX__
    std::unordered_set<size_t> hashes;
    for (const auto& k : keys) hashes.insert(std::hash<std::string>{}(k));
    EXPECT_EQ(hashes.size(), 1u) << "the keys collide in libstdc++'s std::hash";
#endif
    auto key_of = [&](size_t i) { return keys[i]; };
    std::string body = many_dicts(6, 10'000, key_of);
    ASSERT_LE(body.size(), size_t{16} << 20);
    ASSERT_GE(body.size(), size_t{13} << 20);
    uint64_t work = comparisons_to_parse(body);
    EXPECT_LT(work, uint64_t{6} * 10'000 * (3 * 14 + 2)) << work;
    uint64_t plain = comparisons_to_parse(many_dicts(
        6, 10'000, [](size_t i) { return std::string(200, 'p') + std::to_string(100'000 + i); }));
    EXPECT_LT(double(work), 1.5 * double(plain)) << work << " vs " << plain;
    // A duplicate in the last dict: refused, with the same bound.
    std::string dup = body;
    dup.insert(dup.rfind("</dict>"), "<key>" + keys[17] + "</key><false/>");
    uint64_t before = key_comparisons();
    auto s = error_of(dup, ParseLimits{.max_dict_keys = 10'001});
    EXPECT_NE(s.message().find("duplicate key"), std::string::npos) << s.message().substr(0, 200);
    EXPECT_LT(key_comparisons() - before, uint64_t{6} * 10'001 * (3 * 14 + 2));
}

TEST(PlistWork, FirstDuplicateIsTheFirstRepeatInDocumentOrder) {
    std::vector<std::string_view> keys{"b", "a", "c", "a", "b", "d"};
    EXPECT_EQ(first_duplicate(keys), 3u);  // "a" again; the "b" at 4 comes later
    EXPECT_EQ(first_duplicate({"x", "y", "z"}), 3u);
    EXPECT_EQ(first_duplicate({}), 0u);
    auto s =
        error_of(wrap("<dict><key>b</key><true/><key>a</key><true/><key>a</key><true/>"
                      "<key>b</key><true/></dict>"));
    EXPECT_NE(s.message().find("duplicate key 'a'"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace courier::plist
