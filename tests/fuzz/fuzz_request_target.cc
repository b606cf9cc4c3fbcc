// Request targets and methods through parse_target and the router: malformed
// escapes, dot segments, NULs and huge paths are refused or routed, never a
// crash, and a routed parameter never holds a NUL.
#include <cstdint>
#include <string>

#include "server/http/http.h"

using courier::server::Request;
using courier::server::Response;
using courier::server::Router;

namespace {
const Router& router() {
    static Router r = [] {
        Router r;
        auto h = [](Request& req) {
            for (const auto& [k, v] : req.params)
                if (v.find('\0') != std::string::npos) __builtin_trap();
            return Response::empty(204);
        };
        r.add("GET", "/v1/devices/{id}", h);
        r.add("PUT", "/v1/enqueue/{ids}", h);
        r.add("GET", "/v1/devices/{id}/commands", h);
        r.add("GET", "/files/{path...}", h);
        r.add("PUT", "/mdm", h);
        return r;
    }();
    return r;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    static const char* kMethods[] = {"GET", "PUT", "POST", "DELETE", "HEAD"};
    Request req;
    req.method = kMethods[data[0] % 5];
    req.target.assign(reinterpret_cast<const char*>(data + 1), size - 1);
    if (!courier::server::parse_target(req.target, &req.path, &req.query)) return 0;
    Response r = router().dispatch(req);
    if (r.status != 204 && r.status != 404 && r.status != 405) __builtin_trap();
    return 0;
}
