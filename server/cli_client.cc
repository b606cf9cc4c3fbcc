#include "server/cli_client.h"

#include <curl/curl.h>
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "certs/authority.h"
#include "certs/push_cert.h"
#include "common/encoding.h"
#include "server/cli_webhooks.h"

namespace courier::server {

namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

struct ClientOptions {
    std::string url;
    std::string api_key;
    std::string ca;
    std::string data_dir = "./courier-data";
    bool json_out = false;
    long timeout_s = 30;
};

struct HttpAnswer {
    long status = 0;
    std::string body;
    std::string error;  // transport error
};

std::string env_or(const char* name, std::string fallback) {
    const char* v = std::getenv(name);
    return v && *v ? std::string(v) : fallback;
}

std::optional<std::string> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

size_t collect(char* p, size_t size, size_t n, void* ud) {
    static_cast<std::string*>(ud)->append(p, size * n);
    return size * n;
}

// Fills in what the user did not say from the environment and the data dir
// (run beside the server: its API key and CA are found there).
void resolve(ClientOptions& o) {
    if (o.url.empty()) o.url = env_or("COURIER_URL", "https://localhost:8443");
    while (!o.url.empty() && o.url.back() == '/') o.url.pop_back();
    if (o.api_key.empty()) o.api_key = env_or("COURIER_API_KEY", "");
    if (o.api_key.empty()) {
        if (auto k = read_file(o.data_dir + "/api-key")) {
            o.api_key = *k;
            while (!o.api_key.empty() && (o.api_key.back() == '\n' || o.api_key.back() == '\r'))
                o.api_key.pop_back();
        }
    }
    if (o.ca.empty()) o.ca = env_or("COURIER_CA", "");
    if (o.ca.empty() && fs::exists(o.data_dir + "/tls/ca.crt")) o.ca = o.data_dir + "/tls/ca.crt";
}

HttpAnswer call(const ClientOptions& o, const std::string& method, const std::string& path,
                const std::string& body = {}, const std::string& content_type = {}) {
    HttpAnswer a;
    CURL* c = curl_easy_init();
    if (!c) return {0, "", "curl_easy_init failed"};
    std::string url = o.url + path;
    char err[CURL_ERROR_SIZE] = {0};
    curl_slist* headers = nullptr;
    std::string auth = "Authorization: Bearer " + o.api_key;
    headers = curl_slist_append(headers, auth.c_str());
    if (!content_type.empty())
        headers = curl_slist_append(headers, ("Content-Type: " + content_type).c_str());
    headers = curl_slist_append(headers, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, o.timeout_s);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &a.body);
    if (!o.ca.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, o.ca.c_str());
    if (method != "GET" && method != "DELETE") {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        a.error = err[0] ? err : curl_easy_strerror(rc);
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a.status);
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    return a;
}

std::string str(const json::value& v) {
    if (v.is_string()) return std::string(v.as_string());
    if (v.is_null()) return "-";
    return json::serialize(v);
}

std::string field(const json::object& o, const char* k) {
    const auto* v = o.if_contains(k);
    return v ? str(*v) : "-";
}

// Prints the answer: JSON as is with --json, else `pretty`; returns the exit code.
int finish(const ClientOptions& o, const HttpAnswer& a,
           const std::function<void(const json::value&)>& pretty) {
    if (!a.error.empty()) {
        std::cerr << "courier: cannot reach " << o.url << ": " << a.error << "\n";
        return 1;
    }
    boost::system::error_code ec;
    json::value v = json::parse(a.body, ec);
    if (a.status >= 400) {
        std::string msg = !ec && v.is_object() && v.as_object().if_contains("error")
                              ? str(v.as_object().at("error"))
                              : a.body;
        if (o.json_out && !ec) std::cout << a.body << "\n";
        std::cerr << "courier: HTTP " << a.status << ": " << msg << "\n";
        if (a.status == 401) std::cerr << "  (set --api-key or COURIER_API_KEY)\n";
        return 1;
    }
    if (o.json_out || ec) {
        std::cout << a.body << (a.body.empty() || a.body.back() == '\n' ? "" : "\n");
    } else {
        pretty(v);
    }
    return a.status == 207 ? 3 : 0;
}

