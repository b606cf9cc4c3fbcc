// A GoogleTest fixture around one in-process server (TestServer), started in
// SetUp with the default options; start() restarts it with others.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "tests/support/test_server.h"

namespace courier::test {

class ServerTest : public ::testing::Test {
  protected:
    void SetUp() override { start({}); }
    void start(const TestServerOptions& o) {
        server_.reset();
        std::string err;
        server_ = TestServer::start(o, &err);
        ASSERT_TRUE(server_) << err;
    }

    std::unique_ptr<TestServer> server_;
};

}  // namespace courier::test
