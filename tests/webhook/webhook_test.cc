// Webhooks end to end (SPEC "Webhooks"): a Courier in-process (and the real
// binary for kill -9) posting to a loopback receiver. Shapes are checked
// against NanoMDM's own test data (tests/fixtures/webhook/), raw payloads
// byte for byte; signing, retries with backoff on 500 and on a hanging
// receiver, the deliveries API, topic filters, per-enrollment order and the
// expiry events on an injectable clock.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <boost/json.hpp>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "common/encoding.h"
#include "db/command_finished_event.h"
#include "db/store.h"
#include "server/webhook/webhook_service.h"
#include "tests/support/child_server.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_certs.h"
#include "tests/support/test_server.h"
#include "tests/support/webhook_receiver.h"

namespace courier {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using test::TestServer;
using test::WebhookReceiver;
using Reqs = std::vector<WebhookReceiver::Request>;

const char kFixtureUdid[] = "66ADE930-5FDF-5EC4-8429-15640684C489";

std::string fixture(const std::string& rel) {
    std::ifstream in(std::string(COURIER_FIXTURES_DIR) + "/" + rel, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

json::object parse(const std::string& body) {
    auto v = json::parse(body);
    return v.as_object();
}

std::string topic_of(const WebhookReceiver::Request& r) {
    return std::string(parse(r.body).at("topic").as_string());
}

// Requests answered 2xx with this topic.
Reqs delivered(const Reqs& all, const std::string& topic = "") {
    Reqs out;
    for (const auto& r : all)
        if (r.answered >= 200 && r.answered < 300 && (topic.empty() || topic_of(r) == topic))
            out.push_back(r);
    return out;
}

std::string hmac_b64(const std::string& key, const std::string& body) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &len);
    return base64_encode(std::string_view(reinterpret_cast<const char*>(mac), len));
}

class Webhooks : public ::testing::Test {
  protected:
    void SetUp() override {
        receiver_ = WebhookReceiver::start();
        ASSERT_TRUE(receiver_);
    }
    void start(const Clock* clock = nullptr, int64_t retry_window_s = 24 * 3600) {
        test::TestServerOptions o;
        o.clock = clock;
        o.configure = [this, retry_window_s](server::Config& c) {
            c.webhook_url = receiver_->url();
            c.webhook_hmac_key = "s3cret";
            c.webhook_topics = {"mdm.", "courier."};
            c.webhook_backoff_ms = 20;
            c.webhook_timeout_ms = 500;
            c.webhook_retry_window_s = retry_window_s;
        };
        std::string err;
        server_ = TestServer::start(o, &err);
        ASSERT_TRUE(server_) << err;
    }
    // A device for the NanoMDM fixture's UDID, with an identity from /enroll.
    std::unique_ptr<sim::SimDevice> fixture_device() {
        auto enrolled = server_->fetch_profile();
        EXPECT_TRUE(enrolled.is_ok()) << enrolled.status().to_string();
        if (!enrolled.is_ok()) return nullptr;
        return std::make_unique<sim::SimDevice>(server_->device_config(
            kFixtureUdid, enrolled->identity, sim::AuthMode::kTlsClientCert));
    }
    bool await_delivered(size_t n, const std::string& topic = "",
                         std::chrono::milliseconds deadline = 30s) {
        return receiver_->wait_for([&](const Reqs& r) { return delivered(r, topic).size() >= n; },
                                   deadline);
    }

