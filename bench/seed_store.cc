// Fills a Courier database through the storage interface (benchmark E):
// --enrollments devices, each enrolled (Authenticate + TokenUpdate), and
// --commands single-target commands queued round-robin across them. Writes
// come from --threads threads so the store's group commit batches them, as
// it does for concurrent HTTP requests.
//
//   seed_store --data-dir DIR --enrollments 100000 --commands 1000000
#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/encoding.h"
#include "common/plist/plist.h"
#include "db/open.h"

using namespace courier;

int main(int argc, char** argv) {
    std::string data_dir;
    std::string topic = "com.apple.mgmt.External.5e1f5e1f-0000-4000-8000-00000000c0de";
    std::string prefix = "SEED-";
    size_t enrollments = 100000, commands = 1000000;
    int threads = 16;
    CLI::App app{"Seeds a Courier data dir's database through the storage interface."};
    app.add_option("--data-dir", data_dir, "the server's data dir")->required();
    app.add_option("--enrollments", enrollments)->capture_default_str();
    app.add_option("--commands", commands, "single-target commands, queued")->capture_default_str();
    app.add_option("--threads", threads)->capture_default_str();
    app.add_option("--topic", topic)->capture_default_str();
    app.add_option("--prefix", prefix, "UDID prefix")->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    auto store = db::open_store("", data_dir);
    if (!store) {
        std::cerr << "seed_store: " << store.status().message() << "\n";
        return 1;
    }
    db::Store& s = **store;
    auto udid = [&](size_t i) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%09zu", i);
        return prefix + buf;
    };
    std::atomic<size_t> next{0};
    std::atomic<bool> failed{false};
    auto run = [&](size_t total, auto&& one) {
        next = 0;
        std::vector<std::thread> ts;
        for (int t = 0; t < threads; ++t)
            ts.emplace_back([&] {
                for (size_t i; (i = next++) < total && !failed;) {
                    if (Status st = one(i); !st) {
                        std::cerr << "seed_store: " << st.message() << "\n";
                        failed = true;
                    }
                }
            });
        for (auto& t : ts) t.join();
    };
    auto t0 = std::chrono::steady_clock::now();
    const SysTime now = SystemClock::instance().now();
    run(enrollments, [&](size_t i) {
        db::AuthenticateInput a;
        a.id = a.device_id = a.udid = udid(i);
        a.type = "device";
        a.topic = topic;
        a.serial_number = "SEED" + std::to_string(i);
        a.product_name = "iPhone15,2";
        a.os_version = "18.1";
        if (Status st = s.apply_authenticate(a, now); !st) return st;
        db::TokenUpdateInput u;
        u.id = u.device_id = a.id;
        u.type = "device";
        u.topic = topic;
        u.push_token = random_bytes(32);
        u.push_magic = random_uuid();
        return s.apply_token_update(u, now);
    });
    auto t1 = std::chrono::steady_clock::now();
    const char* types[] = {"ProfileList", "DeviceInformation", "SecurityInfo",
                           "InstalledApplicationList"};
    run(commands, [&](size_t i) {
        db::NewCommand c;
        c.uuid = random_uuid();
        c.request_type = types[i % 4];
        plist::Dict cmd;
        cmd.set("RequestType", c.request_type);
        plist::Dict env;
        env.set("Command", std::move(cmd));
        env.set("CommandUUID", c.uuid);
        c.plist = plist::write_xml(plist::Value(std::move(env)));
        auto r = s.enqueue(c, {udid(i % enrollments)}, now);
        return r ? Status::ok() : r.status();
    });
    auto t2 = std::chrono::steady_clock::now();
    store->reset();  // commits what is pending and closes
    if (failed) return 1;
    auto secs = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
    std::printf("seeded %zu enrollments in %.1f s (%.0f/s), %zu commands in %.1f s (%.0f/s)\n",
                enrollments, secs(t0, t1), enrollments / secs(t0, t1), commands, secs(t1, t2),
                commands / secs(t1, t2));
    return 0;
}
