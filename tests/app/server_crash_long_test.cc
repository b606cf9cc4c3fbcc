// Crash safety under load: the real binary is driven by API clients and
// simulated devices and SIGKILLed at random moments, several times, then
// restarted on the same data dir. At the end every command that got a 2xx
// reached its target and is acknowledged, none was handed out again after
// its acknowledgement was answered, and the database passes integrity_check.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>

#include <atomic>
#include <boost/json.hpp>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "tests/support/child_server.h"
#include "tests/support/temp_dir.h"

namespace courier {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;

constexpr int kDevices = 12;
constexpr int kRounds = 5;

struct DeviceState {
    std::unique_ptr<sim::SimDevice> sim;
    std::optional<std::string> unanswered;  // received, report not yet answered 200
    std::set<std::string> confirmed;        // reports answered 200
    std::vector<std::string> received;
};

class CrashUnderLoad : public ::testing::Test {
  protected:
    void SetUp() override {
        std::string err;
        server_ = test::ChildServer::create(dir_.path(), &err);
        ASSERT_TRUE(server_) << err;
        ASSERT_TRUE(server_->start({}, &err)) << err;
        ASSERT_TRUE(server_->import_push_cert(&err)) << err;
        for (int i = 0; i < kDevices; ++i) {
            std::string id = "UDID-" + std::to_string(i);
            auto& d = devices_[id];
            d.sim = server_->device(id);
            ASSERT_EQ(d.sim->authenticate().status, 200);
            ASSERT_EQ(d.sim->token_update().status, 200);
        }
    }

    // One step of a device: answer what it holds, or ask for more. Failures
    // (the server is down) leave the state for the next step.
    void device_step(DeviceState& d) {
        std::optional<sim::ReceivedCommand> next;
        sim::HttpReply r;
        std::string reported;
        if (d.unanswered) {
            reported = *d.unanswered;
            r = d.sim->report("Acknowledged", reported, &next);
        } else {
            r = d.sim->idle(&next);
        }
        if (r.status != 200) return;
        if (!reported.empty()) {
            d.confirmed.insert(reported);
            d.unanswered.reset();
        }
        if (next) {
            if (d.confirmed.count(next->uuid))
                ADD_FAILURE() << next->uuid << " handed out again after its acknowledgement";
            d.received.push_back(next->uuid);
            d.unanswered = next->uuid;
        }
    }

    void enqueue(const std::string& target) {
        auto r = server_->api(
            "POST", "/v1/commands",
            R"({"targets":[")" + target +
                R"("],"push":false,"command":{"RequestType":"DeviceInformation","Queries":["UDID"]}})");
        if (r.status == 201) {
            auto uuid = json::parse(r.body).as_object().at("command_uuid").as_string();
            accepted_[std::string(uuid)] = target;
        }
    }

    TempDir dir_;
    std::unique_ptr<test::ChildServer> server_;
    std::map<std::string, DeviceState> devices_;
    std::map<std::string, std::string> accepted_;  // uuid → target
};

TEST_F(CrashUnderLoad, EveryAcceptedCommandSurvivesRepeatedSigkill) {
    std::mt19937 rng(20261124);
    for (int round = 0; round < kRounds; ++round) {
        // The killer strikes at a random moment while requests are in flight.
        pid_t pid = server_->pid();
        int delay_ms = std::uniform_int_distribution<int>(50, 400)(rng);
        std::atomic<bool> killed{false};
        std::thread killer([&] {
            std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
            ::kill(pid, SIGKILL);
            killed = true;
        });
        for (int op = 0; op < 400 && !killed; ++op) {
            int d = std::uniform_int_distribution<int>(0, kDevices - 1)(rng);
            std::string id = "UDID-" + std::to_string(d);
            if (op % 3 == 0)
                enqueue(id);
            else
                device_step(devices_[id]);
        }
        killer.join();
        server_->kill();  // reaps it
        std::string err;
        ASSERT_TRUE(server_->start({}, &err)) << "restart " << round << ": " << err;
    }
    ASSERT_FALSE(accepted_.empty());

    // Drain: every device works through its queue on the restarted server.
    for (auto& [id, d] : devices_) {
        for (int i = 0; i < 10000; ++i) {
            size_t before = d.received.size();
            bool had = d.unanswered.has_value();
            device_step(d);
            if (!had && !d.unanswered && d.received.size() == before) break;
        }
        EXPECT_FALSE(d.unanswered) << id;
    }
    for (const auto& [uuid, target] : accepted_) {
        auto& d = devices_[target];
        EXPECT_TRUE(d.confirmed.count(uuid)) << uuid << " for " << target << " never delivered";
        auto r = server_->api("GET", "/v1/commands/" + uuid);
        ASSERT_EQ(r.status, 200) << uuid << ": " << r.body;
        auto st = json::parse(r.body).at("targets").at(target).at("status").as_string();
        EXPECT_EQ(st, "acknowledged") << uuid;
    }
    EXPECT_EQ(server_->terminate(), 0);

    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open_v2((server_->data_dir() / "courier.db").c_str(), &db,
                              SQLITE_OPEN_READONLY, nullptr),
              SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, nullptr), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "ok");
    sqlite3_finalize(st);
    sqlite3_close(db);
    std::cout << accepted_.size() << " commands accepted across " << kRounds << " SIGKILLs\n";
}

}  // namespace
}  // namespace courier
