// Setting a fleet up: the push topic (importing a certificate when asked),
// device identities from the enrollment CA, enrollment, the fake APNs.
#include <fstream>

#include "certs/authority.h"
#include "certs/push_cert.h"
#include "common/encoding.h"
#include "sim/fleet_internal.h"

namespace courier::sim::fleet {

// ---------------------------------------------------------------- set-up

namespace {

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

}  // namespace

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

}  // namespace courier::sim::fleet
