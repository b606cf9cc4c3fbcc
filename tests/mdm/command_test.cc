// Commands administrators submit: the raw-plist path (structure only, bytes
// kept) and the JSON path (validated against Apple's schema table).
#include "mdm/command.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <sstream>

#include "common/encoding.h"
#include "mdm/json_plist.h"
#include "tests/support/colliding_keys.h"

namespace courier::mdm {
namespace {

namespace json = boost::json;

json::object obj(const std::string& text) {
    return json::parse(text).as_object();
}

plist::Dict envelope_of(const Command& c) {
    auto d = plist::parse_dict(c.plist);
    EXPECT_TRUE(d.is_ok()) << c.plist;
    return d.is_ok() ? *d : plist::Dict();
}

const std::string kCmdr =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
    "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
    "<plist version=\"1.0\">\n<dict>\n\t<key>Command</key>\n\t<dict>\n"
    "\t\t<key>RequestType</key>\n\t\t<string>ProfileList</string>\n\t</dict>\n"
    "\t<key>CommandUUID</key>\n\t<string>abc-123</string>\n</dict>\n</plist>\n";

TEST(RawCommand, CmdrOutputWithDoctypeIsKeptByteForByte) {
    auto c = command_from_raw_plist(kCmdr);
    ASSERT_TRUE(c.is_ok()) << c.status().to_string();
    EXPECT_EQ(c->uuid, "abc-123");
    EXPECT_EQ(c->request_type, "ProfileList");
    EXPECT_EQ(c->plist, kCmdr);
}

TEST(RawCommand, MissingUuidIsGeneratedIntoTheEnvelope) {
    auto c = command_from_raw_plist(
        "<plist><dict><key>Command</key><dict><key>RequestType</key><string>Custom.Thing</string>"
        "<key>X</key><integer>-5</integer></dict></dict></plist>");
    ASSERT_TRUE(c.is_ok()) << c.status().to_string();
    EXPECT_TRUE(std::regex_match(c->uuid, std::regex("[0-9A-F-]{36}"))) << c->uuid;
    auto env = envelope_of(*c);
    EXPECT_EQ(*env.find_string("CommandUUID"), c->uuid);
    EXPECT_EQ(*env.find_dict("Command")->find_integer("X"), -5);
    EXPECT_EQ(c->request_type, "Custom.Thing") << "types unknown to the schema pass";
}

TEST(RawCommand, StructuralErrorsNameWhatIsWrong) {
    struct Case {
        std::string body, want;
    };
    for (const auto& c : std::vector<Case>{
             {"", "command plist"},
             {"<plist><array/></plist>", "root"},
             {"<plist><dict/></plist>", "Command: required"},
             {"<plist><dict><key>Command</key><string>x</string></dict></plist>", "Command"},
             {"<plist><dict><key>Command</key><dict/></dict></plist>", "RequestType"},
             {"<plist><dict><key>Command</key><dict><key>RequestType</key><integer>1</integer>"
              "</dict></dict></plist>",
              "RequestType"},
             {"<plist><dict><key>Command</key><dict><key>RequestType</key><string>A</string>"
              "</dict><key>CommandUUID</key><integer>1</integer></dict></plist>",
              "CommandUUID"},
             {"<!DOCTYPE plist [<!ENTITY x \"y\">]><plist><dict/></plist>", "command plist"},
         }) {
        auto r = command_from_raw_plist(c.body);
        ASSERT_FALSE(r.is_ok()) << c.body;
        EXPECT_EQ(r.status().code(), Code::kInvalid);
        EXPECT_NE(r.status().message().find(c.want), std::string::npos)
            << c.body << " → " << r.status().message();
    }
}

TEST(JsonCommand, DeviceLockBuildsTheEnvelope) {
    auto c = command_from_json(
        obj(R"({"RequestType":"DeviceLock","Message":"Lost","PIN":"123456"})"), false, "U-1");
    ASSERT_TRUE(c.is_ok()) << c.status().to_string();
    EXPECT_EQ(c->uuid, "U-1");
    EXPECT_EQ(c->request_type, "DeviceLock");
    auto env = envelope_of(*c);
    EXPECT_EQ(*env.find_string("CommandUUID"), "U-1");
    const plist::Dict* cmd = env.find_dict("Command");
    ASSERT_NE(cmd, nullptr);
    EXPECT_EQ(*cmd->find_string("RequestType"), "DeviceLock");
    EXPECT_EQ(*cmd->find_string("PIN"), "123456");
    EXPECT_EQ(*cmd->find_string("Message"), "Lost");
}

TEST(JsonCommand, RefusalsNameTheKey) {
    struct Case {
        std::string json, want;
    };
    for (const auto& c : std::vector<Case>{
             {R"({})", "RequestType: required"},
             {R"({"RequestType":5})", "RequestType: must be"},
             {R"({"RequestType":"NoSuch"})", "unknown request type 'NoSuch'"},
             {R"({"RequestType":"DeviceLock","PIN":"12345"})",
              "DeviceLock.PIN: must be six digits"},
             {R"({"RequestType":"DeviceLock","PIN":"12345a"})", "DeviceLock.PIN"},
             {R"({"RequestType":"DeviceLock","PIN":123456})", "DeviceLock.PIN: must be a string"},
             {R"({"RequestType":"DeviceLock","Pin":"123456"})", "DeviceLock.Pin: unknown key"},
             {R"({"RequestType":"InstallProfile"})", "InstallProfile.Payload: required"},
             {R"({"RequestType":"InstallProfile","Payload":"!!"})",
              "InstallProfile.Payload: not valid base64"},
             {R"({"RequestType":"InstallProfile","Payload":"aGVsbG8="})",
              "InstallProfile.Payload: not a configuration profile"},
             {R"({"RequestType":"DeviceInformation"})", "DeviceInformation.Queries: required"},
             {R"({"RequestType":"DeviceInformation","Queries":"UDID"})",
              "Queries: must be an array"},
             {R"({"RequestType":"DeviceInformation","Queries":[1]})",
              "Queries[0]: must be a string"},
             {R"({"RequestType":"DeviceLock","Message":null})", "null"},
             {R"({"RequestType":"DisableLostMode","X":1})", "this command takes no keys"},
             {R"({"RequestType":"Settings","Settings":[{"Item":7}]})",
              "Settings[0].Item: must be a string"},
         }) {
        auto r = command_from_json(obj(c.json));
        ASSERT_FALSE(r.is_ok()) << c.json;
        EXPECT_NE(r.status().message().find(c.want), std::string::npos)
            << c.json << " → " << r.status().message();
    }
}

TEST(JsonCommand, DataIsBase64AndProfilesArePlistOrCms) {
    std::string profile = "<?xml version=\"1.0\"?><plist><dict/></plist>";
    auto c = command_from_json(
        obj(R"({"RequestType":"InstallProfile","Payload":")" + base64_encode(profile) + "\"}"));
    ASSERT_TRUE(c.is_ok()) << c.status().to_string();
    auto env = envelope_of(*c);
    EXPECT_EQ(env.find_dict("Command")->find_data("Payload")->bytes, profile);
    std::string cms = std::string("\x30\x82\x05\x00", 4) + std::string(40, '\x01');
    EXPECT_TRUE(command_from_json(obj(R"({"RequestType":"InstallProfile","Payload":")" +
                                      base64_encode(cms) + "\"}"))
                    .is_ok());
}