    std::unique_ptr<WebhookReceiver> receiver_;
    ManualClock clock_{SystemClock::instance().now()};  // outlives server_
    std::unique_ptr<TestServer> server_;
};

// The check-in and report events equal NanoMDM's own test data (apart from
// the event id and the time), raw payloads byte for byte; signed; the event id
// header matches the body.
TEST_F(Webhooks, EventsHaveNanoMdmsShapeAndAreSigned) {
    start();
    auto dev = fixture_device();
    ASSERT_TRUE(dev);
    const std::string auth_plist = fixture("nanomdm/mdm/testdata/Authenticate.2.plist");
    ASSERT_EQ(dev->put("/checkin", auth_plist, "application/x-apple-aspen-mdm-checkin").status,
              200);
    const std::string report = fixture("nanomdm/mdm/testdata/DeviceInformation.1.plist");
    ASSERT_EQ(dev->put("/mdm", report, "application/x-apple-aspen-mdm").status, 200);
    ASSERT_TRUE(await_delivered(1, "mdm.Connect"));
    auto all = receiver_->requests();

    for (const auto& [topic, file] :
         {std::pair{"mdm.Authenticate", "webhook/Authenticate.2.json"},
          std::pair{"mdm.Connect", "webhook/DeviceInformation.1.json"}}) {
        auto got = delivered(all, topic);
        ASSERT_EQ(got.size(), 1u) << topic;
        const auto& req = got[0];
        auto body = parse(req.body);
        // NanoMDM's fixture with this event's id and time: byte for byte.
        auto want = parse(fixture(file));
        want["event_id"] = body.at("event_id");
        want["created_at"] = body.at("created_at");
        std::string expected = json::serialize(want);
        EXPECT_EQ(req.body, expected) << topic;
        EXPECT_EQ(req.method, "POST");
        EXPECT_EQ(req.headers.at("content-type"), "application/json; charset=utf-8");
        EXPECT_EQ(req.headers.at("x-courier-event-id"),
                  std::string(body.at("event_id").as_string()));
        EXPECT_EQ(req.headers.at("x-hmac-signature"), hmac_b64("s3cret", req.body));
        EXPECT_NE(req.headers.at("x-hmac-signature"), hmac_b64("other", req.body));
        EXPECT_TRUE(parse_rfc3339(std::string(body.at("created_at").as_string())).has_value());
    }
    auto auth = parse(delivered(all, "mdm.Authenticate")[0].body);
    EXPECT_EQ(base64_decode(auth.at("checkin_event").at("raw_payload").as_string()), auth_plist);
    auto ack = parse(delivered(all, "mdm.Connect")[0].body);
    EXPECT_EQ(base64_decode(ack.at("acknowledge_event").at("raw_payload").as_string()), report);
    EXPECT_FALSE(auth.at("checkin_event").as_object().contains("url_params"));
    EXPECT_FALSE(auth.at("checkin_event").as_object().contains("enrollment_id"));
}

TEST_F(Webhooks, UrlParamsTokenUpdateTallyAndUniqueEventIds) {
    start();
    auto dev = fixture_device();
    ASSERT_TRUE(dev);
    ASSERT_EQ(
        dev->put("/checkin?group=lab&x=1", fixture("nanomdm/mdm/testdata/Authenticate.2.plist"),
                 "application/x-apple-aspen-mdm-checkin")
            .status,
        200);
    ASSERT_EQ(dev->token_update().status, 200);
    ASSERT_EQ(dev->token_update().status, 200);
    ASSERT_EQ(dev->authenticate().status, 200);
    ASSERT_EQ(dev->token_update().status, 200);
    ASSERT_TRUE(await_delivered(3, "mdm.TokenUpdate"));
    auto all = receiver_->requests();
    auto auth = parse(delivered(all, "mdm.Authenticate")[0].body);
    EXPECT_EQ(json::serialize(auth.at("checkin_event").at("url_params")),
              R"({"group":"lab","x":"1"})");
    std::vector<int64_t> tallies;
    for (const auto& r : delivered(all, "mdm.TokenUpdate"))
        tallies.push_back(parse(r.body).at("checkin_event").at("token_update_tally").as_int64());
    EXPECT_EQ(tallies, (std::vector<int64_t>{1, 2, 1}));
    std::set<std::string> ids;
    for (const auto& r : delivered(all)) ids.insert(r.headers.at("x-courier-event-id"));
    EXPECT_EQ(ids.size(), delivered(all).size());
}

// An Idle that hands out nothing writes nothing: its mdm.Connect event is
// sent from memory (best effort), shaped like the others.
TEST_F(Webhooks, AnIdleWithNothingQueuedIsSentFromMemory) {
    start();
    std::string err;
    auto dev = server_->enrolled_device("IDLE-1", sim::AuthMode::kTlsClientCert, &err);
    ASSERT_TRUE(dev) << err;
    std::optional<sim::ReceivedCommand> next;
    ASSERT_EQ(dev->idle(&next).status, 200);
    EXPECT_FALSE(next);
    ASSERT_TRUE(await_delivered(1, "mdm.Connect"));
    auto ack = parse(delivered(receiver_->requests(), "mdm.Connect")[0].body)
                   .at("acknowledge_event")
                   .as_object();
    EXPECT_EQ(ack.at("status").as_string(), "Idle");
    EXPECT_FALSE(ack.contains("command_uuid"));
    EXPECT_EQ(ack.at("udid").as_string(), "IDLE-1");
    // Not in the outbox: only the durable Authenticate and TokenUpdate are.
    auto outbox = server_->app().store().list_deliveries("default", std::nullopt, {});
    ASSERT_TRUE(outbox.is_ok());
    for (const auto& d : outbox->items) EXPECT_NE(d.topic, "mdm.Connect");
}

TEST_F(Webhooks, A500IsRetriedWithBackoffUntilDelivered) {
    receiver_->set_policy([](const auto&, size_t i) { return i < 3 ? 500 : 200; });
    start();
    auto dev = fixture_device();
    ASSERT_TRUE(dev);
    ASSERT_EQ(dev->authenticate().status, 200);
    ASSERT_TRUE(await_delivered(1, "mdm.Authenticate"));
    auto all = receiver_->requests();
    ASSERT_GE(all.size(), 4u);
    for (size_t i = 0; i < 4; ++i) EXPECT_EQ(topic_of(all[i]), "mdm.Authenticate");
    EXPECT_EQ(all[0].headers.at("x-courier-event-id"), all[3].headers.at("x-courier-event-id"));
    // The receiver answered; Courier records it right after.
    json::array items;
    for (int i = 0; i < 500 && items.empty(); ++i) {
        auto d = server_->api("GET", "/v1/webhooks/default/deliveries?status=delivered");
        ASSERT_EQ(d.status, 200) << d.body;
        items = parse(d.body).at("items").as_array();
        if (items.empty()) std::this_thread::sleep_for(10ms);  // polling the API
    }
    ASSERT_FALSE(items.empty());
    EXPECT_EQ(items.back().at("attempts").as_int64(), 4);
    EXPECT_EQ(items.back().at("last_status").as_int64(), 200);
}

// A receiver that never answers holds deliveries only: check-ins are served
// meanwhile, and everything arrives once it answers again.
TEST_F(Webhooks, AHangingReceiverNeverHoldsCheckIns) {
    receiver_->set_policy([](const auto&, size_t) { return 0; });
    start();
    std::vector<std::unique_ptr<sim::SimDevice>> devs;
    for (int i = 0; i < 6; ++i) {
        std::string err;
        auto d = server_->enrolled_device(fmt::format("HANG-{}", i), sim::AuthMode::kTlsClientCert,
                                          &err);
        ASSERT_TRUE(d) << err;  // Authenticate + TokenUpdate answered while nothing is delivered
        devs.push_back(std::move(d));
    }
    for (auto& d : devs) {
        std::optional<sim::ReceivedCommand> next;
        EXPECT_EQ(d->idle(&next).status, 200);
    }
    EXPECT_TRUE(delivered(receiver_->requests()).empty());
    ASSERT_TRUE(receiver_->wait_for([](const Reqs& r) { return !r.empty(); }));
    receiver_->release();
    ASSERT_TRUE(await_delivered(6, "mdm.TokenUpdate", 60s));
    EXPECT_EQ(delivered(receiver_->requests(), "mdm.Authenticate").size(), 6u);
}

TEST_F(Webhooks, FailedDeliveriesAreListedAndRetriedByTheApi) {
    receiver_->set_policy([](const auto&, size_t) { return 503; });
    start(nullptr, /*retry_window_s=*/0);  // the first failure is final
    auto dev = fixture_device();
    ASSERT_TRUE(dev);
    ASSERT_EQ(dev->authenticate().status, 200);
    std::string event_id;
    for (int i = 0; i < 300 && event_id.empty(); ++i) {
        auto r = server_->api("GET", "/v1/webhooks/default/deliveries?status=failed&limit=10");
        ASSERT_EQ(r.status, 200) << r.body;
        auto items = parse(r.body).at("items").as_array();
        if (!items.empty()) {
            EXPECT_EQ(items[0].at("topic").as_string(), "mdm.Authenticate");
            EXPECT_EQ(items[0].at("last_status").as_int64(), 503);
            EXPECT_EQ(items[0].at("attempts").as_int64(), 1);
            event_id = std::string(items[0].at("event_id").as_string());
        } else {
            std::this_thread::sleep_for(20ms);  // polling the API: no event to await
        }
    }
    ASSERT_FALSE(event_id.empty());
    receiver_->set_policy([](const auto&, size_t) { return 204; });
    EXPECT_EQ(server_->api("POST", "/v1/webhooks/default/deliveries/" + event_id + "/retry").status,
              202);
    ASSERT_TRUE(await_delivered(1, "mdm.Authenticate"));
    EXPECT_EQ(delivered(receiver_->requests())[0].headers.at("x-courier-event-id"), event_id);
    // Not failed any more: a second retry is a conflict; unknown ids are 404.
    EXPECT_EQ(server_->api("POST", "/v1/webhooks/default/deliveries/" + event_id + "/retry").status,
              409);
    EXPECT_EQ(server_->api("POST", "/v1/webhooks/default/deliveries/nope/retry").status, 404);
    EXPECT_EQ(server_->api("GET", "/v1/webhooks/nope/deliveries").status, 404);
    EXPECT_EQ(server_->api("GET", "/v1/webhooks/default/deliveries?status=bogus").status, 400);
}

TEST_F(Webhooks, DestinationsTakeOnlyTheirTopicsAndTheApiValidates) {
    auto certs_rx = WebhookReceiver::start();
    start();
    auto r = server_->api("POST", "/v1/webhooks",
                          R"({"id":"certs","url":")" + certs_rx->url() +
                              R"(","topics":["courier.command."],"hmac_key":"k2"})");
    ASSERT_EQ(r.status, 201) << r.body;
    auto created = parse(r.body);
    EXPECT_EQ(created.at("hmac_key_set").as_bool(), true);
    EXPECT_FALSE(created.contains("hmac_key"));
    for (const char* bad :
         {R"({"url":"ftp://x"})", R"({"url":"http://127.0.0.1:1/","topics":[]})",
          R"({"url":"http://127.0.0.1:1/","topics":["a b"]})", R"({"url":1})",
          R"({"url":"http://127.0.0.1:1/","bogus":1})", R"({"id":"a/b","url":"http://x/"})",
          R"({"url":"http://127.0.0.1:1/","url":"http://127.0.0.1:2/"})", "[]", "{"}) {
        auto b = server_->api("POST", "/v1/webhooks", bad);
        EXPECT_EQ(b.status, 400) << bad << " → " << b.body;
    }
    EXPECT_EQ(server_->api("POST", "/v1/webhooks", R"({"id":"certs","url":"http://127.0.0.1:1/"})")
                  .status,
              409);
    EXPECT_EQ(server_->api("GET", "/v1/webhooks").status, 200);
    auto list = parse(server_->api("GET", "/v1/webhooks").body).at("webhooks").as_array();
    EXPECT_EQ(list.size(), 2u);

    std::string err;
    auto dev = server_->enrolled_device("TOPICS-1", sim::AuthMode::kTlsClientCert, &err);
    ASSERT_TRUE(dev) << err;
    auto cmd = server_->api("POST", "/v1/commands",
                            R"({"targets":["TOPICS-1"],"command":{"RequestType":"ProfileList"}})");
    ASSERT_EQ(cmd.status, 201) << cmd.body;
    std::optional<sim::ReceivedCommand> next;
    ASSERT_EQ(dev->idle(&next).status, 200);
    ASSERT_TRUE(next);
    const std::string uuid = next->uuid;
    ASSERT_EQ(dev->report("Acknowledged", uuid, &next).status, 200);
    ASSERT_TRUE(certs_rx->wait_for([](const Reqs& r) { return !delivered(r).empty(); }));
    ASSERT_TRUE(await_delivered(1, "mdm.Connect"));
    for (const auto& q : certs_rx->requests()) {
        EXPECT_EQ(topic_of(q), "courier.command.finished");
        EXPECT_EQ(q.headers.at("x-hmac-signature"), hmac_b64("k2", q.body));
        auto ev = parse(q.body).at("courier_event").as_object();
        EXPECT_EQ(ev.at("command_uuid").as_string(), uuid);
        EXPECT_EQ(ev.at("status").as_string(), "acknowledged");
        EXPECT_EQ(ev.at("enrollment_id").as_string(), "TOPICS-1");
    }
    // PATCH: disable; DELETE.
    auto p = server_->api("PATCH", "/v1/webhooks/certs", R"({"enabled":false,"hmac_key":null})");
    ASSERT_EQ(p.status, 200) << p.body;
    EXPECT_FALSE(parse(p.body).at("enabled").as_bool());
    EXPECT_FALSE(parse(p.body).at("hmac_key_set").as_bool());
    EXPECT_EQ(server_->api("PATCH", "/v1/webhooks/certs", R"({"id":"x"})").status, 400);
    EXPECT_EQ(server_->api("DELETE", "/v1/webhooks/certs").status, 204);
    EXPECT_EQ(server_->api("GET", "/v1/webhooks/certs").status, 404);
}

// `courier webhooks …` drives the same API.
TEST_F(Webhooks, CliAddsListsUpdatesAndRetries) {
    receiver_->set_policy([](const auto&, size_t) { return 500; });
    start(nullptr, /*retry_window_s=*/0);
    auto cli = [&](std::vector<std::string> args) {
        std::vector<std::string> argv{COURIER_BINARY, "webhooks"};
        argv.insert(argv.end(), args.begin(), args.end());
        argv.insert(argv.end(), {"--url", server_->https_url(), "--ca", server_->ca_file(),
                                 "--api-key", server_->app().api_key()});
        return test::run_process(argv, {}, 60s);
    };
    auto add = cli({"add", "inv", receiver_->url("/inv"), "--topics", "courier.,mdm.Check",
                    "--hmac-key", "k"});
    ASSERT_EQ(add.status, 0) << add.output;
    auto list = cli({"list"});
    ASSERT_EQ(list.status, 0) << list.output;
    EXPECT_NE(list.output.find("inv"), std::string::npos) << list.output;
    EXPECT_NE(list.output.find("courier.,mdm.Check"), std::string::npos) << list.output;
    EXPECT_EQ(list.output.find("\"k\""), std::string::npos) << "the key is never shown";
    EXPECT_EQ(cli({"add", "bad", "ftp://x"}).status, 1);
    EXPECT_EQ(cli({"show", "nope"}).status, 1);
    auto upd = cli({"update", "inv", "--disable", "--json"});
    ASSERT_EQ(upd.status, 0) << upd.output;
    EXPECT_NE(upd.output.find("\"enabled\":false"), std::string::npos) << upd.output;

    auto dev = fixture_device();
    ASSERT_TRUE(dev);
    ASSERT_EQ(dev->authenticate().status, 200);
    std::string event_id;
    for (int i = 0; i < 300 && event_id.empty(); ++i) {
        auto r = server_->api("GET", "/v1/webhooks/default/deliveries?status=failed");
        auto items = parse(r.body).at("items").as_array();
        if (!items.empty())
            event_id = std::string(items[0].at("event_id").as_string());
        else
            std::this_thread::sleep_for(20ms);  // polling the API
    }
    ASSERT_FALSE(event_id.empty());
    auto failed = cli({"deliveries", "default", "--status", "failed"});
    ASSERT_EQ(failed.status, 0) << failed.output;
    EXPECT_NE(failed.output.find(event_id), std::string::npos) << failed.output;
    EXPECT_NE(failed.output.find("HTTP 500"), std::string::npos) << failed.output;
    receiver_->set_policy([](const auto&, size_t) { return 200; });
    auto retry = cli({"retry", "default", event_id});
    ASSERT_EQ(retry.status, 0) << retry.output;
    ASSERT_TRUE(await_delivered(1, "mdm.Authenticate"));
    EXPECT_EQ(cli({"retry", "default", event_id}).status, 1) << "no longer failed: 409";
    EXPECT_EQ(cli({"delete", "inv"}).status, 0);
    EXPECT_EQ(cli({"show", "inv"}).status, 1);
}

// Courier's own events: a push certificate renewal and a push token APNs
// calls invalid, each written with its cause.
TEST_F(Webhooks, RenewalAndInvalidTokenEventsAreSent) {
    start();
    auto renewed = test::make_push_cert(server_->topic());
    auto put = server_->api("PUT", "/v1/pushcert", renewed.cert_pem + renewed.key_pem);
    ASSERT_EQ(put.status, 200) << put.body;
    ASSERT_TRUE(await_delivered(1, "courier.pushcert.renewed"));
    auto ev = parse(delivered(receiver_->requests(), "courier.pushcert.renewed")[0].body);
    EXPECT_EQ(ev.at("courier_event").at("topic").as_string(), server_->topic());

    std::string err;
    auto dev = server_->enrolled_device("GONE-1", sim::AuthMode::kTlsClientCert, &err);
    ASSERT_TRUE(dev) << err;
    server_->apns().set_response(dev->token_hex(), {410, "Unregistered", ""});
    auto push = server_->api("GET", "/v1/push/GONE-1");
    ASSERT_TRUE(await_delivered(1, "courier.push.token_invalid")) << push.body;
    auto inv = parse(delivered(receiver_->requests(), "courier.push.token_invalid")[0].body)
                   .at("courier_event")
                   .as_object();
    EXPECT_EQ(inv.at("enrollment_id").as_string(), "GONE-1");
    EXPECT_EQ(inv.at("apns_status").as_int64(), 410);
    EXPECT_EQ(inv.at("reason").as_string(), "Unregistered");
    EXPECT_FALSE(server_->app().store().enrollment("GONE-1")->token_valid);
}

// Per destination and enrollment, events arrive in the order they happened,
// with failures in between and several devices at once.
TEST_F(Webhooks, AnEnrollmentsEventsArriveInOrderDespiteFailures) {
    std::mt19937 rng(7);
    std::mutex rng_mu;
    receiver_->set_policy([&](const auto&, size_t) {
        std::lock_guard lk(rng_mu);
        return std::uniform_int_distribution<int>(0, 9)(rng) < 3 ? 500 : 200;
    });
    start();
    constexpr int kDevices = 4, kReports = 8;
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    std::vector<std::vector<std::string>> sent(kDevices);
    for (int d = 0; d < kDevices; ++d) {
        std::string err;
        auto dev = server_->enrolled_device(fmt::format("ORDER-{}", d),
                                            sim::AuthMode::kTlsClientCert, &err);
        ASSERT_TRUE(dev) << err;
        threads.emplace_back([&, d, dev = std::shared_ptr<sim::SimDevice>(std::move(dev))] {
            for (int i = 0; i < kReports; ++i) {
                std::string uuid = fmt::format("ORDER-{}-{}", d, i);
                std::optional<sim::ReceivedCommand> next;
                // Reports for commands Courier never queued: each is still an
                // mdm.Connect event (answered as an Idle).
                if (dev->report("Acknowledged", uuid, &next).status != 200) ++failures;
                sent[static_cast<size_t>(d)].push_back(uuid);
            }
        });
    }
    for (auto& t : threads) t.join();
    ASSERT_EQ(failures, 0);
    ASSERT_TRUE(await_delivered(kDevices * kReports, "mdm.Connect", 60s));
    std::map<std::string, std::vector<std::string>> got;
    for (const auto& r : delivered(receiver_->requests(), "mdm.Connect")) {
        auto ack = parse(r.body).at("acknowledge_event").as_object();
        got[std::string(ack.at("udid").as_string())].push_back(
            std::string(ack.at("command_uuid").as_string()));
    }
    for (int d = 0; d < kDevices; ++d)
        EXPECT_EQ(got[fmt::format("ORDER-{}", d)], sent[static_cast<size_t>(d)]) << d;
}

// courier.command.finished for a cancel: one per target the cancel
// finished (status canceled), none for a target its device had already
// finished; a second cancel (409) adds none.
TEST_F(Webhooks, CancelSendsCommandFinishedForTheCanceledTargetsOnly) {
    start();
    std::string err;
    auto done = server_->enrolled_device("CANCEL-1", sim::AuthMode::kTlsClientCert, &err);
    ASSERT_TRUE(done) << err;
    auto open = server_->enrolled_device("CANCEL-2", sim::AuthMode::kTlsClientCert, &err);
    ASSERT_TRUE(open) << err;
    auto cmd = server_->api(
        "POST", "/v1/commands",
        R"({"targets":["CANCEL-1","CANCEL-2"],"command":{"RequestType":"ProfileList"},"push":false})");
    ASSERT_EQ(cmd.status, 201) << cmd.body;
    const std::string uuid(parse(cmd.body).at("command_uuid").as_string());
    std::optional<sim::ReceivedCommand> next;
    ASSERT_EQ(done->idle(&next).status, 200);
    ASSERT_TRUE(next);
    ASSERT_EQ(done->report("Acknowledged", uuid, &next).status, 200);
    auto c = server_->api("DELETE", "/v1/commands/" + uuid);
    ASSERT_EQ(c.status, 200) << c.body;
    EXPECT_EQ(json::serialize(parse(c.body).at("canceled")), R"(["CANCEL-2"])");
    EXPECT_EQ(server_->api("DELETE", "/v1/commands/" + uuid).status, 409);

    auto list = server_->app().store().list_deliveries("default", std::nullopt,
                                                       {.limit = 1000, .cursor = ""});
    ASSERT_TRUE(list.is_ok());
    std::map<std::string, int> in_outbox;
    for (const auto& d : list->items)
        if (d.topic == "courier.command.finished") ++in_outbox[d.enrollment_id];
    EXPECT_EQ(in_outbox, (std::map<std::string, int>{{"CANCEL-1", 1}, {"CANCEL-2", 1}}));

    ASSERT_TRUE(await_delivered(2, "courier.command.finished"));
    std::map<std::string, std::string> status_of;
    for (const auto& r : delivered(receiver_->requests(), "courier.command.finished")) {
        auto ev = parse(r.body).at("courier_event").as_object();
        EXPECT_EQ(ev.at("command_uuid").as_string(), uuid);
        status_of[std::string(ev.at("enrollment_id").as_string())] =
            std::string(ev.at("status").as_string());
        EXPECT_EQ(r.headers.at("x-hmac-signature"), hmac_b64("s3cret", r.body));
    }
    EXPECT_EQ(status_of, (std::map<std::string, std::string>{{"CANCEL-1", "acknowledged"},
                                                             {"CANCEL-2", "canceled"}}));
}

// A cancel races a device's final report: the admin API built its events
// from the targets open when it read the command, but the store appends the
// canceled event only for the targets the cancel itself finished.
TEST_F(Webhooks, ACancelAppendsCanceledEventsOnlyForTheTargetsItCanceled) {
    start();
    std::string err;
    auto dev = server_->enrolled_device("RACE-1", sim::AuthMode::kTlsClientCert, &err);
    ASSERT_TRUE(dev) << err;
    auto other = server_->enrolled_device("RACE-2", sim::AuthMode::kTlsClientCert, &err);
    ASSERT_TRUE(other) << err;
    auto cmd = server_->api(
        "POST", "/v1/commands",
        R"({"targets":["RACE-1","RACE-2"],"command":{"RequestType":"ProfileList"},"push":false})");
    ASSERT_EQ(cmd.status, 201) << cmd.body;
    const std::string uuid(parse(cmd.body).at("command_uuid").as_string());
    auto& store = server_->app().store();
    auto read = store.command(uuid);  // both open when read
    ASSERT_TRUE(read.is_ok());
    std::optional<sim::ReceivedCommand> next;
    ASSERT_EQ(dev->idle(&next).status, 200);
    ASSERT_TRUE(next);
    ASSERT_EQ(dev->report("Acknowledged", uuid, &next).status, 200);  // RACE-1 finishes first
    std::vector<db::OutboxEvent> evs;
    for (const auto& t : read->targets) {
        ASSERT_FALSE(db::is_final(t.status));
        auto ev = db::command_finished_event(uuid, t.enrollment_id, db::TargetStatus::kCanceled,
                                             SystemClock::instance().now_ms());
        ev.only_if_effective = true;
        evs.push_back(std::move(ev));
    }
    ASSERT_EQ(evs.size(), 2u);
    {
        auto attached = store.attach_events(std::move(evs));
        auto canceled = store.cancel_command(uuid, SystemClock::instance().now());
        ASSERT_TRUE(canceled.is_ok());
        EXPECT_EQ(*canceled, (std::vector<std::string>{"RACE-2"}));
    }
    // The outbox is written: exactly one event per target.
    auto list = store.list_deliveries("default", std::nullopt, {.limit = 1000, .cursor = ""});
    ASSERT_TRUE(list.is_ok());
    std::map<std::string, int> in_outbox;
    for (const auto& d : list->items)
        if (d.topic == "courier.command.finished") ++in_outbox[d.enrollment_id];
    EXPECT_EQ(in_outbox, (std::map<std::string, int>{{"RACE-1", 1}, {"RACE-2", 1}}));
    ASSERT_TRUE(await_delivered(2, "courier.command.finished"));
    std::map<std::string, std::string> status_of;
    for (const auto& r : delivered(receiver_->requests(), "courier.command.finished")) {
        auto ev = parse(r.body).at("courier_event").as_object();
        status_of[std::string(ev.at("enrollment_id").as_string())] =
            std::string(ev.at("status").as_string());
    }
    EXPECT_EQ(status_of, (std::map<std::string, std::string>{{"RACE-1", "acknowledged"},
                                                             {"RACE-2", "canceled"}}));
}

// courier.command.finished for an expiry: written by the store in the
// transaction that marks the target expired (the device's next queue read),
// once.
TEST_F(Webhooks, ExpirySendsCommandFinishedOnce) {
    start(&clock_);
    std::string err;
    auto dev = server_->enrolled_device("EXPIRE-1", sim::AuthMode::kTlsClientCert, &err);
    ASSERT_TRUE(dev) << err;
    const std::string expires = format_rfc3339(clock_.now() + std::chrono::minutes(1));
    auto x = server_->api("POST", "/v1/commands",
                          R"({"targets":["EXPIRE-1"],"command":{"RequestType":"ProfileList"},)"
                          R"("push":false,"expires_at":")" +
                              expires + R"("})");
    ASSERT_EQ(x.status, 201) << x.body;
    const std::string expiring(parse(x.body).at("command_uuid").as_string());
    auto y = server_->api(
        "POST", "/v1/commands",
        R"({"targets":["EXPIRE-1"],"command":{"RequestType":"SecurityInfo"},"push":false})");
    ASSERT_EQ(y.status, 201) << y.body;
    const std::string lasting(parse(y.body).at("command_uuid").as_string());
    clock_.set(clock_.now() + std::chrono::minutes(2));
    std::optional<sim::ReceivedCommand> next;
    ASSERT_EQ(dev->idle(&next).status, 200);
    ASSERT_TRUE(next);
    EXPECT_EQ(next->uuid, lasting);  // the expired one is skipped (and marked)
    ASSERT_EQ(dev->report("Acknowledged", lasting, &next).status, 200);
    EXPECT_FALSE(next);
    ASSERT_EQ(dev->idle(&next).status, 200);

    auto list = server_->app().store().list_deliveries("default", std::nullopt,
                                                       {.limit = 1000, .cursor = ""});
    ASSERT_TRUE(list.is_ok());
    int finished = 0;
    for (const auto& d : list->items) finished += d.topic == "courier.command.finished";
    EXPECT_EQ(finished, 2);  // the expired one and the acknowledged one

    ASSERT_TRUE(await_delivered(2, "courier.command.finished"));
    std::map<std::string, std::string> status_of;
    for (const auto& r : delivered(receiver_->requests(), "courier.command.finished")) {
        auto o = parse(r.body);
        auto ev = o.at("courier_event").as_object();
        EXPECT_EQ(ev.at("enrollment_id").as_string(), "EXPIRE-1");
        status_of[std::string(ev.at("command_uuid").as_string())] =
            std::string(ev.at("status").as_string());
        EXPECT_EQ(r.headers.at("x-courier-event-id"), std::string(o.at("event_id").as_string()));
        EXPECT_TRUE(parse_rfc3339(std::string(o.at("created_at").as_string())).has_value());
    }
    EXPECT_EQ(status_of, (std::map<std::string, std::string>{{expiring, "expired"},
                                                             {lasting, "acknowledged"}}));
}

