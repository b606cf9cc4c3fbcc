#include "sim/fleet.h"

#include <curl/curl.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <queue>
#include <random>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "apns/fake_apns.h"
#include "certs/authority.h"
#include "certs/pkcs.h"
#include "certs/push_cert.h"
#include "common/encoding.h"
#include "sim/device.h"

namespace courier::sim {

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using Steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

double ms_between(Steady::time_point a, Steady::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

std::atomic<bool> g_interrupted{false};
extern "C" void on_sigint(int) {
    g_interrupted = true;
}

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

std::string read_text(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
    return s;
}

// ---------------------------------------------------------------- admin API

class Api {
  public:
    Api(std::string base, std::string ca, std::string key)
        : base_(std::move(base)), ca_(std::move(ca)), key_(std::move(key)), c_(curl_easy_init()) {}
    ~Api() { curl_easy_cleanup(c_); }
    Api(const Api&) = delete;
    Api& operator=(const Api&) = delete;

    HttpReply call(const std::string& method, const std::string& path, const std::string& body = {},
                   long timeout_ms = 120000) {
        HttpReply r;
        curl_easy_reset(c_);
        char err[CURL_ERROR_SIZE] = {0};
        std::string url = base_ + path;
        curl_easy_setopt(c_, CURLOPT_URL, url.c_str());
        curl_easy_setopt(c_, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c_, CURLOPT_TIMEOUT_MS, timeout_ms);
        curl_easy_setopt(c_, CURLOPT_ERRORBUFFER, err);
        curl_easy_setopt(
            c_, CURLOPT_WRITEFUNCTION, +[](char* p, size_t s, size_t n, void* ud) {
                static_cast<std::string*>(ud)->append(p, s * n);
                return s * n;
            });
        curl_easy_setopt(c_, CURLOPT_WRITEDATA, &r.body);
        if (!ca_.empty()) curl_easy_setopt(c_, CURLOPT_CAINFO, ca_.c_str());
        curl_easy_setopt(c_, CURLOPT_CUSTOMREQUEST, method.c_str());
        if (method != "GET") {
            curl_easy_setopt(c_, CURLOPT_POSTFIELDS, body.data());
            curl_easy_setopt(c_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
        }
        curl_slist* h = nullptr;
        std::string auth = "Authorization: Bearer " + key_;
        h = curl_slist_append(h, auth.c_str());
        h = curl_slist_append(h, "Expect:");
        curl_easy_setopt(c_, CURLOPT_HTTPHEADER, h);
        CURLcode rc = curl_easy_perform(c_);
        curl_slist_free_all(h);
        if (rc != CURLE_OK)
            r.error = err[0] ? err : curl_easy_strerror(rc);
        else
            curl_easy_getinfo(c_, CURLINFO_RESPONSE_CODE, &r.status);
        return r;
    }

  private:
    std::string base_, ca_, key_;
    CURL* c_;
};

// ---------------------------------------------------------------- statistics

struct Percentiles {
    size_t n = 0;
    double p50 = 0, p90 = 0, p99 = 0, max = 0, mean = 0;
};

Percentiles percentiles(std::vector<double> v) {
    Percentiles p;
    p.n = v.size();
    if (v.empty()) return p;
    std::sort(v.begin(), v.end());
    auto at = [&](double q) {
        size_t i = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
        return v[std::min(i, v.size() - 1)];
    };
    p.p50 = at(0.50);
    p.p90 = at(0.90);
    p.p99 = at(0.99);
    p.max = v.back();
    double sum = 0;
    for (double x : v) sum += x;
    p.mean = sum / static_cast<double>(v.size());
    return p;
}

json::object to_json(const Percentiles& p) {
    auto r = [](double x) { return std::round(x * 1000) / 1000; };
    return {{"n", p.n},        {"p50", r(p.p50)}, {"p90", r(p.p90)},
            {"p99", r(p.p99)}, {"max", r(p.max)}, {"mean", r(p.mean)}};
}

// ---------------------------------------------------------------- devices

struct FleetDevice {
    std::unique_ptr<SimDevice> dev;
    certs::Identity identity;
    std::string udid;
    std::atomic<int64_t> push_at_ns{0};  // steady time of the last push not yet served
};

// Replies a device gives to the commands the simulator knows; any other
// command is simply Acknowledged.
plist::Dict reply_for(const ReceivedCommand& c, const FleetDevice& d) {
    plist::Dict extra;
    const std::string& rt = c.request_type;
    if (rt == "DeviceInformation") {
        plist::Dict q;
        q.set("UDID", d.udid);
        q.set("DeviceName",
              "Simulated iPhone " + d.udid.substr(d.udid.size() > 6 ? d.udid.size() - 6 : 0));
        q.set("SerialNumber", d.dev->config().serial_number);
        q.set("ProductName", "iPhone15,2");
        q.set("Model", "MQ0G3");
        q.set("OSVersion", "18.1");
        q.set("BuildVersion", "22B83");
        q.set("IsSupervised", true);
        q.set("BatteryLevel", 0.83);
        q.set("DeviceCapacity", 238.42);
        extra.set("QueryResponses", std::move(q));
    } else if (rt == "ProfileList") {
        plist::Array list;
        for (int i = 0; i < 3; ++i) {
            plist::Dict p;
            p.set("PayloadIdentifier", "com.example.profile." + std::to_string(i));
            p.set("PayloadDisplayName", "Example profile " + std::to_string(i));
            p.set("PayloadUUID", random_uuid());
            p.set("PayloadVersion", 1);
            p.set("IsManaged", true);
            list.emplace_back(std::move(p));
        }
        extra.set("ProfileList", std::move(list));
    } else if (rt == "SecurityInfo") {
        plist::Dict s;
        s.set("HardwareEncryptionCaps", 3);
        s.set("PasscodePresent", true);
        s.set("PasscodeCompliant", true);
        s.set("PasscodeCompliantWithProfiles", true);
        extra.set("SecurityInfo", std::move(s));
    } else if (rt == "InstalledApplicationList") {
        plist::Array apps;
        const char* names[][2] = {{"com.apple.mobilesafari", "Safari"},
                                  {"com.example.mail", "Example Mail"},
                                  {"com.example.vpn", "Example VPN"}};
        for (const auto& n : names) {
            plist::Dict a;
            a.set("Identifier", n[0]);
            a.set("Name", n[1]);
            a.set("ShortVersion", "2.4");
            a.set("Version", "240");
            a.set("BundleSize", int64_t{48'211'968});
            apps.emplace_back(std::move(a));
        }
        extra.set("InstalledApplicationList", std::move(apps));
    }
    return extra;
}

plist::Dict error_chain() {
    plist::Dict e;
    e.set("ErrorCode", 12021);
    e.set("ErrorDomain", "MCMDMErrorDomain");
    e.set("LocalizedDescription", "Simulated failure");
    plist::Dict d;
    d.set("ErrorChain", plist::Array{plist::Value(std::move(e))});
    return d;
}

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

bool Worker::session(size_t d, bool* notnow, size_t* handled) {
    if (handled) *handled = 0;
    FleetDevice& fd = *fleet_.devices[d];
    thread_local std::mt19937_64 rng{std::random_device{}()};
    std::uniform_real_distribution<double> coin(0, 1);
    std::optional<ReceivedCommand> next;
    auto t0 = Steady::now();
    HttpReply r = fd.dev->idle(&next);
    latencies_.push_back(ms_between(t0, Steady::now()));
    fleet_.count.requests++;
    if (!r.error.empty() || r.status != 200) {
        (r.error.empty() ? fleet_.count.http_errors : fleet_.count.transport_errors)++;
        if (!fleet_.opt.quiet)
            std::cerr << "simulate: " << fd.udid << " Idle: "
                      << (r.error.empty() ? std::to_string(r.status) + " " + r.body : r.error)
                      << "\n";
        return false;
    }
    int64_t pushed = fd.push_at_ns.exchange(0);
    while (next) {
        ReceivedCommand cmd = std::move(*next);
        fleet_.count.commands++;
        if (handled) ++*handled;
        double roll = coin(rng);
        std::string status = "Acknowledged";
        plist::Dict extra;
        if (roll < fleet_.opt.notnow_share) {
            status = "NotNow";
            *notnow = true;
            fleet_.count.notnow++;
        } else if (roll < fleet_.opt.notnow_share + fleet_.opt.error_share) {
            status = "Error";
            extra = error_chain();
            fleet_.count.errors++;
        } else {
            extra = reply_for(cmd, fd);
        }
        t0 = Steady::now();
        r = fd.dev->report(status, cmd.uuid, &next, std::move(extra));
        auto t1 = Steady::now();
        latencies_.push_back(ms_between(t0, t1));
        fleet_.count.requests++;
        if (!r.error.empty() || r.status != 200) {
            (r.error.empty() ? fleet_.count.http_errors : fleet_.count.transport_errors)++;
            if (!fleet_.opt.quiet)
                std::cerr << "simulate: " << fd.udid << " " << status << ": "
                          << (r.error.empty() ? std::to_string(r.status) + " " + r.body : r.error)
                          << "\n";
            return false;
        }
        if (status == "Acknowledged") {
            fleet_.count.acknowledged++;
            if (pushed)
                push_to_ack_.push_back(
                    ms_between(Steady::time_point(std::chrono::nanoseconds(pushed)), t1));
            fleet_.record_ack(cmd.uuid);
        }
    }
    return true;
}

void Worker::serve(int poll_ms, Steady::time_point start) {
    using Due = std::pair<Steady::time_point, size_t>;
    std::priority_queue<Due, std::vector<Due>, std::greater<>> timers;
    if (poll_ms > 0) {
        // Polls are spread over the interval so the fleet does not knock at once.
        for (size_t i = 0; i < devices_.size(); ++i)
            timers.push({start + milliseconds(poll_ms) * (i + 1) / devices_.size(), devices_[i]});
    }
    std::unique_lock lk(mu_);
    while (!stop_) {
        if (wakes_.empty()) {
            if (timers.empty())
                cv_.wait(lk, [&] { return stop_ || !wakes_.empty(); });
            else
                cv_.wait_until(lk, timers.top().first, [&] { return stop_ || !wakes_.empty(); });
        }
        if (stop_) break;
        std::vector<size_t> due;
        while (!wakes_.empty()) {
            due.push_back(wakes_.front());
            wakes_.pop_front();
        }
        auto now = Steady::now();
        while (!timers.empty() && timers.top().first <= now) {
            size_t d = timers.top().second;
            timers.pop();
            due.push_back(d);
            if (poll_ms > 0) timers.push({now + milliseconds(poll_ms), d});
        }
        lk.unlock();
        std::sort(due.begin(), due.end());
        due.erase(std::unique(due.begin(), due.end()), due.end());
        for (size_t d : due) {
            bool notnow = false;
            session(d, &notnow);
            if (notnow) timers.push({Steady::now() + milliseconds(fleet_.opt.notnow_retry_ms), d});
        }
        lk.lock();
    }
}

// ---------------------------------------------------------------- set-up

std::string command_json(const std::vector<std::string>& targets, const std::string& request_type,
                         bool push) {
    json::object cmd{{"RequestType", request_type}};
    if (request_type == "DeviceInformation")
        cmd["Queries"] = json::array{"DeviceName", "OSVersion", "SerialNumber", "BatteryLevel"};
    if (request_type == "DeviceLock") cmd["Message"] = "Simulated lost-mode drill";
    json::array t;
    for (const auto& id : targets) t.emplace_back(id);
    return json::serialize(
        json::object{{"targets", std::move(t)}, {"command", std::move(cmd)}, {"push", push}});
}

// POST /v1/commands; the command UUID or empty (after printing why).
std::string post_command(Api& api, const std::vector<std::string>& targets,
                         const std::string& request_type, bool push) {
    auto r = api.call("POST", "/v1/commands", command_json(targets, request_type, push));
    if (r.status != 201) {
        std::cerr << "simulate: POST /v1/commands: "
                  << (r.error.empty() ? std::to_string(r.status) + " " + r.body : r.error) << "\n";
        return {};
    }
    boost::system::error_code ec;
    auto v = json::parse(r.body, ec);
    if (ec || !v.is_object() || !v.as_object().contains("command_uuid")) return {};
    return std::string(v.as_object().at("command_uuid").as_string());
}

Status resolve_topic(Fleet& f, Api& api) {
    if (!f.opt.topic.empty() && !f.opt.import_push_cert) return Status::ok();
    auto r = api.call("GET", "/v1/pushcert");
    if (r.status != 200)
        return invalid("GET /v1/pushcert: " +
                       (r.error.empty() ? std::to_string(r.status) + " " + r.body : r.error) +
                       " (give --topic, or the API key with --api-key)");
    boost::system::error_code ec;
    auto v = json::parse(r.body, ec);
    std::vector<std::string> topics;
    if (!ec && v.is_object() && v.as_object().contains("certs"))
        for (const auto& c : v.as_object().at("certs").as_array())
            topics.emplace_back(c.as_object().at("topic").as_string());
    if (f.opt.topic.empty() && !topics.empty()) {
        f.opt.topic = topics.front();
        return Status::ok();
    }
    if (!f.opt.import_push_cert)
        return invalid(
            "the server has no push certificate: import one, or pass --import-push-cert");
    if (f.opt.topic.empty())
        f.opt.topic = "com.apple.mgmt.External.5e1f5e1f-0000-4000-8000-00000000c0de";
    if (std::find(topics.begin(), topics.end(), f.opt.topic) != topics.end()) return Status::ok();
    auto id = certs::make_self_signed_push_identity(f.opt.topic, -std::chrono::hours(1),
                                                    std::chrono::days(365));
    if (!id) return id.status();
    auto put = api.call("PUT", "/v1/pushcert",
                        certs::cert_to_pem(id->cert.get()) + certs::key_to_pem(id->key.get()));
    if (put.status != 200)
        return invalid("importing a push certificate: " + std::to_string(put.status) + " " +
                       put.body + put.error);
    return Status::ok();
}

Status make_devices(Fleet& f) {
    fs::path dir = f.opt.data_dir;
    if (!fs::exists(dir / "enrollment-ca.crt") || !fs::exists(dir / "enrollment-ca.key"))
        return invalid("no enrollment CA in " + dir.string() +
                       " (enrollment-ca.crt/.key): run beside the server's --data-dir");
    auto ca = certs::CertificateAuthority::load_or_create(dir, "enrollment-ca", "unused");
    if (!ca) return ca.status();
    std::string prefix = f.opt.udid_prefix;
    if (prefix.empty()) prefix = "SIM-" + hex_encode(random_bytes(3)) + "-";
    f.devices.resize(static_cast<size_t>(f.opt.devices));
    size_t nw = f.workers.size();
    for (size_t i = 0; i < f.devices.size(); ++i) f.workers[i % nw]->add_device(i);
    std::atomic<bool> failed{false};
    std::string failure;
    std::mutex fmu;
    // Identities are made on every worker thread: P-256 keys, ~0.2 ms each.
    f.on_workers([&](Worker& w) {
        std::shared_ptr<Connection> shared;
        if (f.opt.auth == "signature") shared = std::make_shared<Connection>();
        for (size_t d : w.devices()) {
            auto fd = std::make_unique<FleetDevice>();
            char num[16];
            std::snprintf(num, sizeof num, "%07zu", d);
            fd->udid = prefix + num;
            auto id = ca->issue({.common_name = fd->udid, .ec_key = true});
            if (!id) {
                std::lock_guard lk(fmu);
                failure = id.status().message();
                failed = true;
                return;
            }
            DeviceConfig cfg;
            cfg.server_url = f.opt.url;
            cfg.ca_file = f.opt.ca_file;
            cfg.identity_cert_pem = certs::cert_to_pem(id->cert.get());
            cfg.identity_key_pem = certs::key_to_pem(id->key.get());
            cfg.auth =
                f.opt.auth == "signature" ? AuthMode::kMdmSignature : AuthMode::kTlsClientCert;
            cfg.udid = fd->udid;
            cfg.topic = f.opt.topic;
            cfg.serial_number = "SIM" + std::string(num);
            cfg.timeout_ms = f.opt.timeout_ms;
            cfg.connection = shared;
            fd->identity = std::move(*id);
            fd->dev = std::make_unique<SimDevice>(std::move(cfg));
            f.devices[d] = std::move(fd);
        }
    });
    if (failed) return internal_error("issuing device identities: " + failure);
    for (size_t i = 0; i < f.devices.size(); ++i) f.by_token[f.devices[i]->dev->token_hex()] = i;
    return Status::ok();
}

// Authenticate + TokenUpdate for every device; seconds taken, or an error.
Result<double> enroll(Fleet& f) {
    auto t0 = Steady::now();
    std::atomic<uint64_t> failures{0};
    f.on_workers([&](Worker& w) {
        for (size_t d : w.devices()) {
            FleetDevice& fd = *f.devices[d];
            for (int step = 0; step < 2; ++step) {
                auto s0 = Steady::now();
                HttpReply r = step == 0 ? fd.dev->authenticate() : fd.dev->token_update();
                w.latencies().push_back(ms_between(s0, Steady::now()));
                f.count.requests++;
                if (!r.error.empty() || r.status != 200) {
                    if (failures++ < 5)
                        std::cerr << "simulate: enrolling " << fd.udid << ": "
                                  << (r.error.empty() ? std::to_string(r.status) + " " + r.body
                                                      : r.error)
                                  << "\n";
                    (r.error.empty() ? f.count.http_errors : f.count.transport_errors)++;
                    break;
                }
            }
        }
    });
    double secs = ms_between(t0, Steady::now()) / 1000;
    if (failures) return invalid(std::to_string(failures.load()) + " devices failed to enroll");
    return secs;
}

Status start_fake_apns(Fleet& f) {
    if (f.opt.apns_listen.empty()) return Status::ok();
    if (f.opt.apns_cert.empty() || f.opt.apns_key.empty())
        return invalid(
            "--apns-listen needs --apns-cert and --apns-key (the server trusts them "
            "through its --apns-ca)");
    apns::FakeApnsOptions o;
    o.listen = f.opt.apns_listen;
    o.cert_pem = read_text(f.opt.apns_cert);
    o.key_pem = read_text(f.opt.apns_key);
    o.client_cert = apns::FakeApnsOptions::ClientCert::kOptional;
    auto fake = apns::FakeApns::start(o);
    if (!fake) return fake.status();
    f.apns = std::move(*fake);
    f.apns->on_push([&f](const apns::FakeApnsRequest& req) {
        f.count.pushes++;
        auto it = f.by_token.find(req.token);
        if (it == f.by_token.end()) return;
        FleetDevice& fd = *f.devices[it->second];
        int64_t now_ns =
            std::chrono::duration_cast<std::chrono::nanoseconds>(Steady::now().time_since_epoch())
                .count();
        int64_t expected = 0;
        fd.push_at_ns.compare_exchange_strong(expected, now_ns);
        f.workers[it->second % f.workers.size()]->wake(it->second);
    });
    return Status::ok();
}

void write_wrk_script(Fleet& f) {
    std::ofstream out(f.opt.wrk_script);
    out << "-- Generated by `courier simulate --wrk-script`: " << f.devices.size()
        << " enrolled devices' Idle reports, each signed (Mdm-Signature).\n"
           "local bodies, sigs = {}, {}\n";
    for (const auto& fd : f.devices) {
        plist::Dict d;
        d.set("UDID", fd->udid);
        d.set("Status", "Idle");
        std::string body = plist::write_xml(plist::Value(std::move(d)));
        auto sig = certs::make_mdm_signature(body, fd->identity);
        if (!sig) continue;
        out << "bodies[#bodies+1] = [==[" << body << "]==]\nsigs[#sigs+1] = \"" << *sig << "\"\n";
    }
    out << R"(local n = 0
request = function()
  n = n % #bodies + 1
  return wrk.format("PUT", "/mdm", {["Content-Type"] = "application/x-apple-aspen-mdm; charset=UTF-8",
                                   ["Mdm-Signature"] = sigs[n]}, bodies[n])
end
)";
}

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

// ---------------------------------------------------------------- scenarios

std::vector<std::string> all_ids(const Fleet& f) {
    std::vector<std::string> ids;
    ids.reserve(f.devices.size());
    for (const auto& d : f.devices) ids.push_back(d->udid);
    return ids;
}

std::vector<double> merged_latencies(Fleet& f) {
    std::vector<double> all;
    for (auto& w : f.workers) {
        all.insert(all.end(), w->latencies().begin(), w->latencies().end());
        w->latencies().clear();
    }
    return all;
}

bool wait_until(const std::function<bool()>& pred, milliseconds timeout) {
    auto deadline = Steady::now() + timeout;
    while (!pred()) {
        if (Steady::now() > deadline || g_interrupted) return false;
        std::this_thread::sleep_for(milliseconds(2));
    }
    return true;
}

// Idle check-ins back to back on every worker until the deadline.
void scenario_idle(Fleet& f, json::object& out) {
    auto deadline = Steady::now() + std::chrono::duration<double>(f.opt.duration_s);
    uint64_t before = f.count.requests;
    auto t0 = Steady::now();
    f.on_workers([&](Worker& w) {
        size_t i = 0;
        while (Steady::now() < deadline && !g_interrupted && !w.devices().empty()) {
            bool notnow = false;
            w.session(w.devices()[i++ % w.devices().size()], &notnow);
        }
    });
    double secs = ms_between(t0, Steady::now()) / 1000;
    uint64_t n = f.count.requests - before;
    out["idle"] = json::object{{"requests", n},
                               {"seconds", secs},
                               {"per_second", static_cast<double>(n) / secs},
                               {"latency_ms", to_json(percentiles(merged_latencies(f)))}};
}

// Queue commands without push, then drain them with Idle/Acknowledged.
bool scenario_drain(Fleet& f, Api& api, json::object& out) {
    const char* types[] = {"DeviceInformation", "ProfileList", "SecurityInfo",
                           "InstalledApplicationList"};
    auto ids = all_ids(f);
    auto q0 = Steady::now();
    for (int i = 0; i < f.opt.commands_per_device; ++i)
        if (post_command(api, ids, types[i % 4], false).empty()) return false;
    double enqueue_s = ms_between(q0, Steady::now()) / 1000;
    uint64_t acked0 = f.count.acknowledged, errors0 = f.count.errors, req0 = f.count.requests;
    auto t0 = Steady::now();
    f.on_workers([&](Worker& w) {
        for (size_t d : w.devices()) {
            // NotNow'd commands come back at the next Idle: check in again
            // until an Idle is answered with nothing.
            for (int round = 0; round < 1000 && !g_interrupted; ++round) {
                bool notnow = false;
                size_t handled = 0;
                if (!w.session(d, &notnow, &handled) || handled == 0) break;
            }
        }
    });
    double secs = ms_between(t0, Steady::now()) / 1000;
    uint64_t handled = f.count.acknowledged - acked0;
    uint64_t requests = f.count.requests - req0;
    size_t queued = static_cast<size_t>(f.opt.commands_per_device) * f.devices.size();
    out["drain"] = json::object{
        {"queued", queued},
        {"enqueue_seconds", enqueue_s},
        {"acknowledged", handled},
        {"requests", requests},
        {"seconds", secs},
        {"round_trips_per_second", static_cast<double>(f.count.commands.load()) / secs},
        {"requests_per_second", static_cast<double>(requests) / secs},
        {"latency_ms", to_json(percentiles(merged_latencies(f)))}};
    // Every command ends Acknowledged or Error (NotNow'd ones come back).
    return handled + (f.count.errors - errors0) == queued;
}

// Wake-up latency: one device at a time, then the whole fleet at once.
bool scenario_wake(Fleet& f, Api& api, Steady::time_point start, json::object& out) {
    if (!f.apns) {
        std::cerr << "simulate: the wake scenario needs --apns-listen\n";
        return false;
    }
    f.track_acks = true;
    std::thread serving([&] { f.on_workers([&](Worker& w) { w.serve(f.opt.poll_ms, start); }); });
    bool ok = true;
    auto ack_count = [&](const std::string& uuid) {
        std::lock_guard lk(f.ack_mu);
        auto it = f.acks.find(uuid);
        return it == f.acks.end() ? size_t{0} : it->second.size();
    };
    auto wait_acks = [&](const std::string& uuid, size_t n, milliseconds timeout) {
        std::unique_lock lk(f.ack_mu);
        return f.ack_cv.wait_for(lk, timeout, [&] {
            auto it = f.acks.find(uuid);
            return g_interrupted || (it != f.acks.end() && it->second.size() >= n);
        });
    };
    std::vector<double> single;
    std::mt19937_64 rng{std::random_device{}()};
    for (int i = 0; i < f.opt.repeats && ok && !g_interrupted; ++i) {
        size_t d = rng() % f.devices.size();
        auto t0 = Steady::now();
        std::string uuid = post_command(api, {f.devices[d]->udid}, "DeviceInformation", true);
        if (uuid.empty() || !wait_acks(uuid, 1, milliseconds(f.opt.timeout_ms))) {
            std::cerr << "simulate: device " << f.devices[d]->udid << " was not woken\n";
            ok = false;
            break;
        }
        std::lock_guard lk(f.ack_mu);
        single.push_back(ms_between(t0, f.acks[uuid].front()));
    }
    json::object w;
    w["one_device_ms"] = to_json(percentiles(single));
    if (ok && !g_interrupted) {
        auto t0 = Steady::now();
        std::string uuid = post_command(api, all_ids(f), "DeviceInformation", true);
        double answered = ms_between(t0, Steady::now());
        bool all = !uuid.empty() && wait_acks(uuid, f.devices.size(), milliseconds(120000));
        std::vector<double> each;
        {
            std::lock_guard lk(f.ack_mu);
            for (auto t : f.acks[uuid]) each.push_back(ms_between(t0, t));
        }
        auto p = percentiles(each);
        w["fleet"] = json::object{{"devices", f.devices.size()},
                                  {"acknowledged", ack_count(uuid)},
                                  {"api_answer_ms", answered},
                                  {"all_acknowledged_ms", p.max},
                                  {"each_ms", to_json(p)}};
        ok = all;
    }
    for (auto& wk : f.workers) wk->stop();
    serving.join();
    std::vector<double> pa;
    for (auto& wk : f.workers)
        pa.insert(pa.end(), wk->push_to_ack().begin(), wk->push_to_ack().end());
    w["push_to_acknowledged_ms"] = to_json(percentiles(pa));
    out["wake"] = std::move(w);
    return ok;
}

// One DeviceLock to every device: commit time without push, then with push
// until the fake APNs has seen every one. Devices stay asleep.
bool scenario_fanout(Fleet& f, Api& api, json::object& out) {
    auto ids = all_ids(f);
    json::object o{{"targets", ids.size()}};
    auto t0 = Steady::now();
    if (post_command(api, ids, "DeviceLock", false).empty()) return false;
    o["commit_ms"] = ms_between(t0, Steady::now());
    if (f.apns) {
        uint64_t before = f.count.pushes;
        t0 = Steady::now();
        if (post_command(api, ids, "DeviceLock", true).empty()) return false;
        o["push_api_answer_ms"] = ms_between(t0, Steady::now());
        bool all =
            wait_until([&] { return f.count.pushes - before >= ids.size(); }, milliseconds(120000));
        o["all_pushed_ms"] = ms_between(t0, Steady::now());
        o["pushes_seen"] = f.count.pushes - before;
        out["fanout"] = std::move(o);
        return all;
    }
    out["fanout"] = std::move(o);
    return true;
}

void scenario_run(Fleet& f, Steady::time_point start) {
    std::thread serving([&] { f.on_workers([&](Worker& w) { w.serve(f.opt.poll_ms, start); }); });
    // Every device checks in once at start, as after enrollment.
    for (size_t i = 0; i < f.devices.size(); ++i) f.workers[i % f.workers.size()]->wake(i);
    auto deadline = Steady::now() + std::chrono::duration<double>(f.opt.duration_s);
    while (!g_interrupted && (f.opt.duration_s <= 0 || Steady::now() < deadline))
        std::this_thread::sleep_for(milliseconds(50));
    for (auto& w : f.workers) w->stop();
    serving.join();
}

}  // namespace

int run_simulate_cli(int argc, char** argv) {
    Options o;
    CLI::App app{
        "courier simulate: a fleet of simulated devices against a running Courier.\n"
        "Scenarios: run (default), enroll, idle, drain, wake, fanout; see docs/simulator.md."};
    app.name("courier simulate");
    app.add_option("--scenario", o.scenario, "run, enroll, idle, drain, wake or fanout")
        ->check(CLI::IsMember({"run", "enroll", "idle", "drain", "wake", "fanout"}))
        ->capture_default_str();
    app.add_option("--url", o.url, "the server's device and API base URL")->capture_default_str();
    app.add_option("--data-dir", o.data_dir,
                   "the server's data dir: enrollment CA (device identities), tls/ca.crt, api-key")
        ->capture_default_str();
    app.add_option("--ca", o.ca_file,
                   "CA file for the server's TLS (default <data-dir>/tls/ca.crt)");
    app.add_option("--api-key", o.api_key, "API key (default read from <data-dir>/api-key)");
    app.add_option("--topic", o.topic, "push topic (default the server's push certificate's)");
    app.add_flag("--import-push-cert", o.import_push_cert,
                 "import a self-signed push certificate for --topic when none is active "
                 "(for a server that pushes to a fake APNs)");
    app.add_option("--devices,-n", o.devices, "number of devices")
        ->check(CLI::Range(1, 1000000))
        ->capture_default_str();
    app.add_option("--connections,-c", o.connections, "concurrent devices (threads)")
        ->check(CLI::Range(1, 1024))
        ->capture_default_str();
    app.add_option("--auth", o.auth,
                   "tls: each device its own TLS client identity and connection; signature: "
                   "Mdm-Signature header, a connection per thread")
        ->check(CLI::IsMember({"tls", "signature"}))
        ->capture_default_str();
    app.add_option("--udid-prefix", o.udid_prefix, "UDID prefix (default SIM-<random>-)");
    app.add_option("--apns-listen", o.apns_listen,
                   "run a fake APNs on HOST:PORT; devices wake when it receives their push "
                   "(start the server with --apns-url https://HOST:PORT --apns-ca CERT)");
    app.add_option("--apns-cert", o.apns_cert, "the fake APNs' TLS certificate (PEM file)");
    app.add_option("--apns-key", o.apns_key, "the fake APNs' TLS key (PEM file)");
    app.add_option("--duration", o.duration_s, "seconds for run and idle (run: 0 = until Ctrl-C)")
        ->capture_default_str();
    app.add_option("--poll-ms", o.poll_ms,
                   "each device also checks in every N ms (0: only on push)")
        ->capture_default_str();
    app.add_option("--notnow-share", o.notnow_share, "share of commands answered NotNow (0..1)")
        ->check(CLI::Range(0.0, 0.9))
        ->capture_default_str();
    app.add_option("--error-share", o.error_share, "share of commands answered Error (0..1)")
        ->check(CLI::Range(0.0, 1.0))
        ->capture_default_str();
    app.add_option("--notnow-retry-ms", o.notnow_retry_ms,
                   "a device that said NotNow checks in again after this long")
        ->capture_default_str();
    app.add_option("--commands-per-device", o.commands_per_device,
                   "drain: commands queued per device")
        ->check(CLI::Range(1, 100000))
        ->capture_default_str();
    app.add_option("--repeats", o.repeats, "wake: single-device wake-ups measured")
        ->capture_default_str();
    app.add_option("--wrk-script", o.wrk_script,
                   "after enrolling, write a wrk Lua script of the devices' signed Idle reports");
    app.add_option("--timeout-ms", o.timeout_ms, "per request")->capture_default_str();
    app.add_flag("--json", o.json, "print the summary as JSON");
    app.add_flag("--quiet,-q", o.quiet, "no progress lines");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int rc = app.exit(e);
        return rc == 0 ? 0 : 2;
    }
    if (o.error_share + o.notnow_share > 1) {
        std::cerr << "courier simulate: --notnow-share + --error-share must not exceed 1\n";
        return 2;
    }
    fs::path dd = o.data_dir;
    if (o.ca_file.empty() && fs::exists(dd / "tls" / "ca.crt")) o.ca_file = dd / "tls" / "ca.crt";
    if (o.api_key.empty() && fs::exists(dd / "api-key"))
        o.api_key = trim(read_text(dd / "api-key"));
    if (o.connections > o.devices) o.connections = o.devices;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_sigint);
    signal(SIGTERM, on_sigint);

    Fleet f(o);
    Api api(o.url, o.ca_file, o.api_key);
    for (int i = 0; i < o.connections; ++i) f.workers.push_back(std::make_unique<Worker>(f));

    auto fail = [](const std::string& m) {
        std::cerr << "courier simulate: " << m << "\n";
        return 1;
    };
    if (auto s = resolve_topic(f, api); !s) return fail(s.message());
    if (auto s = make_devices(f); !s) return fail(s.message());
    if (auto s = start_fake_apns(f); !s) return fail("fake APNs: " + s.message());

    json::object out{{"scenario", o.scenario},
                     {"devices", o.devices},
                     {"connections", o.connections},
                     {"auth", o.auth},
                     {"url", o.url}};
    bool ok = true;
    {
        Progress progress(f, !o.quiet && !o.json);
        auto enrolled = enroll(f);
        if (!enrolled) return fail(enrolled.status().message());
        auto lat = percentiles(merged_latencies(f));
        out["enroll"] = json::object{{"devices", o.devices},
                                     {"seconds", *enrolled},
                                     {"per_second", o.devices / *enrolled},
                                     {"request_latency_ms", to_json(lat)}};
        if (!o.wrk_script.empty()) write_wrk_script(f);
        auto start = Steady::now();
        if (o.scenario == "idle") scenario_idle(f, out);
        if (o.scenario == "drain") ok = scenario_drain(f, api, out);
        if (o.scenario == "wake") ok = scenario_wake(f, api, start, out);
        if (o.scenario == "fanout") ok = scenario_fanout(f, api, out);
        if (o.scenario == "run") {
            scenario_run(f, start);
            double secs = ms_between(start, Steady::now()) / 1000;
            out["run"] = json::object{{"seconds", secs},
                                      {"latency_ms", to_json(percentiles(merged_latencies(f)))}};
        }
    }
    out["totals"] = json::object{{"requests", f.count.requests.load()},
                                 {"commands", f.count.commands.load()},
                                 {"acknowledged", f.count.acknowledged.load()},
                                 {"notnow", f.count.notnow.load()},
                                 {"error", f.count.errors.load()},
                                 {"pushes_received", f.count.pushes.load()},
                                 {"http_errors", f.count.http_errors.load()},
                                 {"transport_errors", f.count.transport_errors.load()}};
    if (f.count.http_errors || f.count.transport_errors) ok = false;
    out["ok"] = ok;
    if (o.json) {
        std::cout << json::serialize(out) << "\n";
    } else {
        std::cout << "courier simulate — " << o.scenario << ", " << o.devices << " devices, "
                  << o.connections << " connections, auth " << o.auth << "\n";
        std::function<void(const json::object&, const std::string&)> show =
            [&](const json::object& obj, const std::string& indent) {
                for (const auto& [k, v] : obj) {
                    if (v.is_object()) {
                        std::cout << indent << std::string(k) << ":\n";
                        show(v.as_object(), indent + "  ");
                    } else if (v.is_double()) {
                        std::printf("%s%s: %.3f\n", indent.c_str(), std::string(k).c_str(),
                                    v.as_double());
                        std::fflush(stdout);
                    } else {
                        std::cout << indent << std::string(k) << ": " << json::serialize(v) << "\n";
                    }
                }
            };
        show(out, "  ");
    }
    if (f.apns) f.apns.reset();
    return ok ? 0 : 1;
}

}  // namespace courier::sim
