// The admin API's push certificates (PUT/GET /v1/pushcert) end to end.
#include "tests/admin/admin_fixture.h"

namespace courier {
namespace {

// ---- push certificates ----------------------------------------------------

TEST_F(AdminApi, NanoMdmQuickstartUploadsPemWithPkcs1KeyThroughCurlStdin) {
    start({.import_push_cert = false});
    auto pc = test::make_push_cert(server_->topic());
    std::string file = write("push.pem+key", pc.cert_pem + pkcs1_pem(pc.key_pem));
    int code = 0;
    // cat push.pem push.key | curl -T - -u nanomdm:KEY https://…/v1/pushcert
    std::string body = curl(
        file, "-u 'nanomdm:" + server_->app().api_key() + "' '" + url("/v1/pushcert") + "'", &code);
    ASSERT_EQ(code, 200) << body;
    auto o = parse_object(body);
    EXPECT_EQ(str(o, "topic"), server_->topic());
    EXPECT_TRUE(std::regex_match(str(o, "thumbprint_sha1"), std::regex("[0-9a-f]{40}"))) << body;
    EXPECT_FALSE(str(o, "not_before").empty());
    EXPECT_FALSE(str(o, "not_after").empty());
    EXPECT_TRUE(o.contains("days_left"));
    EXPECT_EQ(o.at("renewed"), json::value(false));
    // And the enrollment profile now carries that topic.
    auto prof = server_->fetch_profile();
    ASSERT_TRUE(prof.is_ok()) << prof.status().to_string();
}

TEST_F(AdminApi, RenewalWithTheSameTopicSwapsInAndDifferentTopicIs409) {
    auto renewed = test::make_push_cert(server_->topic(), -1h, std::chrono::days(400));
    auto r = api("PUT", "/v1/pushcert", renewed.cert_pem + renewed.key_pem);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(parse_object(r.body).at("renewed"), json::value(true));
    auto list = parse_object(api("GET", "/v1/pushcert").body);
    ASSERT_EQ(list.at("certs").as_array().size(), 1u);
    EXPECT_GE(list.at("certs").as_array()[0].as_object().at("days_left").as_int64(), 398);

    auto other = test::make_push_cert("com.apple.mgmt.External.other");
    r = api("PUT", "/v1/pushcert", other.cert_pem + other.key_pem);
    EXPECT_EQ(r.status, 409);
    EXPECT_NE(r.body.find("topic"), std::string::npos) << r.body;
    EXPECT_EQ(parse_object(api("GET", "/v1/pushcert").body).at("certs").as_array().size(), 1u);
    r = api("PUT", "/v1/pushcert?add_topic=1", other.cert_pem + other.key_pem);
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(parse_object(api("GET", "/v1/pushcert").body).at("certs").as_array().size(), 2u);

    auto one = api("GET", "/v1/pushcert?topic=" + server_->topic());
    ASSERT_EQ(one.status, 200);
    EXPECT_EQ(str(parse_object(one.body), "topic"), server_->topic());
    EXPECT_EQ(api("GET", "/v1/pushcert?topic=com.apple.mgmt.none").status, 404);
    auto hist = api("GET", "/v1/pushcert/history");
    EXPECT_EQ(hist.status, 200);
}

TEST_F(AdminApi, BadPushCertificatesAre400AndChangeNothing) {
    // Thumbprints and upload times: days_left may tick over during the test.
    auto certs_now = [&] {
        std::string out;
        auto list = parse_object(api("GET", "/v1/pushcert").body);
        for (const auto& c : list.at("certs").as_array())
            out += str(c.as_object(), "thumbprint_sha1") + str(c.as_object(), "uploaded_at") + ";";
        return out;
    };
    std::string before = certs_now();
    auto expired = test::make_push_cert(server_->topic(), -std::chrono::days(400), -24h);
    auto no_uid = test::make_push_cert("");
    auto a = test::make_push_cert(server_->topic());
    auto b = test::make_push_cert(server_->topic());
    struct Case {
        std::string name, body, want;
    };
    std::vector<Case> cases{
        {"expired", expired.cert_pem + expired.key_pem, "expired"},
        {"no topic", no_uid.cert_pem + no_uid.key_pem, "UID"},
        {"key mismatch", a.cert_pem + b.key_pem, "match"},
        {"no key", a.cert_pem, "key"},
        {"garbage", "hello", ""},
        {"empty", "", ""},
    };
    for (const auto& c : cases) {
        auto r = api("PUT", "/v1/pushcert", c.body);
        EXPECT_EQ(r.status, 400) << c.name << ": " << r.body;
        std::string err = str(parse_object(r.body), "error");
        EXPECT_FALSE(err.empty()) << c.name;
        EXPECT_NE(err.find(c.want), std::string::npos) << c.name << ": " << err;
    }
    EXPECT_EQ(certs_now(), before);
}

TEST_F(AdminApi, Pkcs12UploadWithPasswordInQueryOrHeader) {
    auto id = test::make_push_identity(server_->topic(), -1h, std::chrono::days(300));
    auto p12 = certs::make_pkcs12(id, "s3cret", "push");
    ASSERT_TRUE(p12.is_ok());
    auto r =
        api("PUT", "/v1/pushcert?password=s3cret", *p12, {"Content-Type: application/x-pkcs12"});
    EXPECT_EQ(r.status, 200) << r.body;
    r = api("PUT", "/v1/pushcert", *p12, {"X-Pkcs12-Password: s3cret"});
    EXPECT_EQ(r.status, 200) << r.body;
    r = api("PUT", "/v1/pushcert?password=wrong", *p12);
    EXPECT_EQ(r.status, 400) << r.body;
}

}  // namespace
}  // namespace courier