// courier.identity.superseded end to end: a device re-enrolls with a new
// identity (approved), its old identity is presented again three times: one
// event (the alarm's once-an-hour schedule), naming the old certificate.
TEST_F(Webhooks, AnOldIdentityPresentedAgainSendsIdentitySupersededOnce) {
    start(&clock_);
    auto old_p = server_->fetch_profile();
    ASSERT_TRUE(old_p.is_ok()) << old_p.status().to_string();
    sim::SimDevice old_dev(
        server_->device_config("SUPER-1", old_p->identity, sim::AuthMode::kTlsClientCert));
    ASSERT_EQ(old_dev.authenticate().status, 200);
    ASSERT_EQ(old_dev.token_update().status, 200);
    auto old_sha = server_->app().store().bindings("SUPER-1");
    ASSERT_TRUE(old_sha.is_ok());
    ASSERT_EQ(old_sha->size(), 1u);
    const std::string old_cert = (*old_sha)[0].cert_sha256;

    auto new_p = server_->fetch_profile();
    ASSERT_TRUE(new_p.is_ok()) << new_p.status().to_string();
    sim::SimDevice new_dev(
        server_->device_config("SUPER-1", new_p->identity, sim::AuthMode::kTlsClientCert));
    ASSERT_EQ(new_dev.authenticate().status, 400);  // pending an administrator's approval
    std::string new_cert;
    auto both = server_->app().store().bindings("SUPER-1");
    ASSERT_TRUE(both.is_ok());
    for (const auto& b : *both)
        if (b.cert_sha256 != old_cert) new_cert = b.cert_sha256;
    ASSERT_FALSE(new_cert.empty());
    auto a = server_->api("POST", "/v1/devices/SUPER-1/bindings/" + new_cert + "/approve");
    ASSERT_EQ(a.status, 200) << a.body;
    ASSERT_EQ(new_dev.authenticate().status, 200);
    ASSERT_EQ(new_dev.token_update().status, 200);

    std::optional<sim::ReceivedCommand> next;
    EXPECT_EQ(old_dev.idle(&next).status, 400);
    EXPECT_EQ(old_dev.token_update().status, 400);
    EXPECT_EQ(old_dev.authenticate().status, 400);

    auto list = server_->app().store().list_deliveries("default", std::nullopt,
                                                       {.limit = 1000, .cursor = ""});
    ASSERT_TRUE(list.is_ok());
    int superseded = 0;
    for (const auto& d : list->items) superseded += d.topic == "courier.identity.superseded";
    EXPECT_EQ(superseded, 1);
    ASSERT_TRUE(await_delivered(1, "courier.identity.superseded"));
    auto got = delivered(receiver_->requests(), "courier.identity.superseded");
    ASSERT_EQ(got.size(), 1u);
    auto ev = parse(got[0].body).at("courier_event").as_object();
    EXPECT_EQ(ev.at("device_id").as_string(), "SUPER-1");
    EXPECT_EQ(ev.at("cert_sha256").as_string(), old_cert);
    EXPECT_EQ(ev.at("state").as_string(), "superseded");
    EXPECT_EQ(got[0].headers.at("x-hmac-signature"), hmac_b64("s3cret", got[0].body));
}

