// docker/haproxy.cfg as shipped, run by Debian's haproxy in front of two
// `courier serve --proxy-protocol` nodes on one PostgreSQL database (the
// setup of docker/compose.postgres.yaml without the containers): its TCP
// passthrough keeps device mutual TLS, its PROXY v2 header and TLS health
// checks pass the nodes' checks, both nodes serve devices and the admin API
// through it, and when a node is killed with SIGKILL every request still
// succeeds (redispatch) and the health check takes the node out.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "tests/support/child_server.h"
#include "tests/support/http_client.h"
#include "tests/support/pg_test_db.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_certs.h"

namespace courier {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

constexpr const char* kHaproxy = "/usr/sbin/haproxy";

// A port free on 127.0.0.1 now (the kernel's pick for a socket bound to 0).
uint16_t free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        if (fd >= 0) ::close(fd);
        return 0;
    }
    ::close(fd);
    return ntohs(a.sin_port);
}

// One command on HAProxy's stats socket; its answer.
std::string stats_command(const std::string& socket_path, const std::string& cmd) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) return "";
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", socket_path.c_str());
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string out;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        ::write(fd, cmd.data(), cmd.size()) == static_cast<ssize_t>(cmd.size())) {
        char buf[4096];
        for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0 && out.size() < (1u << 20);)
            out.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    return out;
}

struct ServerStat {
    std::string status;  // UP, DOWN, ...
    int64_t sessions = 0;
};

// The backend's servers from `show stat` (CSV, its header names the columns).
std::map<std::string, ServerStat> backend_servers(const std::string& socket_path) {
    std::map<std::string, ServerStat> out;
    std::istringstream in(stats_command(socket_path, "show stat\n"));
    std::string line;
    std::map<std::string, size_t> col;
    auto split = [](const std::string& l) {
        std::vector<std::string> f;
        std::stringstream ss(l);
        for (std::string x; std::getline(ss, x, ',');) f.push_back(x);
        return f;
    };
    while (std::getline(in, line)) {
        if (line.rfind("# ", 0) == 0) {
            auto names = split(line.substr(2));
            for (size_t i = 0; i < names.size(); ++i) col[names[i]] = i;
            continue;
        }
        if (!col.count("pxname") || !col.count("svname") || !col.count("status") ||
            !col.count("stot"))
            continue;
        auto f = split(line);
        if (f.size() <= std::max({col["pxname"], col["svname"], col["status"], col["stot"]}))
            continue;
        if (f[col["pxname"]] != "courier" || f[col["svname"]] == "BACKEND") continue;
        out[f[col["svname"]]] = ServerStat{f[col["status"]], std::stoll(f[col["stot"]])};
    }
    return out;
}

class HaproxyFront : public ::testing::Test {
  protected:
    void SetUp() override {
        std::string why = pg_test_unavailable();
        if (why.empty() && ::access(kHaproxy, X_OK) != 0)
            why = std::string(kHaproxy) + " is missing (tools/install-deps.sh installs haproxy)";
        if (!why.empty()) {
            if (pg_test_must_run()) FAIL() << why;
            GTEST_SKIP() << why;
        }
        db_ = std::make_unique<PgTestDb>();
        ASSERT_TRUE(db_->ok()) << db_->error();
        for (int i = 0; i < 2; ++i) {
            std::string err;
            auto dir = dir_.path() / ("node" + std::to_string(i));
            std::filesystem::create_directories(dir);
            auto node = test::ChildServer::create(dir, &err);
            ASSERT_TRUE(node) << err;
            if (i > 0)
                node->use_apns(nodes_[0]->apns().base_url(), dir_.path() / "node0" / "apns-ca.pem");
            ASSERT_TRUE(
                node->start({"--db", db_->uri(), "--db-pool", "4", "--proxy-protocol"}, &err))
                << err;
            nodes_.push_back(std::move(node));
        }
        // The shipped configuration; only addresses and the connection cap
        // are changed, and a stats socket is added for the test to read the
        // servers' state.
        std::ifstream f(std::string(COURIER_SOURCE_DIR) + "/docker/haproxy.cfg");
        std::string cfg((std::istreambuf_iterator<char>(f)), {});
        port_ = free_port();
        ASSERT_NE(port_, 0);
        socket_ = (dir_.path() / "haproxy.sock").string();
        auto replace = [&](const std::string& from, const std::string& to) {
            auto at = cfg.find(from);
            ASSERT_NE(at, std::string::npos) << "docker/haproxy.cfg has no \"" << from << "\"";
            cfg.replace(at, from.size(), to);
        };
        replace("bind :8443", "bind 127.0.0.1:" + std::to_string(port_));
        replace("server courier1 courier1:8443", "server courier1 127.0.0.1:" + port_of(0));
        replace("server courier2 courier2:8443", "server courier2 127.0.0.1:" + port_of(1));
        replace("global\n", "global\n    stats socket " + socket_ + " level admin\n");
        // 20,000 connections need 40,000 descriptors, more than a test
        // machine may grant (containers usually allow far more).
        replace("maxconn 20000", "maxconn 2000");
        auto path = dir_.path() / "haproxy.cfg";
        std::ofstream(path) << cfg;
        haproxy_ = std::make_unique<test::Process>(
            std::vector<std::string>{kHaproxy, "-db", "-f", path.string()});
        ASSERT_TRUE(haproxy_->started());
        // Both servers pass the health check (TLS + PROXY v2 to /healthz).
        ASSERT_TRUE(await_servers([](const auto& s) {
            return s.size() == 2 && s.at("courier1").status == "UP" &&
                   s.at("courier2").status == "UP";
        })) << haproxy_->output();
    }
    void TearDown() override {
        haproxy_.reset();
        nodes_.clear();
        db_.reset();
    }

