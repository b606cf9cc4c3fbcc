// The scenarios (sim/fleet.h): idle, drain, wake, fanout, run.
#include <algorithm>
#include <random>

#include "sim/fleet_internal.h"

namespace courier::sim::fleet {

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

}  // namespace courier::sim::fleet