void print_push_status(const json::value& v) {
    const auto* st = v.as_object().if_contains("status");
    if (!st || !st->is_object()) return;
    for (const auto& [id, s] : st->as_object()) {
        const auto& so = s.as_object();
        if (so.if_contains("push_result"))
            std::cout << fmt::format("{:<40} pushed ({})\n", std::string(id),
                                     field(so, "push_result"));
        else if (so.if_contains("push_error"))
            std::cout << fmt::format("{:<40} NOT pushed: {}\n", std::string(id),
                                     field(so, "push_error"));
        else if (so.if_contains("command_error"))
            std::cout << fmt::format("{:<40} NOT queued: {}\n", std::string(id),
                                     field(so, "command_error"));
        else
            std::cout << fmt::format("{:<40} queued\n", std::string(id));
    }
}

void print_command(const json::value& v) {
    const auto& o = v.as_object();
    std::cout << fmt::format("{} {}  created {}\n", field(o, "request_type"),
                             field(o, "command_uuid"), field(o, "created_at"));
    if (const auto* t = o.if_contains("targets"); t && t->is_object()) {
        for (const auto& [id, s] : t->as_object()) {
            const auto& so = s.as_object();
            std::string line = fmt::format("  {:<40} {:<22} {}", std::string(id),
                                           field(so, "status"), field(so, "updated_at"));
            if (const auto* p = so.if_contains("push"); p && p->is_object())
                line += "  push: " + field(p->as_object(), "status") +
                        (p->as_object().if_contains("error")
                             ? " (" + field(p->as_object(), "error") + ")"
                             : "");
            std::cout << line << "\n";
        }
    }
}

void print_devices(const json::value& v) {
    std::cout << fmt::format("{:<40} {:<14} {:<11} {:<6} {:<7} {}\n", "ID", "SERIAL", "STATE",
                             "TOKEN", "QUEUED", "LAST SEEN");
    const auto* items = v.as_object().if_contains("items");
    if (!items) return;
    for (const auto& d : items->as_array()) {
        const auto& o = d.as_object();
        std::cout << fmt::format("{:<40} {:<14} {:<11} {:<6} {:<7} {}\n", field(o, "id"),
                                 field(o, "serial_number"), field(o, "state"),
                                 field(o, "token_valid") == "true" ? "ok" : "no",
                                 field(o, "queued"), field(o, "last_seen"));
    }
    if (const auto* c = v.as_object().if_contains("next_cursor"); c && c->is_string())
        std::cout << "(more: --cursor " << str(*c) << ")\n";
}

void print_kv(const json::value& v) {
    for (const auto& [k, val] : v.as_object())
        std::cout << fmt::format("{:<24} {}\n", std::string(k), str(val));
}

std::string join_ids(const std::vector<std::string>& ids) {
    std::string out;
    for (const auto& id : ids) out += (out.empty() ? "" : ",") + id;
    return out;
}

std::string url_escape(const std::string& s) {
    std::string out;
    for (unsigned char ch : s) {
        if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~' || ch == ':' ||
            ch == ',')
            out += static_cast<char>(ch);
        else
            out += fmt::format("%{:02X}", ch);
    }
    return out;
}

int post_command(const ClientOptions& o, const std::vector<std::string>& targets,
                 json::object command, bool push) {
    json::array t;
    for (const auto& id : targets) t.push_back(json::value(id));
    json::object body{{"targets", std::move(t)}, {"command", std::move(command)}, {"push", push}};
    auto a = call(o, "POST", "/v1/commands", json::serialize(body), "application/json");
    return finish(o, a, print_command);
}

}  // namespace

