// Several `courier serve` nodes on one PostgreSQL database (SPEC "Scale-out
// on PostgreSQL"), driven by simulated devices that switch nodes between
// requests: no command handed out twice after its report, none lost, FIFO,
// one result each; one push for a burst whichever node queued it; the
// re-push sweep claimed by one node; generated keys shared; kill -9 of a
// node; the database away and back; `courier migrate`.
#include <gtest/gtest.h>
#include <signal.h>

#include <boost/json.hpp>
#include <fstream>
#include <set>
#include <thread>

#include "db/postgres/pg_store.h"
#include "tests/support/child_server.h"
#include "tests/support/pg_test_db.h"
#include "tests/support/process.h"
#include "tests/support/tcp_forward.h"
#include "tests/support/temp_dir.h"

namespace courier {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

class ScaleOut : public ::testing::Test {
  protected:
    void SetUp() override {
        std::string why = pg_test_unavailable();
        if (!why.empty()) {
            if (pg_test_must_run()) FAIL() << why;
            GTEST_SKIP() << why;
        }
        db_ = std::make_unique<PgTestDb>();
        ASSERT_TRUE(db_->ok()) << db_->error();
    }

    // n nodes on the test database, all pushing to node 0's fake APNs.
    void start_nodes(int n, const std::string& db_uri = "") {
        for (int i = 0; i < n; ++i) {
            std::string err;
            auto dir = dir_.path() / ("node" + std::to_string(i));
            std::filesystem::create_directories(dir);  // ChildServer writes its APNs CA here
            auto node = test::ChildServer::create(dir, &err);
            ASSERT_TRUE(node) << err;
            if (i > 0) node->use_apns(nodes_[0]->apns().base_url(), apns_ca());
            ASSERT_TRUE(
                node->start({"--db", db_uri.empty() ? db_->uri() : db_uri, "--db-pool", "4"}, &err))
                << err;
            nodes_.push_back(std::move(node));
        }
    }
    std::filesystem::path apns_ca() const {
        return dir_.path() / "node0" / "apns-ca.pem";  // see ChildServer::create
    }
    // The same device (identity, token) speaking to node i.
    std::unique_ptr<sim::SimDevice> on_node(const sim::SimDevice& d, size_t i) {
        auto cfg = d.config();
        cfg.server_url = nodes_[i]->url();
        cfg.ca_file = nodes_[i]->ca_file();
        return std::make_unique<sim::SimDevice>(cfg);
    }
    size_t pushes_to(const std::string& token_hex) {
        size_t n = 0;
        for (const auto& r : nodes_[0]->apns().requests()) n += r.token == token_hex;
        return n;
    }
    std::string enqueue(size_t node, const std::string& udid) {
        auto r = nodes_[node]->api(
            "POST", "/v1/commands",
            R"({"targets":[")" + udid + R"("],"command":{"RequestType":"ProfileList"}})");
        EXPECT_EQ(r.status, 201) << r.body;
        if (r.status != 201) return "";
        return std::string(json::parse(r.body).at("command_uuid").as_string());
    }