TEST(JsonCommand, IntegersAndNestedDictionariesFollowTheSchema) {
    // Settings: an array of free-form dictionaries.
    auto c = command_from_json(obj(
        R"({"RequestType":"Settings","Settings":[{"Item":"DeviceName","DeviceName":"Kiosk 4"}]})"));
    ASSERT_TRUE(c.is_ok()) << c.status().to_string();
    auto env = envelope_of(*c);
    const plist::Array* s = env.find_dict("Command")->find_array("Settings");
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(*(*s)[0].as_dict()->find_string("DeviceName"), "Kiosk 4");

    const CommandSpec* spec = find_command_spec("EraseDevice");
    ASSERT_NE(spec, nullptr);
    EXPECT_FALSE(command_from_json(obj(R"({"RequestType":"EraseDevice","PIN":"123456",
                                          "PreserveDataPlan":"yes"})"))
                     .is_ok());
}

TEST(JsonCommand, UnknownTypesPassOnlyWhenAllowed) {
    auto c = command_from_json(obj(R"({"RequestType":"Vendor.Thing","N":2,"F":1.5,"B":true,
                                      "A":["x"],"D":{"k":"v"}})"),
                               true);
    ASSERT_TRUE(c.is_ok()) << c.status().to_string();
    auto env = envelope_of(*c);
    const plist::Dict* cmd = env.find_dict("Command");
    ASSERT_NE(cmd, nullptr);
    EXPECT_EQ(*cmd->find_integer("N"), 2);
    EXPECT_EQ(*cmd->find("F")->as_real(), 1.5);
    EXPECT_TRUE(*cmd->find_bool("B"));
}

