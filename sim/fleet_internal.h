// The fleet simulator's parts (`courier simulate`, sim/fleet.h), shared by
// its files: the fleet and its workers (fleet.cc), set-up (fleet_setup.cc),
// the scenarios (fleet_scenarios.cc) and the command line (simulate_cli.cc).
#pragma once

#include <CLI/CLI.hpp>
#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "apns/fake/fake_apns.h"
#include "certs/pkcs.h"
#include "common/status.h"
#include "server/client/admin_client.h"
#include "sim/device.h"

namespace courier::sim::fleet {

namespace fs = std::filesystem;
namespace json = boost::json;
using Steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

double ms_between(Steady::time_point a, Steady::time_point b);

// Set by SIGINT/SIGTERM (simulate_cli.cc): every loop ends early.
extern std::atomic<bool> g_interrupted;

struct Options {
    std::string scenario = "run";
    std::string url = "https://localhost:8443";
    std::string data_dir = "./courier-data";
    std::string ca_file;  // server TLS trust; default <data-dir>/tls/ca.crt
    std::string api_key;  // default <data-dir>/api-key
    std::string topic;
    bool import_push_cert = false;
    int devices = 100;
    int connections = 32;
    std::string auth = "tls";  // tls | signature
    std::string udid_prefix;   // default SIM-<random>-
    std::string apns_listen, apns_cert, apns_key;
    double duration_s = 10;
    int poll_ms = 0;
    double notnow_share = 0, error_share = 0;
    int notnow_retry_ms = 1000;
    int commands_per_device = 10;
    int repeats = 50;
    std::string wrk_script;
    bool json = false;
    bool quiet = false;
    long timeout_ms = 30000;
};

// The file's bytes, or empty when it cannot be read.
std::string read_text(const fs::path& p);
std::string trim(std::string s);

// ---------------------------------------------------------------- admin API

// The admin API through the one admin-API client (server/client/).
using Api = client::AdminClient;

// ---------------------------------------------------------------- statistics

struct Percentiles {
    size_t n = 0;
    double p50 = 0, p90 = 0, p99 = 0, max = 0, mean = 0;
};

Percentiles percentiles(std::vector<double> v);
json::object to_json(const Percentiles& p);

// ---------------------------------------------------------------- devices

struct FleetDevice {
    std::unique_ptr<SimDevice> dev;
    certs::Identity identity;
    std::string udid;
    std::atomic<int64_t> push_at_ns{0};  // steady time of the last push not yet served
};

// ---------------------------------------------------------------- the fleet

struct Counters {
    std::atomic<uint64_t> requests{0}, transport_errors{0}, http_errors{0};
    std::atomic<uint64_t> commands{0}, acknowledged{0}, notnow{0}, errors{0}, pushes{0};
};

class Fleet;

class Worker {
  public:
    explicit Worker(Fleet& f) : fleet_(f) {}
    void add_device(size_t d) { devices_.push_back(d); }
    const std::vector<size_t>& devices() const { return devices_; }

    void wake(size_t d) {
        {
            std::lock_guard lk(mu_);
            wakes_.push_back(d);
        }
        cv_.notify_one();
    }
    void stop() {
        {
            std::lock_guard lk(mu_);
            stop_ = true;
        }
        cv_.notify_one();
    }

    // Serves pushes, NotNow retries and polls until stop().
    void serve(int poll_ms, Steady::time_point start);
    // One check-in: Idle, then every command handed out until none.
    // Returns false when a request failed. *notnow: a NotNow was answered;
    // *handled (optional): commands handed out.
    bool session(size_t d, bool* notnow, size_t* handled = nullptr);
    std::vector<double>& latencies() { return latencies_; }
    std::vector<double>& push_to_ack() { return push_to_ack_; }

  private:
    Fleet& fleet_;
    std::vector<size_t> devices_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<size_t> wakes_;
    bool stop_ = false;
    std::vector<double> latencies_;    // every request, ms
    std::vector<double> push_to_ack_;  // push at the fake → command acknowledged, ms
};

class Fleet {
  public:
    explicit Fleet(Options o) : opt(std::move(o)) {}

    Options opt;
    Counters count;
    std::vector<std::unique_ptr<FleetDevice>> devices;
    std::vector<std::unique_ptr<Worker>> workers;
    std::unordered_map<std::string, size_t> by_token;  // hex token → device
    std::unique_ptr<apns::FakeApns> apns;

    // Acknowledgements by command UUID, for the wake scenario.
    std::mutex ack_mu;
    std::condition_variable ack_cv;
    bool track_acks = false;
    std::unordered_map<std::string, std::vector<Steady::time_point>> acks;

    void record_ack(const std::string& uuid) {
        if (!track_acks) return;
        {
            std::lock_guard lk(ack_mu);
            acks[uuid].push_back(Steady::now());
        }
        ack_cv.notify_all();
    }

    // Runs fn(worker) on one thread per worker and joins them.
    template <class Fn>
    void on_workers(Fn fn) {
        std::vector<std::thread> ts;
        for (auto& w : workers) ts.emplace_back([&fn, &w] { fn(*w); });
        for (auto& t : ts) t.join();
    }
};

// ---------------------------------------------------------------- set-up (fleet_setup.cc)

// POST /v1/commands; the command UUID or empty (after printing why).
std::string post_command(Api& api, const std::vector<std::string>& targets,
                         const std::string& request_type, bool push);
Status resolve_topic(Fleet& f, Api& api);
Status make_devices(Fleet& f);
Result<double> enroll(Fleet& f);
Status start_fake_apns(Fleet& f);
void write_wrk_script(Fleet& f);

// ---------------------------------------------------------------- progress

class Progress {
  public:
    Progress(Fleet& f, bool on) : f_(f) {
        if (!on) return;
        t_ = std::thread([this] {
            auto start = Steady::now();
            uint64_t last = 0;
            std::unique_lock lk(mu_);
            while (!cv_.wait_for(lk, std::chrono::seconds(1), [this] { return done_; })) {
                uint64_t req = f_.count.requests;
                std::fprintf(stderr,
                             "[%5.0fs] requests %llu (%llu/s) commands %llu acknowledged %llu "
                             "notnow %llu error %llu pushes %llu failures %llu\n",
                             ms_between(start, Steady::now()) / 1000,
                             static_cast<unsigned long long>(req),
                             static_cast<unsigned long long>(req - last),
                             static_cast<unsigned long long>(f_.count.commands.load()),
                             static_cast<unsigned long long>(f_.count.acknowledged.load()),
                             static_cast<unsigned long long>(f_.count.notnow.load()),
                             static_cast<unsigned long long>(f_.count.errors.load()),
                             static_cast<unsigned long long>(f_.count.pushes.load()),
                             static_cast<unsigned long long>(f_.count.http_errors.load() +
                                                             f_.count.transport_errors.load()));
                last = req;
            }
        });
    }
    ~Progress() {
        if (!t_.joinable()) return;
        {
            std::lock_guard lk(mu_);
            done_ = true;
        }
        cv_.notify_all();
        t_.join();
    }

  private:
    Fleet& f_;
    std::thread t_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool done_ = false;
};

// ---------------------------------------------------------------- scenarios (fleet_scenarios.cc)

std::vector<double> merged_latencies(Fleet& f);
void scenario_idle(Fleet& f, json::object& out);
bool scenario_drain(Fleet& f, Api& api, json::object& out);
bool scenario_wake(Fleet& f, Api& api, Steady::time_point start, json::object& out);
bool scenario_fanout(Fleet& f, Api& api, json::object& out);
void scenario_run(Fleet& f, Steady::time_point start);

}  // namespace courier::sim::fleet
