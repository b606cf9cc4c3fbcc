// Faults under load, end to end: a sick database (SQLITE_BUSY, disk full,
// injected through the storage interface) and a sick APNs (slow answers,
// 500 and 429 bursts, GOAWAY, dropped connections). The server keeps
// serving check-ins, answers what it cannot do with 503 rather than a lie,
// schedules pushes again, and loses no command.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <future>
#include <set>
#include <thread>

#include "tests/support/test_server.h"

namespace courier {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;

class Faults : public ::testing::Test {
  protected:
    void start(bool faulty_store) {
        std::string err;
        test::TestServerOptions o;
        o.faulty_store = faulty_store;
        server_ = test::TestServer::start(o, &err);
        ASSERT_TRUE(server_) << err;
        for (int i = 0; i < 6; ++i) {
            auto d = server_->enrolled_device("FAULT-" + std::to_string(i),
                                              sim::AuthMode::kTlsClientCert, &err);
            ASSERT_TRUE(d) << err;
            devices_.push_back(std::move(d));
        }
    }

    std::vector<std::string> ids(size_t n) const {
        std::vector<std::string> out;
        for (size_t i = 0; i < n; ++i) out.push_back(devices_[i]->config().udid);
        return out;
    }

    // POST /v1/commands (DeviceInformation) to the first n devices.
    test::HttpResult post_command(size_t n, bool push) {
        json::array t;
        for (const auto& id : ids(n)) t.emplace_back(id);
        json::object body{{"targets", std::move(t)},
                          {"command", json::object{{"RequestType", "DeviceInformation"},
                                                   {"Queries", json::array{"DeviceName"}}}},
                          {"push", push}};
        return server_->api("POST", "/v1/commands", json::serialize(body));
    }

    // Idle, then acknowledge everything handed out; the command UUIDs received.
    std::vector<std::string> drain(sim::SimDevice& d) {
        std::vector<std::string> got;
        std::optional<sim::ReceivedCommand> next;
        auto r = d.idle(&next);
        EXPECT_EQ(r.status, 200) << r.body << r.error;
        for (int guard = 0; next && guard < 100; ++guard) {
            got.push_back(next->uuid);
            std::string uuid = next->uuid;
            r = d.report("Acknowledged", uuid, &next);
            EXPECT_EQ(r.status, 200) << r.body << r.error;
        }
        return got;
    }

    std::string target_status(const std::string& uuid, const std::string& id) {
        auto r = server_->api("GET", "/v1/commands/" + uuid);
        if (r.status != 200) return "GET " + std::to_string(r.status);
        return std::string(json::parse(r.body).at("targets").at(id).at("status").as_string());
    }