// command_from_json takes any JSON object, not only what parse_admin_json
// let through: a key or string XML 1.0 forbids is refused, never written into
// an envelope that does not parse back (fuzz_command found both shapes).
TEST(JsonCommand, RefusesCharactersXmlForbidsWhoeverParsedTheJson) {
    const char* cases[] = {
        R"({"RequestType":"Vendor.Thing","Set\f\ting":[{"Item":"x","Dev\f":"a"}]})",
        R"({"RequestType":"Vendor.Thing","Pssa\uFFFFge":"x"})",
        R"({"RequestType":"Vendor.Thing","D":{"k":"\u0001"}})",
        R"({"RequestType":"Vendor.Thing","A":["ok","\uFFFE"]})",
        R"({"RequestType":"Vendor\u0007Thing"})",
        R"({"RequestType":"DeviceLock","Message":"Lost\u000b"})",
        R"({"RequestType":"Settings","Settings":[{"Item":"DeviceName","DeviceName":"a","K\f":"b"}]})",
    };
    for (const char* text : cases) {
        auto r = command_from_json(obj(text), true);
        ASSERT_FALSE(r.is_ok()) << text;
        EXPECT_EQ(r.status().code(), Code::kInvalid) << text;
        EXPECT_NE(r.status().message().find("XML 1.0 forbids"), std::string::npos)
            << r.status().to_string();
    }
    // Tab, newline and carriage return are XML text and pass.
    auto ok = command_from_json(obj(R"({"RequestType":"Vendor.Thing","M":"a\tb\nc\r"})"), true);
    ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
    EXPECT_TRUE(plist::parse_dict(ok->plist).is_ok());
}

// Every command in the facts table is in Courier's, and one built from its
// required keys with placeholder values validates.
TEST(CommandTable, CoversEveryCommandOfTheFactsTable) {
    // tests/fixtures holds a copy of ../shared/conformance/commands.json.
    std::ifstream in(std::filesystem::path(COURIER_FIXTURES_DIR) / "commands.json");
    ASSERT_TRUE(in) << "tests/fixtures/commands.json";
    std::stringstream ss;
    ss << in.rdbuf();
    auto root = json::parse(ss.str()).as_object();
    const auto& commands = root.at("commands").as_object();
    EXPECT_EQ(command_spec_count(), commands.size());
    for (const auto& [name, _] : commands) {
        const CommandSpec* spec = find_command_spec(std::string(name));
        ASSERT_NE(spec, nullptr) << name;
        json::object cmd{{"RequestType", name}};
        std::function<json::value(const KeySpec&)> sample = [&](const KeySpec& k) -> json::value {
            if (k.any_type) return "x";
            switch (k.type) {
                case plist::Type::kString:
                    return k.key == "PIN" ? "123456" : "x";
                case plist::Type::kInteger:
                    return 1;
                case plist::Type::kReal:
                    return 1.5;
                case plist::Type::kBoolean:
                    return true;
                case plist::Type::kData:
                    return json::value(base64_encode("<plist><dict/></plist>"));
                case plist::Type::kDate:
                    return "2026-01-07T04:04:46Z";
                case plist::Type::kArray:
                    return k.subkeys.empty() ? json::array{} : json::array{sample(k.subkeys[0])};
                case plist::Type::kDict: {
                    json::object o;
                    for (const auto& s : k.subkeys)
                        if (s.required) o[s.key] = sample(s);
                    return o;
                }
            }
            return nullptr;
        };
        for (const auto& k : spec->keys)
            if (k.required) cmd[k.key] = sample(k);
        auto r = command_from_json(cmd);
        EXPECT_TRUE(r.is_ok()) << name << ": " << r.status().to_string();
    }
}