void register_client_commands(CLI::App& app, int* exit_code) {
    auto opts = std::make_shared<ClientOptions>();
    auto common = [opts](CLI::App* sub) {
        sub->add_option("--url", opts->url, "server URL (env COURIER_URL)")
            ->default_str("https://localhost:8443");
        sub->add_option("--api-key", opts->api_key,
                        "API key (env COURIER_API_KEY; default: <data-dir>/api-key)");
        sub->add_option("--ca", opts->ca,
                        "CA certificate to trust (env COURIER_CA; default: <data-dir>/tls/ca.crt)");
        sub->add_option("--data-dir", opts->data_dir, "server data dir to take key and CA from")
            ->capture_default_str();
        sub->add_flag("--json", opts->json_out, "print the server's JSON answer");
    };
    auto run = [opts, exit_code](std::function<int(const ClientOptions&)> fn) {
        return [opts, exit_code, fn] {
            resolve(*opts);
            *exit_code = fn(*opts);
        };
    };

    {
        auto* sub = app.add_subcommand("devices", "list enrollments");
        common(sub);
        auto state = std::make_shared<std::string>();
        auto cursor = std::make_shared<std::string>();
        auto limit = std::make_shared<int>(100);
        sub->add_option("--state", *state, "pending, enrolled, unenrolled, retired");
        sub->add_option("--cursor", *cursor, "next page");
        sub->add_option("--limit", *limit, "page size")->capture_default_str();
        sub->callback(run([=](const ClientOptions& o) {
            std::string q = "?limit=" + std::to_string(*limit);
            if (!state->empty()) q += "&state=" + url_escape(*state);
            if (!cursor->empty()) q += "&cursor=" + url_escape(*cursor);
            return finish(o, call(o, "GET", "/v1/devices" + q), print_devices);
        }));
    }
    {
        auto* sub = app.add_subcommand("device", "show one enrollment");
        common(sub);
        auto id = std::make_shared<std::string>();
        sub->add_option("id", *id, "enrollment id")->required();
        sub->callback(run([=](const ClientOptions& o) {
            return finish(o, call(o, "GET", "/v1/devices/" + url_escape(*id)), print_kv);
        }));
    }
    {
        auto* sub = app.add_subcommand("timeline", "what happened to a device, in time order");
        common(sub);
        auto id = std::make_shared<std::string>();
        sub->add_option("id", *id, "enrollment id")->required();
        sub->callback(run([=](const ClientOptions& o) {
            return finish(o,
                          call(o, "GET", "/v1/devices/" + url_escape(*id) + "/timeline?limit=1000"),
                          [](const json::value& v) {
                              for (const auto& e : v.as_object().at("items").as_array()) {
                                  const auto& eo = e.as_object();
                                  std::cout << fmt::format("{}  {:<9} {}\n", field(eo, "at"),
                                                           field(eo, "kind"), field(eo, "detail"));
                              }
                          });
        }));
    }
    {
        auto* sub = app.add_subcommand("lock", "DeviceLock one or more devices");
        common(sub);
        auto ids = std::make_shared<std::vector<std::string>>();
        auto message = std::make_shared<std::string>();
        auto phone = std::make_shared<std::string>();
        auto pin = std::make_shared<std::string>();
        sub->add_option("ids", *ids, "enrollment ids")->required();
        sub->add_option("--message", *message, "shown on the lock screen");
        sub->add_option("--phone", *phone, "phone number shown on the lock screen");
        sub->add_option("--pin", *pin, "six-digit Find My PIN (macOS)");
        sub->callback(run([=](const ClientOptions& o) {
            json::object cmd{{"RequestType", "DeviceLock"}};
            if (!message->empty()) cmd["Message"] = *message;
            if (!phone->empty()) cmd["PhoneNumber"] = *phone;
            if (!pin->empty()) cmd["PIN"] = *pin;
            return post_command(o, *ids, std::move(cmd), true);
        }));
    }
    {
        auto* sub = app.add_subcommand("install-profile", "InstallProfile: ids… FILE.mobileconfig");
        common(sub);
        auto args = std::make_shared<std::vector<std::string>>();
        sub->add_option("args", *args, "enrollment ids, then the profile file")
            ->required()
            ->expected(2, -1);
        sub->callback(run([=](const ClientOptions& o) {
            std::vector<std::string> ids(args->begin(), args->end() - 1);
            auto bytes = read_file(args->back());
            if (!bytes) {
                std::cerr << "courier: cannot read " << args->back() << "\n";
                return 1;
            }
            json::object cmd{{"RequestType", "InstallProfile"}, {"Payload", base64_encode(*bytes)}};
            return post_command(o, ids, std::move(cmd), true);
        }));
    }
    {
        auto* sub = app.add_subcommand("remove-profile", "RemoveProfile: ids… IDENTIFIER");
        common(sub);
        auto args = std::make_shared<std::vector<std::string>>();
        sub->add_option("args", *args, "enrollment ids, then the profile's PayloadIdentifier")
            ->required()
            ->expected(2, -1);
        sub->callback(run([=](const ClientOptions& o) {
            std::vector<std::string> ids(args->begin(), args->end() - 1);
            json::object cmd{{"RequestType", "RemoveProfile"}, {"Identifier", args->back()}};
            return post_command(o, ids, std::move(cmd), true);
        }));
    }
    {
        auto* sub = app.add_subcommand("command", "status and results of a command");
        common(sub);
        auto uuid = std::make_shared<std::string>();
        sub->add_option("uuid", *uuid, "command UUID")->required();
        sub->callback(run([=](const ClientOptions& o) {
            return finish(o, call(o, "GET", "/v1/commands/" + url_escape(*uuid)),
                          [](const json::value& v) {
                              print_command(v);
                              for (const auto& [id, t] : v.as_object().at("targets").as_object()) {
                                  const auto* r = t.as_object().if_contains("result");
                                  if (r && !r->is_null())
                                      std::cout << "  " << std::string(id)
                                                << " result: " << json::serialize(*r) << "\n";
                              }
                          });
        }));
    }
    {
        auto* sub = app.add_subcommand("cancel", "cancel a command where not yet delivered");
        common(sub);
        auto uuid = std::make_shared<std::string>();
        sub->add_option("uuid", *uuid, "command UUID")->required();
        sub->callback(run([=](const ClientOptions& o) {
            return finish(o, call(o, "DELETE", "/v1/commands/" + url_escape(*uuid)),
                          [](const json::value& v) {
                              std::cout << "canceled for: "
                                        << json::serialize(v.as_object().at("canceled")) << "\n";
                          });
        }));
    }
    {
        auto* sub = app.add_subcommand("push", "send a wake-up push now");
        common(sub);
        auto ids = std::make_shared<std::vector<std::string>>();
        sub->add_option("ids", *ids, "enrollment ids")->required();
        sub->callback(run([=](const ClientOptions& o) {
            return finish(o, call(o, "GET", "/v1/push/" + url_escape(join_ids(*ids))),
                          print_push_status);
        }));
    }
    {
        auto* sub =
            app.add_subcommand("retire", "retire a device: it unenrolls at its next request");
        common(sub);
        auto id = std::make_shared<std::string>();
        sub->add_option("id", *id, "enrollment id")->required();
        sub->callback(run([=](const ClientOptions& o) {
            return finish(o, call(o, "POST", "/v1/devices/" + url_escape(*id) + "/retire"),
                          print_kv);
        }));
    }
    {
        auto* pc =
            app.add_subcommand("pushcert", "push certificate: import, renew, show, history, csr");
        pc->require_subcommand(1);
        for (const char* name : {"import", "renew"}) {
            auto* sub = pc->add_subcommand(
                name, std::string(name) == "import"
                          ? "upload a push certificate (PEM cert + key files, or a .p12)"
                          : "upload the renewed certificate (same topic)");
            common(sub);
            auto files = std::make_shared<std::vector<std::string>>();
            auto password = std::make_shared<std::string>();
            auto add_topic = std::make_shared<bool>(false);
            sub->add_option("files", *files, "cert.pem key.pem, or file.p12")
                ->required()
                ->expected(1, 2);
            sub->add_option("--password", *password, "PKCS#12 password");
            if (std::string(name) == "import")
                sub->add_flag("--add-topic", *add_topic,
                              "accept a topic other than the stored ones");
            bool renew = std::string(name) == "renew";
            sub->callback(run([=](const ClientOptions& o) {
                std::string body;
                for (const auto& f : *files) {
                    auto b = read_file(f);
                    if (!b) {
                        std::cerr << "courier: cannot read " << f << "\n";
                        return 1;
                    }
                    body += *b;
                    if (!body.empty() && body.back() != '\n' && files->size() > 1) body += '\n';
                }
                if (renew) {
                    // A renewal must keep the topic: check before uploading.
                    auto parsed =
                        certs::parse_push_cert(body, *password, SystemClock::instance().now());
                    if (parsed.is_ok()) {
                        auto cur =
                            call(o, "GET", "/v1/pushcert?topic=" + url_escape(parsed->topic));
                        if (cur.error.empty() && cur.status == 404) {
                            std::cerr << "courier: no stored certificate has topic "
                                      << parsed->topic
                                      << "; a renewal must keep the topic (renew with the same "
                                         "Apple ID)\n";
                            return 1;
                        }
                    }
                }
                std::string q = *add_topic ? "?add_topic=1" : "";
                HttpAnswer a;
                if (!password->empty()) {
                    CURL* esc = curl_easy_init();
                    char* e = curl_easy_escape(esc, password->c_str(),
                                               static_cast<int>(password->size()));
                    q += std::string(q.empty() ? "?" : "&") + "password=" + e;
                    curl_free(e);
                    curl_easy_cleanup(esc);
                }
                a = call(o, "PUT", "/v1/pushcert" + q, body);
                return finish(o, a, print_kv);
            }));
        }
        {
            auto* sub = pc->add_subcommand("show", "active push certificates and their expiry");
            common(sub);
            sub->callback(run([=](const ClientOptions& o) {
                return finish(o, call(o, "GET", "/v1/pushcert"), [](const json::value& v) {
                    std::cout << fmt::format("{:<60} {:<21} {:>5} {}\n", "TOPIC", "NOT AFTER",
                                             "DAYS", "STATE");
                    for (const auto& c : v.as_object().at("certs").as_array()) {
                        const auto& co = c.as_object();
                        std::string state = field(co, "expired") == "true"    ? "EXPIRED"
                                            : field(co, "usable") == "false"  ? "UNUSABLE"
                                            : field(co, "expiring") == "true" ? "EXPIRING"
                                                                              : "ok";
                        std::cout << fmt::format("{:<60} {:<21} {:>5} {}\n", field(co, "topic"),
                                                 field(co, "not_after"), field(co, "days_left"),
                                                 state);
                    }
                });
            }));
        }
        {
            auto* sub = pc->add_subcommand("history", "every push certificate ever stored");
            common(sub);
            sub->callback(run([=](const ClientOptions& o) {
                return finish(o, call(o, "GET", "/v1/pushcert/history"), [](const json::value& v) {
                    for (const auto& c : v.as_object().at("certs").as_array()) {
                        const auto& co = c.as_object();
                        std::cout << fmt::format("{} {} uploaded {} until {} {}\n",
                                                 field(co, "topic"), field(co, "thumbprint_sha1"),
                                                 field(co, "uploaded_at"), field(co, "not_after"),
                                                 field(co, "active") == "true"
                                                     ? "(active)"
                                                     : "replaced " + field(co, "replaced_at"));
                    }
                });
            }));
        }
        {
            auto* sub = pc->add_subcommand(
                "csr", "write a new private key and CSR for Apple's push certificates portal");
            auto out = std::make_shared<std::string>("push");
            auto cn = std::make_shared<std::string>("Courier MDM Push");
            auto email = std::make_shared<std::string>();
            auto vendor_cert = std::make_shared<std::string>();
            auto vendor_key = std::make_shared<std::string>();
            sub->add_option("--out", *out, "file prefix: <out>.key, <out>.csr")
                ->capture_default_str();
            sub->add_option("--cn", *cn, "subject common name")->capture_default_str();
            sub->add_option("--email", *email, "subject e-mail address");
            sub->add_option("--vendor-cert", *vendor_cert,
                            "MDM vendor certificate (PEM) to sign the request");
            sub->add_option("--vendor-key", *vendor_key, "MDM vendor private key (PEM)");
            sub->callback([=] {
                *exit_code = 0;
                auto csr = certs::make_push_csr(*cn, *email);
                if (!csr.is_ok()) {
                    std::cerr << "courier: " << csr.status().message() << "\n";
                    *exit_code = 1;
                    return;
                }
                auto write = [&](const std::string& path, const std::string& data, bool secret) {
                    if (fs::exists(path)) {
                        std::cerr << "courier: " << path << " exists; not overwriting\n";
                        return false;
                    }
                    if (secret) return certs::write_private_file(path, data).is_ok();
                    std::ofstream f(path, std::ios::binary);
                    f << data;
                    return static_cast<bool>(f);
                };
                if (!write(*out + ".key", csr->key_pem, true) ||
                    !write(*out + ".csr", csr->csr_pem, false)) {
                    *exit_code = 1;
                    return;
                }
                std::cout << "wrote " << *out << ".key (keep it secret) and " << *out << ".csr\n";
                if (!vendor_cert->empty() || !vendor_key->empty()) {
                    auto vc = read_file(*vendor_cert);
                    auto vk = read_file(*vendor_key);
                    if (!vc || !vk) {
                        std::cerr << "courier: --vendor-cert and --vendor-key must both be "
                                     "readable files\n";
                        *exit_code = 1;
                        return;
                    }
                    auto req = certs::make_vendor_signed_request(csr->csr_pem, *vc, *vk);
                    if (!req.is_ok()) {
                        std::cerr << "courier: " << req.status().message() << "\n";
                        *exit_code = 1;
                        return;
                    }
                    if (!write(*out + ".request.b64", *req, false)) {
                        *exit_code = 1;
                        return;
                    }
                    std::cout << "wrote " << *out
                              << ".request.b64: upload it at Apple's push certificates portal\n";
                }
            });
        }
    }
    {
        auto* et = app.add_subcommand("enroll-token", "enrollment tokens: create, list, revoke");
        et->require_subcommand(1);
        {
            auto* sub = et->add_subcommand("create", "create a token (printed once)");
            common(sub);
            auto uses = std::make_shared<int64_t>(1);
            auto expires = std::make_shared<std::string>();
            auto note = std::make_shared<std::string>();
            sub->add_option("--uses", *uses, "how many enrollments (-1: unlimited)")
                ->capture_default_str();
            sub->add_option("--expires", *expires, "RFC 3339 expiry");
            sub->add_option("--note", *note, "what it is for");
            sub->callback(run([=](const ClientOptions& o) {
                json::object body{{"uses", *uses}, {"note", *note}};
                if (!expires->empty()) body["expires_at"] = *expires;
                return finish(o,
                              call(o, "POST", "/v1/enrollment-tokens", json::serialize(body),
                                   "application/json"),
                              print_kv);
            }));
        }
        {
            auto* sub = et->add_subcommand("list", "list tokens");
            common(sub);
            sub->callback(run([=](const ClientOptions& o) {
                return finish(o, call(o, "GET", "/v1/enrollment-tokens"), [](const json::value& v) {
                    for (const auto& t : v.as_object().at("items").as_array()) {
                        const auto& to = t.as_object();
                        std::cout << fmt::format("{}  uses left {}  expires {}  {}\n",
                                                 field(to, "id"), field(to, "uses_left"),
                                                 field(to, "expires_at"), field(to, "note"));
                    }
                });
            }));
        }
        {
            auto* sub = et->add_subcommand("revoke", "delete a token");
            common(sub);
            auto id = std::make_shared<std::string>();
            sub->add_option("id", *id, "token id")->required();
            sub->callback(run([=](const ClientOptions& o) {
                return finish(o, call(o, "DELETE", "/v1/enrollment-tokens/" + url_escape(*id)),
                              print_kv);
            }));
        }
    }
    // Command groups in files of their own get the shared options and requests.
    CliRequester requester;
    requester.common = common;
    requester.request = [opts](const std::string& method, const std::string& path,
                               const std::string& body,
                               const std::function<void(const json::value&)>& pretty) {
        resolve(*opts);
        return finish(
            *opts, call(*opts, method, path, body, body.empty() ? "" : "application/json"), pretty);
    };
    register_webhook_commands(app, exit_code, requester);
}

}  // namespace courier::server
