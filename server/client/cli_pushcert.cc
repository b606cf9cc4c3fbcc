// `courier pushcert import|renew|show|history|csr`: push certificates (/v1/pushcert).
#include <curl/curl.h>
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "certs/push_cert.h"
#include "common/clock.h"
#include "common/file_io.h"
#include "server/client/cli_common.h"

namespace courier::client::cli {

namespace json = boost::json;
namespace fs = std::filesystem;

void add_pushcert_commands(CLI::App& app, const Context& ctx) {
    {
        auto* pc =
            app.add_subcommand("pushcert", "push certificate: import, renew, show, history, csr");
        pc->require_subcommand(1);
        for (const char* name : {"import", "renew"}) {
            auto* sub = pc->add_subcommand(
                name, std::string(name) == "import"
                          ? "upload a push certificate (PEM cert + key files, or a .p12)"
                          : "upload the renewed certificate (same topic)");
            ctx.add_common(sub);
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
            sub->callback(ctx.run([=](AdminClient& c, const Options& o) {
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
                        auto cur = c.call("GET", "/v1/pushcert?topic=" + url_escape(parsed->topic));
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
                Answer a;
                if (!password->empty()) {
                    CURL* esc = curl_easy_init();
                    char* e = curl_easy_escape(esc, password->c_str(),
                                               static_cast<int>(password->size()));
                    q += std::string(q.empty() ? "?" : "&") + "password=" + e;
                    curl_free(e);
                    curl_easy_cleanup(esc);
                }
                a = c.call("PUT", "/v1/pushcert" + q, body);
                return finish(o, a, print_kv);
            }));
        }
        {
            auto* sub = pc->add_subcommand("show", "active push certificates and their expiry");
            ctx.add_common(sub);
            sub->callback(ctx.run([=](AdminClient& c, const Options& o) {
                return finish(o, c.call("GET", "/v1/pushcert"), [](const json::value& v) {
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
            ctx.add_common(sub);
            sub->callback(ctx.run([=](AdminClient& c, const Options& o) {
                return finish(o, c.call("GET", "/v1/pushcert/history"), [](const json::value& v) {
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
                *ctx.exit_code() = 0;
                auto csr = certs::make_push_csr(*cn, *email);
                if (!csr.is_ok()) {
                    std::cerr << "courier: " << csr.status().message() << "\n";
                    *ctx.exit_code() = 1;
                    return;
                }
                auto write = [&](const std::string& path, const std::string& data, bool secret) {
                    if (fs::exists(path)) {
                        std::cerr << "courier: " << path << " exists; not overwriting\n";
                        return false;
                    }
                    if (secret) return write_private_file(path, data).is_ok();
                    std::ofstream f(path, std::ios::binary);
                    f << data;
                    return static_cast<bool>(f);
                };
                if (!write(*out + ".key", csr->key_pem, true) ||
                    !write(*out + ".csr", csr->csr_pem, false)) {
                    *ctx.exit_code() = 1;
                    return;
                }
                std::cout << "wrote " << *out << ".key (keep it secret) and " << *out << ".csr\n";
                if (!vendor_cert->empty() || !vendor_key->empty()) {
                    auto vc = read_file(*vendor_cert);
                    auto vk = read_file(*vendor_key);
                    if (!vc || !vk) {
                        std::cerr << "courier: --vendor-cert and --vendor-key must both be "
                                     "readable files\n";
                        *ctx.exit_code() = 1;
                        return;
                    }
                    auto req = certs::make_vendor_signed_request(csr->csr_pem, *vc, *vk);
                    if (!req.is_ok()) {
                        std::cerr << "courier: " << req.status().message() << "\n";
                        *ctx.exit_code() = 1;
                        return;
                    }
                    if (!write(*out + ".request.b64", *req, false)) {
                        *ctx.exit_code() = 1;
                        return;
                    }
                    std::cout << "wrote " << *out
                              << ".request.b64: upload it at Apple's push certificates portal\n";
                }
            });
        }
    }
}

}  // namespace courier::client::cli