TEST(JsonPlist, ResultsConvertForAdministrators) {
    plist::Dict d;
    d.set("S", plist::Value("text"));
    d.set("I", plist::Value(int64_t{-70000}));
    d.set("R", plist::Value(2.5));
    d.set("B", plist::Value(false));
    d.set("D", plist::Value(plist::Data{std::string("\x00\xff", 2)}));
    d.set("T", plist::Value(plist::Date{SysTime(std::chrono::seconds(1767758686))}));
    d.set("A", plist::Value(plist::Array{plist::Value("x"), plist::Value(1)}));
    EXPECT_EQ(
        json::serialize(plist_to_json(plist::Value(d))),
        R"({"S":"text","I":-70000,"R":2.5E0,"B":false,"D":"AP8=","T":"2026-01-07T04:04:46Z","A":["x",1]})");
}

// ---- input limits (docs/security.md "Input limits") -------------------------------------

std::string raw_with_uuid(const std::string& uuid) {
    std::string out = kCmdr;
    out.replace(out.find("abc-123"), 7, uuid);
    return out;
}

TEST(CommandUuid, OneToOneHundredTwentyEightSafeCharacters) {
    EXPECT_TRUE(is_valid_command_uuid("a"));
    EXPECT_TRUE(is_valid_command_uuid("0F8FAD5B-D9CB-469F-A165-70867728950E"));
    EXPECT_TRUE(is_valid_command_uuid("cmd_1.2:x-y"));
    EXPECT_TRUE(is_valid_command_uuid(std::string(128, 'x')));
    EXPECT_FALSE(is_valid_command_uuid(""));
    EXPECT_FALSE(is_valid_command_uuid(std::string(129, 'x')));
    for (const char* bad : {"a b", "a/b", "a%00", "a\nb", "a?b", "a#b", "caf\xc3\xa9"})
        EXPECT_FALSE(is_valid_command_uuid(bad)) << bad;
}

TEST(CommandUuid, RawPlistWithABadUuidIsRefused) {
    for (const std::string& bad :
         {std::string(1 << 20, 'u'), std::string("a&#1;b"), std::string("a/../b"),
          std::string("x y"), std::string(129, 'z')})
        EXPECT_FALSE(command_from_raw_plist(raw_with_uuid(bad)).is_ok()) << bad.substr(0, 40);
    auto r = command_from_raw_plist(raw_with_uuid(std::string(1 << 20, 'u')));
    ASSERT_FALSE(r.is_ok());
    EXPECT_NE(r.status().message().find("CommandUUID: must be 1 to 128 characters"),
              std::string::npos)
        << r.status().message();
    auto ok = command_from_raw_plist(raw_with_uuid(std::string(128, 'z')));
    EXPECT_TRUE(ok.is_ok()) << ok.status().to_string();
}

TEST(CommandUuid, JsonCommandWithABadGivenUuidIsRefused) {
    auto r =
        command_from_json(obj(R"({"RequestType":"ProfileList"})"), false, std::string("bad uuid"));
    ASSERT_FALSE(r.is_ok());
    EXPECT_NE(r.status().message().find("command_uuid"), std::string::npos);
    EXPECT_TRUE(command_from_json(obj(R"({"RequestType":"ProfileList"})"), false,
                                  std::string("good-uuid.1"))
                    .is_ok());
}

TEST(RawCommand, ForbiddenCharactersAreRefused) {
    std::string body = kCmdr;
    body.replace(body.find("ProfileList"), 11, "ProfileList&#1;");
    EXPECT_FALSE(command_from_raw_plist(body).is_ok());
}

