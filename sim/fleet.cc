// The fleet's devices and workers: check-in sessions, command replies,
// serving pushes and polls (sim/fleet_internal.h).
#include <algorithm>
#include <cmath>
#include <queue>
#include <random>

#include "common/encoding.h"
#include "common/file_io.h"
#include "sim/fleet_internal.h"

namespace courier::sim::fleet {

double ms_between(Steady::time_point a, Steady::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

std::atomic<bool> g_interrupted{false};

// The file's bytes, or empty when it cannot be read.
std::string read_text(const fs::path& p) {
    auto r = read_file(p);
    return r ? *r : std::string();
}

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
    return s;
}

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

namespace {

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

}  // namespace

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

}  // namespace courier::sim::fleet
