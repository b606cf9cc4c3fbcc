// kill -9 durability: a child process enqueues commands from several threads
// and reports each uuid on a pipe only after enqueue returned ok; the parent
// SIGKILLs it after some acknowledgements, reopens the database and checks
// that every acknowledged command is there, whole, and the file is intact.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "common/encoding.h"
#include "db/sqlite/sqlite_store.h"
#include "tests/support/sqlite_query.h"
#include "tests/support/temp_dir.h"

namespace courier::db {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const SysTime kT0 = from_unix(1767758686);
const std::vector<std::string> kTargets = {"UDID-A", "UDID-B"};

std::string query(const fs::path& path, const std::string& sql) {
    return test::sqlite_query(path, sql, "<no row>");
}

// The child: never returns.
[[noreturn]] void enqueue_forever(const fs::path& path, int ack_fd) {
    ::signal(SIGPIPE, SIG_IGN);
    auto store = SqliteStore::open(path.string(), {}, SystemClock::instance());
    if (!store) ::_exit(2);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 1'000'000; ++i) {
                std::string uuid = random_uuid();
                NewCommand cmd{uuid, "DeviceInformation", "<plist>" + uuid + "</plist>", {}};
                if (!(*store)->enqueue(cmd, kTargets, kT0).is_ok()) ::_exit(3);
                std::string line = uuid + "\n";  // < PIPE_BUF: written atomically
                if (::write(ack_fd, line.data(), line.size()) !=
                    static_cast<ssize_t>(line.size())) {
                    ::_exit(4);
                }
            }
        });
    }
    for (auto& t : threads) t.join();
    ::_exit(0);
}

// Reads acknowledged uuids; SIGKILLs the child after kill_after of them and
// keeps reading what it had already acknowledged until EOF.
std::vector<std::string> acks_until_killed(pid_t child, int fd, size_t kill_after) {
    std::vector<std::string> acked;
    std::string buffer;
    bool killed = false;
    auto deadline = std::chrono::steady_clock::now() + 120s;
    while (std::chrono::steady_clock::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 1000) <= 0) continue;
        char chunk[4096];
        ssize_t n = ::read(fd, chunk, sizeof chunk);
        if (n <= 0) break;  // EOF: the child is gone
        buffer.append(chunk, static_cast<size_t>(n));
        size_t nl;
        while ((nl = buffer.find('\n')) != std::string::npos) {
            acked.push_back(buffer.substr(0, nl));
            buffer.erase(0, nl + 1);
        }
        if (!killed && acked.size() >= kill_after) {
            ::kill(child, SIGKILL);
            killed = true;
        }
    }
    if (!killed) ::kill(child, SIGKILL);
    EXPECT_TRUE(killed) << "child stopped after " << acked.size() << " acks";
    EXPECT_TRUE(buffer.empty()) << "torn ack line";
    return acked;
}

TEST(StoreCrash, AcknowledgedEnqueuesSurviveKill9) {
    TempDir dir;
    fs::path db = dir.path() / "courier.db";
    {
        auto store = SqliteStore::open(db.string(), {}, SystemClock::instance());
        ASSERT_TRUE(store.is_ok()) << store.status().to_string();
        for (const auto& id : kTargets) {
            TokenUpdateInput in;
            in.id = in.device_id = id;
            in.push_token = "token";
            in.push_magic = "magic";
            ASSERT_TRUE((*store)->apply_token_update(in, kT0));
        }
    }
    std::vector<std::string> all_acked;
    for (size_t round = 0; round < 5; ++round) {
        int fds[2];
        ASSERT_EQ(::pipe(fds), 0);
        pid_t child = ::fork();
        ASSERT_GE(child, 0);
        if (child == 0) {
            ::close(fds[0]);
            enqueue_forever(db, fds[1]);
        }
        ::close(fds[1]);
        auto acked = acks_until_killed(child, fds[0], 150 + 170 * round);
        ::close(fds[0]);
        int status = 0;
        ASSERT_EQ(::waitpid(child, &status, 0), child);
        ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
            << "child exited on its own, status " << status;
        all_acked.insert(all_acked.end(), acked.begin(), acked.end());

        auto store = SqliteStore::open(db.string(), {}, SystemClock::instance());
        ASSERT_TRUE(store.is_ok()) << store.status().to_string();
        for (const auto& uuid : all_acked) {
            auto cmd = (*store)->command(uuid);
            ASSERT_TRUE(cmd.is_ok()) << "round " << round << ": lost " << uuid;
            ASSERT_EQ(cmd->targets.size(), kTargets.size()) << uuid;
        }
        (*store)->close();
        EXPECT_EQ(query(db, "PRAGMA integrity_check"), "ok") << "round " << round;
        // No command was committed without all of its targets.
        EXPECT_EQ(query(db,
                        "SELECT count(*) FROM commands c WHERE (SELECT count(*) FROM targets t "
                        "WHERE t.command_seq = c.seq) <> 2"),
                  "0");
    }
    EXPECT_GE(all_acked.size(), 150u * 5);
}

}  // namespace
}  // namespace courier::db