// The body is stored and sent verbatim (it has a CommandUUID): one bad byte
// outside the values (review finding 3) would make the device refuse the
// command and, being retried, wedge the queue. The whole body is checked.
TEST(RawCommand, ForbiddenCharactersOutsideValuesAreRefused) {
    auto with = [](const std::string& from, const std::string& to) {
        std::string b = kCmdr;
        b.replace(b.find(from), from.size(), to);
        return b;
    };
    const std::string plist_tag = "<plist version=\"1.0\">";
    const std::string shapes[] = {
        with(plist_tag, plist_tag + "<!-- \x01 -->"),          // control byte in a comment
        with(plist_tag, plist_tag + "<!-- \xff\xfe -->"),      // invalid UTF-8 in a comment
        with(plist_tag, plist_tag + "<!-- \xef\xbf\xbe -->"),  // U+FFFE in a comment
        with(plist_tag, "<plist version=\"1.0&#1;\">"),        // reference in an attribute
        with(plist_tag, "<plist version=\"1.0\x1b\">"),        // raw ESC in an attribute
        with(plist_tag, "<plist version=\"1.0\xc0\xaf\">"),    // overlong UTF-8 in one
        with("PLIST 1.0//EN", "PLIST 1.0\x02//EN"),            // in the DOCTYPE
        with(plist_tag, "<?courier \x07?>" + plist_tag),       // in a processing instruction
        with("<dict>\n\t<key>Command", "<dict>\x0b\n\t<key>Command"),  // between elements
        with("encoding=\"UTF-8\"", "encoding=\"ISO-8859-1\""),         // not what is sent
        with("encoding=\"UTF-8\"", "encoding='UTF-16'"),
        // Review 2 #7: the encoding check is not skipped by a byte order mark
        // or by anything before the declaration (a declaration not at the
        // very start is not well-formed).
        "\xEF\xBB\xBF" + with("encoding=\"UTF-8\"", "encoding=\"UTF-16\""),
        "\xEF\xBB\xBF" + kCmdr,
        " \n" + with("encoding=\"UTF-8\"", "encoding=\"ISO-8859-1\""),
        "\n" + kCmdr,
        "<!-- c -->" + with("encoding=\"UTF-8\"", "encoding=\"ISO-8859-1\""),
    };
    for (const auto& bad : shapes) {
        auto r = command_from_raw_plist(bad);
        EXPECT_FALSE(r.is_ok()) << "accepted: " << bad.substr(0, 200);
    }
    auto r = command_from_raw_plist(shapes[0]);
    ASSERT_FALSE(r.is_ok());
    EXPECT_NE(r.status().message().find("XML 1.0 forbids"), std::string::npos)
        << r.status().message();
    auto bom = command_from_raw_plist("\xEF\xBB\xBF" + kCmdr);
    ASSERT_FALSE(bom.is_ok());
    EXPECT_NE(bom.status().message().find("byte order mark"), std::string::npos)
        << bom.status().message();
    auto late = command_from_raw_plist(" " + kCmdr);
    ASSERT_FALSE(late.is_ok());
    EXPECT_NE(late.status().message().find("XML declaration is at offset 1"), std::string::npos)
        << late.status().message();
    // What is allowed stays allowed: text comments, tab/LF/CR, any case of
    // utf-8, no declaration at all (leading whitespace included), a
    // declaration's text inside the root element (a comment there).
    const std::string no_decl = kCmdr.substr(kCmdr.find("?>") + 2);
    for (const auto& good :
         {with(plist_tag, plist_tag + "<!-- caf\xc3\xa9\t\r\n -->"),
          with("encoding=\"UTF-8\"", "encoding='utf-8'"), with(" encoding=\"UTF-8\"", ""), no_decl,
          "\n" + no_decl,
          with("<dict>", "<!-- <?xml version='1.0' encoding='UTF-16'?> --><dict>")}) {
        auto g = command_from_raw_plist(good);
        EXPECT_TRUE(g.is_ok()) << g.status().to_string() << ": " << good.substr(0, 120);
        if (g.is_ok()) {
            EXPECT_EQ(g->plist, good) << "kept verbatim";
        }
    }
}

Status json_error(const std::string& text) {
    auto r = parse_admin_json(text);
    EXPECT_FALSE(r.is_ok()) << "accepted: " << text.substr(0, 200);
    return r.is_ok() ? Status::ok() : r.status();
}

