#include "server/http/http.h"

#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/pct_string_view.hpp>
#include <boost/url/url_view.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>

namespace courier::server {

namespace {

char lower(char c) {
    return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}

// The path part of a target, still percent-encoded.
std::string_view raw_path(std::string_view target) {
    auto q = target.find('?');
    return q == std::string_view::npos ? target : target.substr(0, q);
}

// Splits "/a/b/c" into {"a","b","c"}; "/" gives {}.
std::vector<std::string_view> split_segments(std::string_view path) {
    std::vector<std::string_view> out;
    if (!path.empty() && path.front() == '/') path.remove_prefix(1);
    if (path.empty()) return out;
    size_t start = 0;
    while (true) {
        auto slash = path.find('/', start);
        if (slash == std::string_view::npos) {
            out.push_back(path.substr(start));
            break;
        }
        out.push_back(path.substr(start, slash - start));
        start = slash + 1;
    }
    return out;
}

// Percent-decodes one path segment; nullopt on a malformed escape or NUL.
std::optional<std::string> decode_segment(std::string_view s) {
    auto pct = boost::urls::make_pct_string_view(s);
    if (pct.has_error()) return std::nullopt;
    std::string out = pct->decode();
    if (out.find('\0') != std::string::npos) return std::nullopt;
    return out;
}

bool is_rest(const std::string& seg) {
    return seg.size() > 5 && seg.front() == '{' && seg.ends_with("...}");
}
bool is_param(const std::string& seg) {
    return seg.size() > 2 && seg.front() == '{' && seg.back() == '}';
}
std::string param_name(const std::string& seg) {
    return seg.substr(1, seg.size() - (is_rest(seg) ? 5 : 2));
}

}  // namespace

bool CaseLess::operator()(std::string_view a, std::string_view b) const {
    return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(),
                                        [](char x, char y) { return lower(x) < lower(y); });
}

const std::string* Request::header(std::string_view name) const {
    auto it = headers.find(std::string(name));
    return it == headers.end() ? nullptr : &it->second;
}

std::string Request::query_or(const std::string& key, std::string fallback) const {
    auto it = query.find(key);
    return it == query.end() ? std::move(fallback) : it->second;
}

Response Response::json(int status, std::string body) {
    Response r;
    r.status = status;
    r.headers["Content-Type"] = "application/json";
    r.body = std::move(body);
    return r;
}

Response Response::error(int status, std::string_view message) {
    std::string body = "{\"error\":";
    body += boost::json::serialize(boost::json::string(message));
    body += '}';
    return json(status, std::move(body));
}

int http_status(Code code, Audience audience) {
    switch (code) {
        case Code::kOk:
            return 200;
        case Code::kInvalid:
            return 400;
        case Code::kUnauthorized:
            return audience == Audience::kDevice ? 400 : 401;
        case Code::kForbidden:
            return 403;
        case Code::kNotFound:
            return audience == Audience::kDevice ? 400 : 404;
        case Code::kConflict:
            return 409;
        case Code::kTooLarge:
            return 413;
        case Code::kUnavailable:
            return 503;
        case Code::kInternal:
            return 500;
    }
    return 500;
}

Response status_response(const Status& s, std::string_view context, Audience audience) {
    int code = http_status(s.code(), audience);
    std::string message = context.empty() ? s.message() : std::string(context) + ": " + s.message();
    if (code >= 500) spdlog::error("answering {}: {}", code, message);
    return Response::error(code, message);
}

Response Response::empty(int status) {
    Response r;
    r.status = status;
    return r;
}

Response Response::plist(std::string body) {
    Response r;
    r.headers["Content-Type"] = "application/xml";
    r.body = std::move(body);
    return r;
}

void Router::add(std::string method, std::string pattern, Handler h, HeaderCheck check) {
    Route r;
    r.method = std::move(method);
    r.pattern = std::move(pattern);
    for (auto seg : split_segments(r.pattern)) r.segments.emplace_back(seg);
    r.handler = std::move(h);
    r.check = std::move(check);
    routes_.push_back(std::move(r));
}

