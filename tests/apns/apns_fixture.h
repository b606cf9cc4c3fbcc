// What the APNs sender tests share (apns_test.cc, apns_connections_test.cc):
// a FakeApns over real TLS + HTTP/2 on 127.0.0.1 and the fixture that runs
// every test once per sender.
#pragma once

#include <curl/curl.h>
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <optional>
#include <set>

#include "apns/fake/fake_apns.h"
#include "apns/pusher.h"
#include "certs/authority.h"
#include "common/encoding.h"
#include "tests/support/test_certs.h"
#include "tests/support/tunnel_proxy.h"

namespace courier::apns {

using namespace std::chrono_literals;

constexpr const char* kTopic = "com.apple.mgmt.External.1b5e2c4a-8f0d-4e3a-9c7b-2d6f1a0e5b3c";
constexpr const char* kToken = "3b0a1c9e5f7d2b4a6c8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c";
constexpr auto kWait = 15s;

class ApnsTest : public ::testing::TestWithParam<std::string> {
  protected:
    void SetUp() override {
        ca_ = std::make_unique<certs::CertificateAuthority>(test::make_test_ca("APNs test CA"));
        server_ = issue_server_identity();
        ca_file_ = test::write_temp_file(certs::cert_to_pem(ca_->cert()), "ca.pem").string();

        // No client CA: the fake takes any client certificate and records its
        // thumbprint and UID (make_push_cert's certificates are self-signed).
        FakeApnsOptions fo;
        fo.cert_pem = server_.cert_pem;
        fo.key_pem = server_.key_pem;
        auto fake = FakeApns::start(fo);
        ASSERT_TRUE(fake) << fake.status().message();
        fake_ = std::move(*fake);

        HttpPusherOptions po;
        po.base_url = fake_->base_url();
        po.ca_file = ca_file_;
        po.timeout = 5s;
        pusher_ = make_sender(po);
        credentials_ = credentials_for(kTopic);
    }

    std::unique_ptr<Pusher> make_sender(const HttpPusherOptions& po) const {
        return GetParam() == "curl" ? make_http_pusher(po) : make_h2_pusher(po);
    }

    test::PemPair issue_server_identity() const {
        certs::IssueOptions server;
        server.common_name = "localhost";
        server.ip_addresses = {"127.0.0.1"};
        server.server_auth = true;
        auto id = ca_->issue(server);
        EXPECT_TRUE(id) << id.status().message();
        if (!id) return {};
        return {certs::cert_to_pem(id->cert.get()), certs::key_to_pem(id->key.get())};
    }

    static std::shared_ptr<const Credentials> credentials_for(const std::string& topic) {
        auto pem = test::make_push_cert(topic);
        auto cert = certs::cert_from_pem(pem.cert_pem);
        EXPECT_TRUE(cert) << cert.status().message();
        if (!cert) return nullptr;
        return std::make_shared<Credentials>(
            Credentials{topic, pem.cert_pem, pem.key_pem, certs::cert_sha1_hex(cert->get())});
    }

    PushRequest request(const std::string& token = kToken) const {
        PushRequest r;
        r.token_hex = token;
        r.push_magic = "8C9F1A2B-3D4E-4F50-9A1B-2C3D4E5F6A7B";
        r.topic = kTopic;
        r.expiration = from_unix(1900000000);
        r.credentials = credentials_;
        return r;
    }

    static PushResult push_and_wait(Pusher& pusher, PushRequest r) {
        auto promise = std::make_shared<std::promise<PushResult>>();
        auto result = promise->get_future();
        pusher.push(std::move(r),
                    [promise](PushResult res) { promise->set_value(std::move(res)); });
        if (result.wait_for(kWait) != std::future_status::ready) {
            ADD_FAILURE() << "push did not complete";
            return {};
        }
        return result.get();
    }
    PushResult push_and_wait(PushRequest r) { return push_and_wait(*pusher_, std::move(r)); }

    std::unique_ptr<certs::CertificateAuthority> ca_;
    test::PemPair server_;
    std::string ca_file_;
    std::unique_ptr<FakeApns> fake_;
    std::unique_ptr<Pusher> pusher_;
    std::shared_ptr<const Credentials> credentials_;
};

}  // namespace courier::apns