    TempDir dir_;
    std::unique_ptr<PgTestDb> db_;
    std::vector<std::unique_ptr<test::ChildServer>> nodes_;
};

TEST_F(ScaleOut, GeneratedKeysAndCAsAreSharedByEveryNode) {
    start_nodes(2);
    EXPECT_EQ(nodes_[0]->api_key(), nodes_[1]->api_key());
    auto read = [](const std::filesystem::path& p) {
        std::ifstream f(p);
        return std::string(std::istreambuf_iterator<char>(f), {});
    };
    EXPECT_EQ(read(nodes_[0]->data_dir() / "tls/ca.crt"),
              read(nodes_[1]->data_dir() / "tls/ca.crt"));
    EXPECT_EQ(read(nodes_[0]->data_dir() / "enrollment-ca.crt"),
              read(nodes_[1]->data_dir() / "enrollment-ca.crt"));
    // The key works on the other node; a device enrolled through one is
    // known to the other.
    ASSERT_TRUE(nodes_[0]->import_push_cert(nullptr));
    auto dev = nodes_[0]->device("UDID-A");
    ASSERT_EQ(dev->authenticate().status, 200);
    ASSERT_EQ(on_node(*dev, 1)->token_update().status, 200);
    EXPECT_EQ(nodes_[1]->api("GET", "/v1/devices/UDID-A").status, 200);
}

// Three nodes; each device's requests go round the nodes, commands are
// queued through all of them.
TEST_F(ScaleOut, DevicesSwitchingNodesGetEveryCommandOnceInOrder) {
    start_nodes(3);
    ASSERT_TRUE(nodes_[0]->import_push_cert(nullptr));
    constexpr int kDevices = 4, kCommands = 12;
    std::vector<std::unique_ptr<sim::SimDevice>> devs;
    for (int d = 0; d < kDevices; ++d) {
        devs.push_back(nodes_[0]->device("UDID-" + std::to_string(d)));
        ASSERT_EQ(on_node(*devs[d], d % 3)->authenticate().status, 200);
        ASSERT_EQ(on_node(*devs[d], (d + 1) % 3)->token_update().status, 200);
    }
    std::vector<std::vector<std::string>> queued(kDevices);
    for (int c = 0; c < kCommands; ++c)
        for (int d = 0; d < kDevices; ++d)
            queued[d].push_back(enqueue((c + d) % 3, "UDID-" + std::to_string(d)));
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    std::vector<std::vector<std::string>> received(kDevices);
    for (int d = 0; d < kDevices; ++d)
        threads.emplace_back([&, d] {
            std::vector<std::unique_ptr<sim::SimDevice>> via;
            for (size_t i = 0; i < 3; ++i) via.push_back(on_node(*devs[d], i));
            std::optional<sim::ReceivedCommand> next;
            size_t hop = d;
            if (via[hop++ % 3]->idle(&next).status != 200) ++failures;
            while (next && received[d].size() < kCommands + 5) {
                received[d].push_back(next->uuid);
                auto r = via[hop++ % 3]->report("Acknowledged", next->uuid, &next);
                if (r.status != 200) {
                    ++failures;
                    break;
                }
            }
        });
    for (auto& t : threads) t.join();
    EXPECT_EQ(failures.load(), 0);
    for (int d = 0; d < kDevices; ++d) {
        EXPECT_EQ(received[d], queued[d]) << "device " << d;  // FIFO, each once, none lost
        for (const auto& uuid : queued[d]) {
            auto r = nodes_[(d + 2) % 3]->api("GET", "/v1/commands/" + uuid);
            ASSERT_EQ(r.status, 200);
            EXPECT_NE(r.body.find("acknowledged"), std::string::npos) << r.body;
        }
    }
    EXPECT_EQ(db_->query("SELECT count(*) FROM timeline WHERE kind = 'report'"),
              std::to_string(kDevices * kCommands));
}

// Five commands queued in a burst through two nodes cause one push: the
// pending mark lives in the database.
TEST_F(ScaleOut, ABurstThroughTwoNodesCausesOnePush) {
    start_nodes(2);
    ASSERT_TRUE(nodes_[0]->import_push_cert(nullptr));
    auto dev = nodes_[0]->device("UDID-P");
    ASSERT_EQ(dev->authenticate().status, 200);
    ASSERT_EQ(dev->token_update().status, 200);
    // Each answer carries the push's apns-id (the API waits for the push's
    // outcome): one push, whichever node queued the command.
    std::set<std::string> apns_ids;
    for (int i = 0; i < 5; ++i) {
        auto r =
            nodes_[i % 2]->api("POST", "/v1/commands",
                               R"({"targets":["UDID-P"],"command":{"RequestType":"ProfileList"}})");
        ASSERT_EQ(r.status, 201) << r.body;
        auto push = json::parse(r.body).at("targets").at("UDID-P").at("push").as_object();
        ASSERT_EQ(push.at("status").as_string(), "pushed") << r.body;
        apns_ids.insert(std::string(push.at("apns_id").as_string()));
    }
    EXPECT_EQ(apns_ids.size(), 1u);
    EXPECT_EQ(pushes_to(dev->token_hex()), 1u);
}

// A node killed with SIGKILL under load: every command it acknowledged is
// handed out by the surviving node, in order, and none after its report.
TEST_F(ScaleOut, KillNineOfANodeUnderLoadLosesNothingAcknowledged) {
    start_nodes(2);
    ASSERT_TRUE(nodes_[0]->import_push_cert(nullptr));
    auto dev = nodes_[0]->device("UDID-K");
    ASSERT_EQ(dev->authenticate().status, 200);
    ASSERT_EQ(dev->token_update().status, 200);
    std::vector<std::string> acknowledged;  // 201 from node 1 while it dies
    std::atomic<bool> stop{false};
    std::thread load([&] {
        while (!stop) {
            auto r =
                nodes_[1]->api("POST", "/v1/commands",
                               R"({"targets":["UDID-K"],"command":{"RequestType":"ProfileList"}})");
            if (r.status != 201) break;
            acknowledged.push_back(std::string(json::parse(r.body).at("command_uuid").as_string()));
        }
    });
    // Wait until it has acknowledged a few, then kill it mid-stream.
    auto deadline = std::chrono::steady_clock::now() + 30s;
    auto commands = [&] {
        std::string n = db_->query("SELECT count(*) FROM commands");
        return n.empty() || n[0] < '0' || n[0] > '9' ? 0 : std::stoi(n);
    };
    while (commands() < 5 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(20ms);
    nodes_[1]->kill();
    stop = true;
    load.join();
    ASSERT_GE(acknowledged.size(), 1u);
    // The device drains its queue through node 0.
    std::vector<std::string> received;
    std::optional<sim::ReceivedCommand> next;
    ASSERT_EQ(dev->idle(&next).status, 200);
    while (next && received.size() < acknowledged.size() + 10) {
        received.push_back(next->uuid);
        ASSERT_EQ(dev->report("Acknowledged", next->uuid, &next).status, 200);
    }
    // Every acknowledged command arrived once, in order (a command committed
    // but not answered before the kill may come too).
    std::vector<std::string> seen_ack;
    for (const auto& u : received)
        if (std::find(acknowledged.begin(), acknowledged.end(), u) != acknowledged.end())
            seen_ack.push_back(u);
    EXPECT_EQ(seen_ack, acknowledged);
    EXPECT_EQ(std::set<std::string>(received.begin(), received.end()).size(), received.size());
}

// The database goes away under a node (the connection cut, new ones
// refused) and comes back: 503 meanwhile (never 401), /healthz 503, then
// served again without a restart.
TEST_F(ScaleOut, ADatabaseAwayIs503AndTheNodeServesAgainWhenItReturns) {
    auto base = pg_test_base_uri();
    uint16_t port = static_cast<uint16_t>(std::stoi(base->substr(base->rfind(':') + 1)));
    auto fwd = test::TcpForward::start(port);
    ASSERT_NE(fwd, nullptr);
    std::string uri = db_->uri();
    uri.replace(uri.find(":" + std::to_string(port)), std::to_string(port).size() + 1,
                ":" + std::to_string(fwd->port()));
    start_nodes(1, uri);
    ASSERT_TRUE(nodes_[0]->import_push_cert(nullptr));
    auto dev = nodes_[0]->device("UDID-D");
    ASSERT_EQ(dev->authenticate().status, 200);
    ASSERT_EQ(dev->token_update().status, 200);
    std::string uuid = enqueue(0, "UDID-D");
    fwd->set_down(true);
    auto health = [&] {
        return sim::http_get(nodes_[0]->url() + "/healthz", nodes_[0]->ca_file()).status;
    };
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (health() != 503 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(100ms);
    EXPECT_EQ(health(), 503);
    std::optional<sim::ReceivedCommand> next;
    EXPECT_EQ(dev->idle(&next).status, 503);
    EXPECT_EQ(nodes_[0]->api("GET", "/v1/devices/UDID-D").status, 503);
    fwd->set_down(false);
    deadline = std::chrono::steady_clock::now() + 15s;
    while (health() != 200 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(100ms);
    ASSERT_EQ(health(), 200);
    ASSERT_EQ(dev->idle(&next).status, 200);
    ASSERT_TRUE(next);
    EXPECT_EQ(next->uuid, uuid);
}

// courier migrate: a populated single-node data dir moves onto PostgreSQL;
// a node on the target serves it; a second run refuses the non-empty target.
TEST_F(ScaleOut, MigrateCopiesASingleNodeInstallation) {
    std::string err;
    std::filesystem::create_directories(dir_.path() / "single");
    auto single = test::ChildServer::create(dir_.path() / "single", &err);
    ASSERT_TRUE(single) << err;
    ASSERT_TRUE(single->start({}, &err)) << err;
    ASSERT_TRUE(single->import_push_cert(&err)) << err;
    // A destination that never answers: the device's events stay pending.
    ASSERT_EQ(single
                  ->api("POST", "/v1/webhooks",
                        R"({"id":"archive","url":"http://127.0.0.1:1/hook","topics":["mdm."],)"
                        R"("hmac_key":"k1"})")
                  .status,
              201);
    auto dev = single->device("UDID-M");
    ASSERT_EQ(dev->authenticate().status, 200);
    ASSERT_EQ(dev->token_update().status, 200);
    std::string done_uuid, open_uuid;
    {
        auto r = single->api("POST", "/v1/commands",
                             R"({"targets":["UDID-M"],"command":{"RequestType":"ProfileList"}})");
        ASSERT_EQ(r.status, 201);
        done_uuid = std::string(json::parse(r.body).at("command_uuid").as_string());
        std::optional<sim::ReceivedCommand> next;
        ASSERT_EQ(dev->idle(&next).status, 200);
        ASSERT_EQ(dev->report("Acknowledged", next->uuid, &next).status, 200);
        r = single->api(
            "POST", "/v1/commands",
            R"({"targets":["UDID-M"],"command":{"RequestType":"DeviceInformation","Queries":["UDID"]}})");
        ASSERT_EQ(r.status, 201) << r.body;
        open_uuid = std::string(json::parse(r.body).at("command_uuid").as_string());
    }
    ASSERT_EQ(single->api("POST", "/v1/enrollment-tokens", R"({"uses":1})").status / 100, 2);
    std::string key = single->api_key();
    ASSERT_EQ(single->terminate(), 0);

    auto run = [&] {
        test::Process p({COURIER_BINARY, "migrate", "--from",
                         "sqlite://" + (single->data_dir() / "courier.db").string(), "--to",
                         db_->uri()});
        int rc = p.wait(60s);
        return std::make_pair(rc, p.output());
    };
    auto [rc, out] = run();
    ASSERT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("enrollments"), std::string::npos) << out;
    EXPECT_EQ(db_->query("SELECT count(*) FROM enrollments"), "1");
    EXPECT_EQ(db_->query("SELECT count(*) FROM commands"), "2");
    EXPECT_EQ(db_->query("SELECT count(*) FROM push_certs"), "1");
    EXPECT_EQ(db_->query("SELECT count(*) FROM enrollment_tokens"), "1");
    EXPECT_EQ(db_->query("SELECT count(*) FROM secrets"), "5");
    EXPECT_EQ(db_->query("SELECT count(*) FROM webhooks"), "1");
    EXPECT_EQ(db_->query("SELECT hmac_key FROM webhooks WHERE id = 'archive'"), "k1");
    // Authenticate, TokenUpdate, the Idle that got a command and the
    // Acknowledged report (at least), each with its pending delivery.
    const int events = std::stoi(db_->query("SELECT count(*) FROM webhook_events"));
    EXPECT_GE(events, 3);
    EXPECT_EQ(db_->query("SELECT count(*) FROM webhook_deliveries WHERE status <> 'delivered' "
                         "AND webhook_id = 'archive'"),
              std::to_string(events));
    EXPECT_EQ(db_->query("SELECT token_update_tally FROM enrollments"), "1");
    auto [rc2, out2] = run();
    EXPECT_EQ(rc2, 1);
    EXPECT_NE(out2.find("not empty"), std::string::npos) << out2;

    // A node on the target: same key, the device's queue goes on.
    start_nodes(1);
    EXPECT_EQ(nodes_[0]->api_key(), key);
    auto moved = on_node(*dev, 0);
    std::optional<sim::ReceivedCommand> next;
    ASSERT_EQ(moved->idle(&next).status, 200);
    ASSERT_TRUE(next);
    EXPECT_EQ(next->uuid, open_uuid);
    auto done = nodes_[0]->api("GET", "/v1/commands/" + done_uuid);
    ASSERT_EQ(done.status, 200);
    EXPECT_NE(done.body.find("acknowledged"), std::string::npos);
    // The destination and its pending events moved too; new events join them.
    auto hooks = nodes_[0]->api("GET", "/v1/webhooks/archive/deliveries?status=pending");
    ASSERT_EQ(hooks.status, 200) << hooks.body;
    EXPECT_NE(hooks.body.find("mdm.Authenticate"), std::string::npos) << hooks.body;
    EXPECT_NE(hooks.body.find("mdm.TokenUpdate"), std::string::npos) << hooks.body;
    EXPECT_GT(std::stoi(db_->query("SELECT count(*) FROM webhook_events")), events);
}

// PostgreSQL itself crashes and restarts (immediate stop, WAL recovery) while
// commands are being queued: every command answered 201 is there afterwards
// and reaches the device in order; the node needed no restart. A server of
// its own, so the run's shared one is not disturbed.
TEST_F(ScaleOut, ADatabaseRestartUnderLoadLosesNothingAcknowledged) {
    TempDir state;
    const std::string script = std::string(COURIER_SOURCE_DIR) + "/tools/pg-test-server.sh";
    auto run_script = [&](const std::string& cmd) {
        test::Process p({script, cmd, state.path().string()});
        int rc = p.wait(120s);
        EXPECT_EQ(rc, 0) << p.output();
        return rc == 0;
    };
    ASSERT_TRUE(run_script("start"));
    struct Stop {
        std::function<void()> fn;
        ~Stop() { fn(); }
    } stop_server{[&] { run_script("stop"); }};
    std::ifstream f(state.path() / "uri");
    std::string uri;
    ASSERT_TRUE(std::getline(f, uri));
    start_nodes(1, uri);
    ASSERT_TRUE(nodes_[0]->import_push_cert(nullptr));
    auto dev = nodes_[0]->device("UDID-R");
    ASSERT_EQ(dev->authenticate().status, 200);
    ASSERT_EQ(dev->token_update().status, 200);

    std::mutex mu;
    std::vector<std::string> acknowledged;
    std::atomic<int> refused{0};
    std::atomic<bool> stop{false};
    std::thread load([&] {
        while (!stop) {
            auto r =
                nodes_[0]->api("POST", "/v1/commands?nopush=1",
                               R"({"targets":["UDID-R"],"command":{"RequestType":"ProfileList"}})");
            if (r.status == 201) {
                std::lock_guard lk(mu);
                acknowledged.push_back(
                    std::string(json::parse(r.body).at("command_uuid").as_string()));
            } else {
                ++refused;  // 503 while the database is away; an admin retries
            }
        }
    });
    auto acked = [&] {
        std::lock_guard lk(mu);
        return acknowledged.size();
    };
    auto wait_acked = [&](size_t n) {
        auto deadline = std::chrono::steady_clock::now() + 60s;
        while (acked() < n && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(20ms);
        return acked() >= n;
    };
    EXPECT_TRUE(wait_acked(10));
    ASSERT_TRUE(run_script("restart"));
    size_t before = acked();
    EXPECT_TRUE(wait_acked(before + 10)) << "the node serves again after the restart";
    stop = true;
    load.join();

    std::vector<std::string> received;
    std::optional<sim::ReceivedCommand> next;
    ASSERT_EQ(dev->idle(&next).status, 200);
    while (next && received.size() < acknowledged.size() + 10) {
        received.push_back(next->uuid);
        ASSERT_EQ(dev->report("Acknowledged", next->uuid, &next).status, 200);
    }
    std::vector<std::string> seen_ack;
    for (const auto& u : received)
        if (std::find(acknowledged.begin(), acknowledged.end(), u) != acknowledged.end())
            seen_ack.push_back(u);
    EXPECT_EQ(seen_ack, acknowledged);
}

// A primary with a synchronous standby, the node on a multi-host URI with
// target_session_attrs=read-write: the primary crashes under load and the
// standby is promoted; every command answered 201 before or after is on
// the new primary and reaches the device, and the node follows without a
// restart.
TEST_F(ScaleOut, StandbyFailoverLosesNothingAcknowledged) {
    TempDir state;
    const std::string script = std::string(COURIER_SOURCE_DIR) + "/tools/pg-test-server.sh";
    auto run_script = [&](const std::string& cmd) {
        test::Process p({script, cmd, state.path().string()});
        int rc = p.wait(120s);
        EXPECT_EQ(rc, 0) << p.output();
        return rc == 0;
    };
    ASSERT_TRUE(run_script("start-pair"));
    struct Stop {
        std::function<void()> fn;
        ~Stop() { fn(); }
    } stop_server{[&] { run_script("stop"); }};
    std::ifstream f(state.path() / "uri");
    std::string uri;
    ASSERT_TRUE(std::getline(f, uri));
    ASSERT_NE(uri.find("target_session_attrs=read-write"), std::string::npos);
    start_nodes(1, uri);
    ASSERT_TRUE(nodes_[0]->import_push_cert(nullptr));
    auto dev = nodes_[0]->device("UDID-F");
    ASSERT_EQ(dev->authenticate().status, 200);
    ASSERT_EQ(dev->token_update().status, 200);

    std::mutex mu;
    std::vector<std::string> acknowledged;
    std::atomic<bool> stop{false};
    std::thread load([&] {
        while (!stop) {
            auto r =
                nodes_[0]->api("POST", "/v1/commands",
                               R"({"targets":["UDID-F"],"command":{"RequestType":"ProfileList"}})");
            if (r.status != 201) continue;  // 503 during the failover; retried
            std::lock_guard lk(mu);
            acknowledged.push_back(std::string(json::parse(r.body).at("command_uuid").as_string()));
        }
    });
    auto acked = [&] {
        std::lock_guard lk(mu);
        return acknowledged.size();
    };
    auto wait_acked = [&](size_t n) {
        auto deadline = std::chrono::steady_clock::now() + 60s;
        while (acked() < n && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(20ms);
        return acked() >= n;
    };
    EXPECT_TRUE(wait_acked(10));
    ASSERT_TRUE(run_script("fail-primary"));
    size_t before = acked();
    EXPECT_TRUE(wait_acked(before + 10)) << "the node follows the promoted standby";
    stop = true;
    load.join();

    std::vector<std::string> received;
    std::optional<sim::ReceivedCommand> next;
    ASSERT_EQ(dev->idle(&next).status, 200);
    while (next && received.size() < acknowledged.size() + 10) {
        received.push_back(next->uuid);
        ASSERT_EQ(dev->report("Acknowledged", next->uuid, &next).status, 200);
    }
    std::vector<std::string> seen_ack;
    for (const auto& u : received)
        if (std::find(acknowledged.begin(), acknowledged.end(), u) != acknowledged.end())
            seen_ack.push_back(u);
    EXPECT_EQ(seen_ack, acknowledged);
}

}  // namespace
}  // namespace courier