std::optional<Response> Router::check_header(const Request& req) const {
    std::map<std::string, std::string> params;
    bool known = false;
    std::string allow;
    const Route* r = match(req, &params, &known, &allow);
    if (!r) {
        Request probe = req;
        return dispatch(probe);
    }
    if (req.method == "GET" || req.method == "HEAD" || req.method == "DELETE") {
        const std::string* length = req.header("Content-Length");
        if ((length && *length != "0") || req.header("Transfer-Encoding"))
            return Response::error(413, req.method + " " + r->pattern + " takes no request body");
    }
    if (r->check) return r->check(req);
    return std::nullopt;
}

const Router::Route* Router::match(const Request& req, std::map<std::string, std::string>* params,
                                   bool* path_known, std::string* allow) const {
    *path_known = false;
    // Match on the encoded path so an escaped '/' (%2F) stays inside its segment.
    std::vector<std::string> segs;
    if (!req.target.empty()) {
        for (auto s : split_segments(raw_path(req.target))) {
            auto d = decode_segment(s);
            if (!d) return nullptr;
            segs.push_back(std::move(*d));
        }
    } else {
        for (auto s : split_segments(req.path)) segs.emplace_back(s);
    }
    // HEAD is served by the GET route (the listener drops the body).
    std::string_view method = req.method == "HEAD" ? std::string_view("GET") : req.method;

    const Route* found = nullptr;
    for (const auto& r : routes_) {
        std::map<std::string, std::string> p;
        bool ok = true;
        size_t i = 0;
        for (; i < r.segments.size() && ok; ++i) {
            const auto& pat = r.segments[i];
            if (is_rest(pat)) {
                std::string rest;
                for (size_t j = i; j < segs.size(); ++j) {
                    if (j > i) rest += '/';
                    rest += segs[j];
                }
                p[param_name(pat)] = std::move(rest);
                i = segs.size();
                break;
            }
            if (i >= segs.size()) {
                ok = false;
            } else if (is_param(pat)) {
                if (segs[i].empty())
                    ok = false;
                else
                    p[param_name(pat)] = segs[i];
            } else if (pat != segs[i]) {
                ok = false;
            }
        }
        if (!ok || i != segs.size()) continue;
        *path_known = true;
        if (r.method == method) {
            if (!found) {
                found = &r;
                *params = std::move(p);
            }
        } else if (allow) {
            if (allow->find(r.method) == std::string::npos) {
                if (!allow->empty()) *allow += ", ";
                *allow += r.method;
            }
        }
    }
    return found;
}

Response Router::dispatch(Request& req) const {
    std::map<std::string, std::string> params;
    bool known = false;
    std::string allow;
    const Route* r = match(req, &params, &known, &allow);
    if (r) {
        req.params = std::move(params);
        return r->handler(req);
    }
    if (!known) return Response::error(404, "no such endpoint: " + req.path);
    Response resp = Response::error(405, "method " + req.method + " not allowed on " + req.path);
    resp.headers["Allow"] = allow;
    return resp;
}

std::vector<std::string> Router::routes() const {
    std::vector<std::string> out;
    out.reserve(routes_.size());
    for (const auto& r : routes_) out.push_back(r.method + " " + r.pattern);
    return out;
}

std::string Router::route_of(const Request& req) const {
    std::map<std::string, std::string> params;
    bool known = false;
    const Route* r = match(req, &params, &known, nullptr);
    return r ? r->pattern : std::string();
}

bool parse_target(std::string_view target, std::string* path,
                  std::map<std::string, std::string>* query) {
    if (target.empty() || target.front() != '/') return false;
    auto u = boost::urls::parse_origin_form(target);
    if (u.has_error()) return false;
    std::string p = u->path();
    if (p.find('\0') != std::string::npos) return false;
    query->clear();
    for (auto param : u->params(boost::urls::encoding_opts(true))) {
        (*query)[param.key] = param.has_value ? param.value : std::string();
    }
    *path = std::move(p);
    return true;
}

}  // namespace courier::server