// courier.pushcert.expiring at 30 days, --cert-warn-days (10) and 1 day
// before, once each however often the sweep runs; expired once.
TEST_F(Webhooks, PushCertExpiryEventsAreSentOnceEach) {
    ManualClock& clock = clock_;
    start(&clock);
    auto certs = server_->app().store().active_push_certs();
    ASSERT_TRUE(certs.is_ok());
    ASSERT_EQ(certs->size(), 1u);
    const SysTime not_after = (*certs)[0].not_after;
    auto& hooks = server_->app().webhooks();
    size_t expected = 0;
    auto sweep_at = [&](std::chrono::seconds before_expiry, bool sends) {
        clock.set(not_after - before_expiry);
        for (int i = 0; i < 3; ++i) ASSERT_TRUE(hooks.sweep(clock.now()));
        if (sends) ++expected;
        // The sweep wrote its events before returning: exactly one per threshold.
        auto outbox = server_->app().store().list_deliveries("default", std::nullopt, {});
        ASSERT_TRUE(outbox.is_ok());
        ASSERT_EQ(outbox->items.size(), expected);
        ASSERT_TRUE(await_delivered(expected));
        // Recorded as delivered before the clock jumps on (a jump past an
        // attempt's lease lets another thread send it again: at least once).
        for (int i = 0; i < 1000; ++i) {
            auto b = server_->app().store().webhook_backlog();
            ASSERT_TRUE(b.is_ok());
            if (b->at("default") == 0) break;
            std::this_thread::sleep_for(5ms);  // the outcome's write follows the answer
        }
    };
    sweep_at(std::chrono::days(31), false);
    sweep_at(std::chrono::days(29), true);
    sweep_at(std::chrono::days(20), false);
    sweep_at(std::chrono::days(9), true);
    sweep_at(std::chrono::hours(12), true);
    sweep_at(-std::chrono::hours(1), true);
    sweep_at(-std::chrono::days(3), false);
    std::set<std::string> ids;
    for (const auto& r : delivered(receiver_->requests()))
        ids.insert(r.headers.at("x-courier-event-id"));
    EXPECT_EQ(ids.size(), 4u);
    std::vector<int64_t> thresholds;
    for (const auto& r : delivered(receiver_->requests(), "courier.pushcert.expiring"))
        thresholds.push_back(parse(r.body).at("courier_event").at("threshold_days").as_int64());
    EXPECT_EQ(thresholds, (std::vector<int64_t>{30, 10, 1}));
    EXPECT_EQ(delivered(receiver_->requests(), "courier.pushcert.expired").size(), 1u);
}