TEST(AdminJson, DuplicateKeysAreRefusedAtAnyDepth) {
    EXPECT_NE(json_error(R"({"a":1,"a":2})").message().find("duplicate key 'a'"),
              std::string::npos);
    EXPECT_NE(json_error(R"({"c":{"RequestType":"X","RequestType":"Y"}})")
                  .message()
                  .find("duplicate key 'RequestType'"),
              std::string::npos);
    // The same key in sibling objects is no duplicate.
    EXPECT_TRUE(parse_admin_json(R"([{"a":1},{"a":2}])").is_ok());
    EXPECT_TRUE(parse_admin_json(R"({"a":{"a":{"a":1}}})").is_ok());
}

TEST(AdminJson, ForbiddenCharactersInStringsAndKeysAreRefused) {
    for (const char* bad :
         {R"({"Message":"a\u0000b"})", R"({"Message":"a\u0001b"})", R"({"Message":"a\u001bb"})",
          R"({"Message":"a\uFFFEb"})", R"({"Message":"a\uffffb"})", R"({"Message":"a\ud800b"})",
          R"({"a\u0000":1})", R"(["ok","\u0002"])"})
        EXPECT_FALSE(parse_admin_json(bad).is_ok()) << bad;
    EXPECT_NE(json_error(R"({"Message":"a\u0000b"})").message().find("XML 1.0 forbids"),
              std::string::npos);
    auto ok = parse_admin_json(R"({"Message":"tab\tnewline\nreturn\r \u00e9 \ud83d\ude00"})");
    ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
}

TEST(AdminJson, KeysPerObjectAndDepthAreBounded) {
    auto object = [](size_t n) {
        std::string s = "{";
        for (size_t i = 0; i < n; ++i) s += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":1";
        return s + "}";
    };
    EXPECT_TRUE(parse_admin_json(object(10'000)).is_ok());
    EXPECT_NE(json_error(object(10'001)).message().find("more than 10000 keys"), std::string::npos);
    auto nested = [](int depth) { return std::string(depth, '[') + std::string(depth, ']'); };
    EXPECT_TRUE(parse_admin_json(nested(64)).is_ok());
    EXPECT_NE(json_error(nested(65)).message().find("nested deeper than 64"), std::string::npos);
    EXPECT_FALSE(parse_admin_json("{\"a\":").is_ok());
    EXPECT_FALSE(parse_admin_json("{} x").is_ok());
}

// Review finding 10 for JSON bodies: 10,000 keys sharing one std::hash value
// in an object cost the same bounded comparisons as any keys (sorting, no hash
// set), and a duplicate among them is still found. Counted, not timed.
TEST(AdminJson, HashCollidingKeysCostBoundedWork) {
    auto keys = test::hash_colliding_keys(10'000);
    auto object = [&](size_t n, const std::string& extra) {
        std::string s = "{";
        for (size_t i = 0; i < n; ++i) s += (i ? ",\"" : "\"") + keys[i] + "\":1";
        return s + extra + "}";
    };
    uint64_t before = plist::key_comparisons();
    std::string two = "[";
    two.append(object(10'000, "")).append(",").append(object(10'000, "")).append("]");
    auto ok = parse_admin_json(two);
    ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
    uint64_t work = plist::key_comparisons() - before;
    EXPECT_GT(work, 0u);
    EXPECT_LT(work, uint64_t{2} * 10'000 * (3 * 14 + 2)) << work;
    before = plist::key_comparisons();
    auto dup = json_error(object(9'999, std::string(",\"").append(keys[17]).append("\":2")));
    EXPECT_NE(dup.message().find("duplicate key"), std::string::npos) << dup.message();
    EXPECT_LT(plist::key_comparisons() - before, uint64_t{10'000} * (3 * 14 + 2));
}

TEST(AdminJson, KeysInErrorsAreEscapedAndCut) {
    auto s = json_error("{\"a\\nb\":1,\"a\\nb\":2}");
    EXPECT_NE(s.message().find("duplicate key 'a\\nb'"), std::string::npos) << s.message();
    auto f = json_error("{\"" + std::string(100, 'x') + "\\u0001\":1}");
    EXPECT_EQ(f.message().find(std::string(41, 'x')), std::string::npos) << "first 40 bytes only";
}

}  // namespace
}  // namespace courier::mdm
