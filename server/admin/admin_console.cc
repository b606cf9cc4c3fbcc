#include "server/admin/admin_console.h"

#include <map>
#include <string>

#include "certs/x509.h"
#include "server/admin/console_assets.h"

namespace courier::server {

namespace {

std::string_view content_type(std::string_view name) {
    auto ends = [&](std::string_view ext) { return name.ends_with(ext); };
    if (ends(".html")) return "text/html; charset=utf-8";
    if (ends(".js")) return "text/javascript; charset=utf-8";
    if (ends(".css")) return "text/css; charset=utf-8";
    if (ends(".svg")) return "image/svg+xml";
    if (ends(".png")) return "image/png";
    if (ends(".ico")) return "image/x-icon";
    if (ends(".json")) return "application/json";
    return "application/octet-stream";
}

struct File {
    std::string_view body, type;
    std::string etag;
};

const std::map<std::string, File, std::less<>>& files() {
    static const auto* table = [] {
        auto* m = new std::map<std::string, File, std::less<>>();
        size_t n = 0;
        const ConsoleAsset* a = console_assets(&n);
        for (size_t i = 0; i < n; ++i) {
            std::string etag(1, '"');
            etag.append(certs::sha256_hex(a[i].body), 0, 32);
            etag.push_back('"');
            (*m)[std::string(a[i].name)] = {a[i].body, content_type(a[i].name), std::move(etag)};
        }
        return m;
    }();
    return *table;
}

Response redirect(std::string location) {
    Response r = Response::empty(302);
    r.headers["Location"] = std::move(location);
    return r;
}

Response serve(const Request& req, std::string name) {
    if (name.empty()) name = "index.html";
    const auto& all = files();
    auto it = all.find(name);
    if (it == all.end()) {
        Response r = Response::error(404, "no console file " + name);
        add_console_headers(r);
        return r;
    }
    Response r;
    // The names are fixed (no hashes in them), so every load revalidates:
    // unchanged files cost a 304, a new build is picked up at once.
    r.headers["Cache-Control"] = "no-cache";
    r.headers["ETag"] = it->second.etag;
    add_console_headers(r);
    if (const std::string* inm = req.header("If-None-Match"); inm && *inm == it->second.etag) {
        r.status = 304;
        return r;
    }
    r.status = 200;
    r.headers["Content-Type"] = std::string(it->second.type);
    r.body = std::string(it->second.body);
    return r;
}

}  // namespace

void add_console_headers(Response& r) {
    r.headers["Content-Security-Policy"] =
        "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; "
        "object-src 'none'";
    r.headers["X-Content-Type-Options"] = "nosniff";
    r.headers["X-Frame-Options"] = "DENY";
    r.headers["Referrer-Policy"] = "no-referrer";
    r.headers["Cross-Origin-Opener-Policy"] = "same-origin";
}

void register_console_files(Router& router) {
    router.add("GET", "/", [](Request&) { return redirect("/ui/"); });
    router.add("GET", "/ui/{file...}", [](Request& req) {
        // "/ui" without its slash: the page's relative links need it.
        if (req.path == "/ui") return redirect("/ui/");
        return serve(req, req.params["file"]);
    });
}

}  // namespace courier::server