// courier.identity.expiring: once per device identity, within 30 days of its expiry.
TEST_F(Webhooks, IdentityExpiringIsSentOncePerIdentity) {
    start(&clock_);
    std::string err;
    auto dev = server_->enrolled_device("EXPIRING-1", sim::AuthMode::kTlsClientCert, &err);
    ASSERT_TRUE(dev) << err;
    auto e = server_->app().store().enrollment("EXPIRING-1");
    ASSERT_TRUE(e.is_ok());
    ASSERT_TRUE(e->identity_not_after.has_value());
    auto& hooks = server_->app().webhooks();
    auto count = [&] {
        auto list = server_->app().store().list_deliveries("default", std::nullopt, {});
        size_t n = 0;
        for (const auto& d : list->items) n += d.topic == "courier.identity.expiring";
        return n;
    };
    clock_.set(*e->identity_not_after - std::chrono::days(31));
    ASSERT_TRUE(hooks.sweep(clock_.now()));
    EXPECT_EQ(count(), 0u);
    clock_.set(*e->identity_not_after - std::chrono::days(29));
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(hooks.sweep(clock_.now()));
    EXPECT_EQ(count(), 1u);
    ASSERT_TRUE(await_delivered(1, "courier.identity.expiring"));
    auto ev = parse(delivered(receiver_->requests(), "courier.identity.expiring")[0].body)
                  .at("courier_event")
                  .as_object();
    EXPECT_EQ(ev.at("enrollment_id").as_string(), "EXPIRING-1");
    EXPECT_EQ(ev.at("days_left").as_int64(), 29);
}