    std::string port_of(size_t i) const {
        auto u = nodes_[i]->url();
        return u.substr(u.rfind(':') + 1);
    }
    std::string front_url() const { return "https://127.0.0.1:" + std::to_string(port_); }
    template <class Pred>
    bool await_servers(Pred pred, std::chrono::seconds limit = 30s) {
        auto deadline = std::chrono::steady_clock::now() + limit;
        while (std::chrono::steady_clock::now() < deadline) {
            if (pred(backend_servers(socket_))) return true;
            std::this_thread::sleep_for(100ms);
        }
        return false;
    }
    test::HttpResult api(const std::string& method, const std::string& path,
                         const std::string& body = {}) {
        test::HttpOptions o;
        o.ca_file = nodes_[0]->ca_file();  // the nodes share the CA (through the database)
        return test::http_request(method, front_url() + path, body,
                                  {"Authorization: Bearer " + nodes_[0]->api_key()}, o);
    }
    // The device `udid` (one identity, made on first use) on a new
    // connection through HAProxy.
    std::unique_ptr<sim::SimDevice> device(const std::string& udid) {
        auto it = devices_.find(udid);
        if (it == devices_.end()) {
            auto cfg = nodes_[0]->device(udid)->config();
            cfg.server_url = front_url();
            it = devices_.emplace(udid, cfg).first;
        }
        return std::make_unique<sim::SimDevice>(it->second);
    }
    // Enrolls, queues one command through the front and has the device
    // fetch and acknowledge it: true when every step answered as it should.
    bool round_trip(const std::string& udid, bool enroll, std::string* why) {
        auto dev = device(udid);
        if (enroll) {
            if (auto r = dev->authenticate(); r.status != 200)
                return *why = "Authenticate " + std::to_string(r.status), false;
            if (auto r = dev->token_update(); r.status != 200)
                return *why = "TokenUpdate " + std::to_string(r.status), false;
        }
        auto q = api("POST", "/v1/commands",
                     R"({"targets":[")" + udid +
                         R"("],"command":{"RequestType":"ProfileList"},"push":false})");
        if (q.status != 201)
            return *why = "POST /v1/commands " + std::to_string(q.status) + " " + q.error, false;
        std::string uuid(json::parse(q.body).at("command_uuid").as_string());
        std::optional<sim::ReceivedCommand> next;
        if (auto r = device(udid)->idle(&next); r.status != 200 || !next || next->uuid != uuid)
            return *why = "Idle " + std::to_string(r.status) + " " + r.body, false;
        if (auto r = device(udid)->report("Acknowledged", uuid, &next); r.status != 200 || next)
            return *why = "Acknowledged " + std::to_string(r.status) + " " + r.body, false;
        return true;
    }

    TempDir dir_;
    std::unique_ptr<PgTestDb> db_;
    std::vector<std::unique_ptr<test::ChildServer>> nodes_;
    std::unique_ptr<test::Process> haproxy_;
    std::map<std::string, sim::DeviceConfig> devices_;
    uint16_t port_ = 0;
    std::string socket_;
};

TEST_F(HaproxyFront, BothNodesServeDevicesThroughItAndALostNodeIsRoutedAround) {
    auto pc = test::make_push_cert(test::ChildServer::topic());
    ASSERT_EQ(api("PUT", "/v1/pushcert", pc.cert_pem + pc.key_pem).status, 200);
    constexpr int kDevices = 8;
    std::string why;
    for (int d = 0; d < kDevices; ++d)
        ASSERT_TRUE(round_trip("UDID-H" + std::to_string(d), true, &why)) << d << ": " << why;
    auto servers = backend_servers(socket_);
    ASSERT_EQ(servers.size(), 2u);
    EXPECT_GT(servers["courier1"].sessions, 0) << "no connection reached node 1";
    EXPECT_GT(servers["courier2"].sessions, 0) << "no connection reached node 2";
    // The device's address reached the node through the PROXY header: the
    // node's own check of mutual TLS and the binding passed (above), and a
    // node without the header in front refuses the connection.
    {
        test::HttpOptions o;
        o.ca_file = nodes_[1]->ca_file();
        o.timeout_ms = 5000;
        EXPECT_NE(test::http_request("GET", nodes_[1]->url() + "/healthz", "", {}, o).status, 200);
    }

    // Node 2 is killed: every request still succeeds (a connection refused
    // by the dead node is redispatched), and the health check marks it DOWN.
    nodes_[1]->kill();
    for (int d = 0; d < kDevices; ++d)
        EXPECT_TRUE(round_trip("UDID-H" + std::to_string(d), false, &why)) << d << ": " << why;
    EXPECT_TRUE(await_servers([](const auto& s) {
        return s.count("courier2") && s.at("courier2").status.rfind("DOWN", 0) == 0;
    })) << haproxy_->output();
    for (int d = 0; d < kDevices; ++d)
        EXPECT_TRUE(round_trip("UDID-H" + std::to_string(d), false, &why)) << d << ": " << why;
    EXPECT_EQ(db_->query("SELECT count(*) FROM timeline WHERE kind = 'report'"),
              std::to_string(3 * kDevices));
}

}  // namespace
}  // namespace courier