    std::unique_ptr<test::TestServer> server_;
    std::vector<std::unique_ptr<sim::SimDevice>> devices_;
};

TEST_F(Faults, BusyAndFullDatabaseAnswer503ChangeNothingAndLoseNothing) {
    start(true);
    auto first = post_command(6, false);
    ASSERT_EQ(first.status, 201) << first.body;
    std::string uuid(json::parse(first.body).at("command_uuid").as_string());
    // Device 5 has its command before the database falls ill.
    EXPECT_EQ(drain(*devices_[5]), std::vector<std::string>{uuid});

    db::FaultyStore& store = *server_->faulty();
    store.fail_next_writes(3, db::StoreFault::kLocked);
    // A device whose check-in must write (hand out a command) is told to
    // come back (503), never 400/401, which a device would act on.
    std::optional<sim::ReceivedCommand> next;
    auto r = devices_[0]->idle(&next);
    EXPECT_EQ(r.status, 503) << r.body;
    EXPECT_FALSE(next);
    // An enqueue that cannot commit is a 503 and queues nothing.
    auto lost = post_command(6, false);
    EXPECT_EQ(lost.status, 503) << lost.body;
    // A TokenUpdate that cannot be stored is a 503 as well.
    EXPECT_EQ(devices_[1]->token_update().status, 503);
    EXPECT_EQ(store.injected_failures(), 3);
    // Check-ins that need no write are served throughout.
    store.fail_next_writes(1000, db::StoreFault::kDiskFull);
    for (int i = 0; i < 20; ++i) {
        r = devices_[5]->idle(&next);
        ASSERT_EQ(r.status, 200) << r.body;
        EXPECT_FALSE(next);
    }
    auto full = post_command(1, false);
    EXPECT_EQ(full.status, 503) << full.body;
    EXPECT_NE(full.body.find("disk full"), std::string::npos) << full.body;
    store.fail_next_writes(0, db::StoreFault::kDiskFull);

    // Healthy again: every device gets the one command that was accepted,
    // exactly once; the refused enqueues left no trace.
    for (int i = 0; i < 5; ++i) EXPECT_EQ(drain(*devices_[i]), std::vector<std::string>{uuid});
    for (const auto& id : ids(6)) EXPECT_EQ(target_status(uuid, id), "acknowledged") << id;
    auto list = server_->api("GET", "/v1/commands?limit=50");
    ASSERT_EQ(list.status, 200);
    EXPECT_EQ(json::parse(list.body).at("items").as_array().size(), 1u) << list.body;
}

TEST_F(Faults, SickApnsNeitherStallsCheckinsNorLosesCommands) {
    start(false);
    auto& fake = server_->apns();
    fake.set_delay(1500ms);  // slow answers for every push
    fake.set_response(devices_[0]->token_hex(), {500, "InternalServerError", ""}, 3);
    fake.set_response(devices_[1]->token_hex(), {429, "TooManyRequests", "120"}, 3);

    auto t0 = std::chrono::steady_clock::now();
    auto posted = std::async(std::launch::async, [&] { return post_command(6, true); });
    // While the API waits on APNs, a device's check-in is answered at once
    // and already finds the committed command.
    std::vector<std::string> got;
    for (int i = 0; i < 200 && got.empty(); ++i) {
        auto c0 = std::chrono::steady_clock::now();
        got = drain(*devices_[5]);
        EXPECT_LT(std::chrono::steady_clock::now() - c0, 1000ms);
        if (got.empty()) std::this_thread::sleep_for(10ms);
    }
    ASSERT_EQ(got.size(), 1u);
    auto answer = posted.get();
    // The API's wait for APNs is bounded (5 s) even when APNs is slow.
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 8s);
    ASSERT_EQ(answer.status, 201) << answer.body;
    auto targets = json::parse(answer.body).at("targets");
    EXPECT_NE(json::serialize(targets.at(devices_[0]->config().udid)).find("500"),
              std::string::npos)
        << answer.body;
    EXPECT_NE(json::serialize(targets.at(devices_[1]->config().udid)).find("429"),
              std::string::npos)
        << answer.body;

    // The failed pushes are scheduled again (500: backoff; 429: Retry-After).
    auto due = server_->app().store().due_repushes(SystemClock::instance().now() + 1h, 100);
    ASSERT_TRUE(due.is_ok());
    std::set<std::string> scheduled;
    for (const auto& d : *due) scheduled.insert(d.enrollment_id);
    EXPECT_TRUE(scheduled.count(devices_[0]->config().udid));
    EXPECT_TRUE(scheduled.count(devices_[1]->config().udid));

    // GOAWAY, then dropped connections mid-stream: later pushes still go out
    // on new connections.
    fake.set_delay(0ms);
    fake.send_goaway();
    auto pushed = server_->api("GET", "/v1/push/" + devices_[2]->config().udid);
    // One id: 200 delivered, 502 not (207 is for a mix of ids).
    EXPECT_EQ(pushed.status, 200) << pushed.body;
    fake.set_delay(300ms);
    auto in_flight = std::async(std::launch::async, [&] {
        return server_->api("GET", "/v1/push/" + devices_[3]->config().udid);
    });
    ASSERT_TRUE(
        fake.wait_for([](const apns::FakeApnsState& s) { return s.connections_open > 0; }, 5s));
    fake.drop_connections();  // with the push on the wire or about to be: either way
    auto dropped = in_flight.get();
    EXPECT_EQ(dropped.status, 200) << dropped.body;
    fake.set_delay(0ms);
    size_t before = fake.request_count();
    auto again = server_->api("GET", "/v1/push/" + devices_[4]->config().udid);
    EXPECT_EQ(again.status, 200) << again.body;
    EXPECT_GT(fake.request_count(), before);

    // Nothing was lost: every device drains the command exactly once.
    std::string uuid(json::parse(answer.body).at("command_uuid").as_string());
    for (int i = 0; i < 5; ++i) EXPECT_EQ(drain(*devices_[i]), std::vector<std::string>{uuid});
    for (const auto& id : ids(6)) EXPECT_EQ(target_status(uuid, id), "acknowledged") << id;
}

}  // namespace
}  // namespace courier