// kill -9 with undelivered events, restart: every event is delivered.
TEST(WebhooksBinary, EventsSurviveKillNineAndAreDeliveredAfterRestart) {
    auto receiver = WebhookReceiver::start();
    ASSERT_TRUE(receiver);
    receiver->set_policy([](const auto&, size_t) { return 503; });
    TempDir dir;
    std::string err;
    auto child = test::ChildServer::create(dir.path(), &err);
    ASSERT_TRUE(child) << err;
    std::vector<std::string> flags{"--webhook-url",        receiver->url(),
                                   "--webhook-backoff-ms", "20",
                                   "--webhook-timeout-ms", "500"};
    ASSERT_TRUE(child->start(flags, &err)) << err;
    constexpr int kDevices = 5;
    for (int i = 0; i < kDevices; ++i) {
        auto dev = child->device(fmt::format("KILL-{}", i));
        ASSERT_EQ(dev->authenticate().status, 200);
        ASSERT_EQ(dev->token_update().status, 200);
    }
    ASSERT_TRUE(receiver->wait_for([](const Reqs& r) { return !r.empty(); }));
    child->kill();
    EXPECT_TRUE(delivered(receiver->requests()).empty());
    receiver->set_policy([](const auto&, size_t) { return 200; });
    ASSERT_TRUE(child->start(flags, &err)) << err;
    ASSERT_TRUE(receiver->wait_for(
        [](const Reqs& r) {
            std::set<std::string> ids;
            for (const auto& q : delivered(r)) ids.insert(q.headers.at("x-courier-event-id"));
            return ids.size() >= 2 * kDevices;
        },
        60s));
    std::map<std::string, int> per_topic;
    std::set<std::string> ids;
    for (const auto& q : delivered(receiver->requests()))
        if (ids.insert(q.headers.at("x-courier-event-id")).second) ++per_topic[topic_of(q)];
    EXPECT_EQ(per_topic["mdm.Authenticate"], kDevices);
    EXPECT_EQ(per_topic["mdm.TokenUpdate"], kDevices);
}

}  // namespace
}  // namespace courier
