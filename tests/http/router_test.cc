#include <gtest/gtest.h>

#include "server/http/http.h"

namespace courier::server {
namespace {

Request make_request(std::string method, std::string target) {
    Request r;
    r.method = std::move(method);
    r.target = std::move(target);
    EXPECT_TRUE(parse_target(r.target, &r.path, &r.query)) << r.target;
    return r;
}

Handler echo(std::string name) {
    return [name](Request& req) {
        std::string body = name;
        for (const auto& [k, v] : req.params) body += " " + k + "=" + v;
        return Response::json(200, body);
    };
}

class RouterTest : public ::testing::Test {
  protected:
    void SetUp() override {
        router_.add("GET", "/v1/devices", echo("list"));
        router_.add("GET", "/v1/devices/{id}", echo("get"));
        router_.add("DELETE", "/v1/devices/{id}", echo("delete"));
        router_.add("GET", "/v1/devices/{id}/commands", echo("commands"));
        router_.add("GET", "/files/{path...}", echo("files"));
        router_.add("PUT", "/mdm", echo("mdm"));
    }
    Response run(const std::string& method, const std::string& target) {
        Request r = make_request(method, target);
        return router_.dispatch(r);
    }
    Router router_;
};

TEST_F(RouterTest, LiteralPathDispatchesToItsHandler) {
    auto r = run("GET", "/v1/devices");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "list");
}

TEST_F(RouterTest, ParamSegmentIsCaptured) {
    EXPECT_EQ(run("GET", "/v1/devices/ABC-123").body, "get id=ABC-123");
    EXPECT_EQ(run("GET", "/v1/devices/ABC/commands").body, "commands id=ABC");
}

TEST_F(RouterTest, ParamIsPercentDecodedAndKeepsEscapedSlash) {
    EXPECT_EQ(run("GET", "/v1/devices/a%20b%2Fc").body, "get id=a b/c");
}

TEST_F(RouterTest, TrailingRestTakesRemainingSegments) {
    EXPECT_EQ(run("GET", "/files/a/b/c.txt").body, "files path=a/b/c.txt");
    EXPECT_EQ(run("GET", "/files/").body, "files path=");
}

TEST_F(RouterTest, UnknownPathIs404Json) {
    auto r = run("GET", "/v1/nothing");
    EXPECT_EQ(r.status, 404);
    EXPECT_EQ(r.headers["Content-Type"], "application/json");
    EXPECT_NE(r.body.find("\"error\""), std::string::npos);
}

TEST_F(RouterTest, ExtraOrMissingSegmentsAre404) {
    EXPECT_EQ(run("GET", "/v1/devices/a/b").status, 404);
    EXPECT_EQ(run("GET", "/v1").status, 404);
    EXPECT_EQ(run("GET", "/v1/devices//commands").status, 404);
}

TEST_F(RouterTest, KnownPathWithOtherMethodIs405WithAllow) {
    auto r = run("POST", "/v1/devices/x");
    EXPECT_EQ(r.status, 405);
    EXPECT_EQ(r.headers["allow"], "GET, DELETE");
    EXPECT_EQ(r.headers["Content-Type"], "application/json");
}

TEST_F(RouterTest, HeadIsServedByGetRoute) {
    EXPECT_EQ(run("HEAD", "/v1/devices").body, "list");
}

TEST_F(RouterTest, RoutesListsMethodAndPattern) {
    auto routes = router_.routes();
    ASSERT_EQ(routes.size(), 6u);
    EXPECT_EQ(routes[1], "GET /v1/devices/{id}");
}

TEST_F(RouterTest, RouteOfNamesTheMatchedPattern) {
    EXPECT_EQ(router_.route_of(make_request("GET", "/v1/devices/7/commands")),
              "/v1/devices/{id}/commands");
    EXPECT_EQ(router_.route_of(make_request("GET", "/nope")), "");
    EXPECT_EQ(router_.route_of(make_request("POST", "/mdm")), "");
}

TEST_F(RouterTest, RequestWithoutTargetMatchesOnPath) {
    Request r;
    r.method = "PUT";
    r.path = "/mdm";
    EXPECT_EQ(router_.dispatch(r).body, "mdm");
}

TEST_F(RouterTest, CheckHeaderRefusesUnknownRoutesAndBodiesForBodylessMethods) {
    Request unknown = make_request("PUT", "/nowhere");
    EXPECT_EQ(router_.check_header(unknown)->status, 404);
    Request wrong_method = make_request("POST", "/mdm");
    EXPECT_EQ(router_.check_header(wrong_method)->status, 405);
    Request get = make_request("GET", "/v1/devices");
    EXPECT_FALSE(router_.check_header(get));
    get.headers["Content-Length"] = "0";
    EXPECT_FALSE(router_.check_header(get));
    get.headers["Content-Length"] = "1048576";
    EXPECT_EQ(router_.check_header(get)->status, 413);
    Request chunked = make_request("DELETE", "/v1/devices/A");
    chunked.headers["Transfer-Encoding"] = "chunked";
    EXPECT_EQ(router_.check_header(chunked)->status, 413);
    Request put = make_request("PUT", "/mdm");
    put.headers["Content-Length"] = "1048576";
    EXPECT_FALSE(router_.check_header(put));
}

TEST_F(RouterTest, CheckHeaderRunsTheRoutesOwnCheckBeforeTheBody) {
    int checked = 0;
    router_.add("PUT", "/v1/pushcert", echo("pushcert"), [&](const Request& req) {
        ++checked;
        return req.header("Authorization") ? std::nullopt
                                           : std::optional<Response>(Response::error(401, "key"));
    });
    Request without = make_request("PUT", "/v1/pushcert");
    without.headers["Content-Length"] = "5";
    EXPECT_EQ(router_.check_header(without)->status, 401);
    Request with = without;
    with.headers["Authorization"] = "Bearer k";
    EXPECT_FALSE(router_.check_header(with));
    EXPECT_EQ(checked, 2);
    Request other = make_request("PUT", "/mdm");
    EXPECT_FALSE(router_.check_header(other));
    EXPECT_EQ(checked, 2);  // another route's check is not run
}

TEST(ParseTarget, SplitsPathAndQuery) {
    std::string path;
    std::map<std::string, std::string> q;
    ASSERT_TRUE(parse_target("/v1/commands?limit=10&cursor=abc", &path, &q));
    EXPECT_EQ(path, "/v1/commands");
    EXPECT_EQ(q.size(), 2u);
    EXPECT_EQ(q["limit"], "10");
    EXPECT_EQ(q["cursor"], "abc");
}

TEST(ParseTarget, DecodesPercentAndPlusInQuery) {
    std::string path;
    std::map<std::string, std::string> q;
    ASSERT_TRUE(parse_target("/a%20b?password=p%26ss+word&x=%2B", &path, &q));
    EXPECT_EQ(path, "/a b");
    EXPECT_EQ(q["password"], "p&ss word");
    EXPECT_EQ(q["x"], "+");
}

TEST(ParseTarget, LastQueryValueWins) {
    std::string path;
    std::map<std::string, std::string> q;
    ASSERT_TRUE(parse_target("/x?a=1&a=2&b", &path, &q));
    EXPECT_EQ(q["a"], "2");
    ASSERT_EQ(q.count("b"), 1u);
    EXPECT_EQ(q["b"], "");
}

TEST(ParseTarget, RejectsBadPercentEscapes) {
    std::string path;
    std::map<std::string, std::string> q;
    EXPECT_FALSE(parse_target("/a%zz", &path, &q));
    EXPECT_FALSE(parse_target("/a%2", &path, &q));
    EXPECT_FALSE(parse_target("/a?x=%g1", &path, &q));
}

TEST(ParseTarget, RejectsTargetsNotStartingWithSlash) {
    std::string path;
    std::map<std::string, std::string> q;
    EXPECT_FALSE(parse_target("", &path, &q));
    EXPECT_FALSE(parse_target("v1/devices", &path, &q));
    EXPECT_FALSE(parse_target("http://example.com/x", &path, &q));
    EXPECT_FALSE(parse_target("*", &path, &q));
}

TEST(ParseTarget, RejectsEncodedNul) {
    std::string path;
    std::map<std::string, std::string> q;
    EXPECT_FALSE(parse_target("/a%00b", &path, &q));
}

TEST(ResponseFactories, ErrorIsEscapedJson) {
    auto r = Response::error(400, "bad \"quote\"\n");
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(r.body, R"({"error":"bad \"quote\"\n"})");
    EXPECT_EQ(r.headers["content-type"], "application/json");
}

TEST(ResponseFactories, PlistAndEmpty) {
    auto p = Response::plist("<plist/>");
    EXPECT_EQ(p.status, 200);
    EXPECT_EQ(p.headers["Content-Type"], "application/xml");
    auto e = Response::empty(204);
    EXPECT_EQ(e.status, 204);
    EXPECT_TRUE(e.body.empty());
    EXPECT_TRUE(e.headers.empty());
}

TEST(RequestAccessors, HeaderLookupIgnoresCase) {
    Request r;
    r.headers["Content-Type"] = "application/json";
    ASSERT_NE(r.header("content-TYPE"), nullptr);
    EXPECT_EQ(*r.header("content-type"), "application/json");
    EXPECT_EQ(r.header("x-missing"), nullptr);
}

TEST(RequestAccessors, QueryOrFallsBack) {
    Request r;
    r.query["limit"] = "5";
    EXPECT_EQ(r.query_or("limit", "10"), "5");
    EXPECT_EQ(r.query_or("cursor", "none"), "none");
}

}  // namespace
}  // namespace courier::server
