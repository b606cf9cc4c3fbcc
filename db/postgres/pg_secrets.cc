// PgStore: generated key material shared by every node (SPEC "Secrets in
// the database"): the TLS CA, the enrollment CA and the API key are kept in
// the `secrets` table, so a second node on the same database serves the same
// CA, profiles and key; each node still keeps copies in its own data dir.
#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "db/postgres/pg_internal.h"
#include "db/postgres/pg_store.h"

namespace courier::db {

using pg::Connection;
using pg::PgError;

namespace {

constexpr int64_t kSecretsLockKey = 0x636f757269657202;  // "courier\x02"

std::optional<std::string> read_whole(const std::filesystem::path& p) {
    std::ifstream f(p, std::ios::binary);
    if (!f) return std::nullopt;
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// Written to a temp file and renamed into place: never half a key. Keys and
// the API key 0600; certificates 0644.
Status write_whole(const std::filesystem::path& p, const std::string& content) {
    // A directory it needs (tls/) is made private, as the data dir is.
    if (::mkdir(p.parent_path().c_str(), 0700) != 0 && errno != EEXIST)
        return internal_error("cannot create " + p.parent_path().string() + ": " +
                              std::strerror(errno));
    mode_t mode = p.extension() == ".crt" ? 0644 : 0600;
    std::string tmp = p.string() + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) return internal_error("cannot write " + tmp + ": " + std::strerror(errno));
    bool ok = ::fchmod(fd, mode) == 0 &&
              ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()) &&
              ::fsync(fd) == 0;
    ::close(fd);
    if (!ok || ::rename(tmp.c_str(), p.c_str()) != 0)
        return internal_error("cannot write " + p.string() + ": " + std::strerror(errno));
    return Status::ok();
}

}  // namespace

Status PgStore::share_files(const std::string& dir, const std::vector<std::string>& files,
                            const std::function<Status()>& generate) {
    auto conn = take();
    if (!conn) return conn.status();
    Connection& c = **conn;
    Status out;
    bool locked = false;
    try {
        // One node at a time: the first generates, the others wait and
        // then find the database's copies.
        c.exec(fmt::format("SELECT pg_advisory_lock({})", kSecretsLockKey));
        locked = true;
        const auto base = std::filesystem::path(dir);
        for (const auto& name : files) {
            auto r = c.query("SELECT value FROM secrets WHERE name = $1", name);
            if (r.empty()) continue;
            std::string value = r.bytes(0, 0);
            auto local = read_whole(base / name);
            if (local && *local == value) continue;
            if (local)
                spdlog::warn("{}: replaced by the copy in the database (shared by every node)",
                             (base / name).string());
            if (out = write_whole(base / name, value); !out) break;
        }
        if (out) out = generate();
        for (size_t i = 0; out && i < files.size(); ++i) {
            auto local = read_whole(base / files[i]);
            if (!local) continue;
            auto r = c.query(
                "INSERT INTO secrets (name, value, created_at) VALUES ($1, $2, $3) "
                "ON CONFLICT (name) DO NOTHING",
                files[i], pg::Bytes{*local}, to_unix(clock_.now()));
            if (r.affected() > 0)
                spdlog::info("{}: stored in the database for the other nodes", files[i]);
        }
    } catch (const PgError& e) {
        out = e.status();
    }
    if (locked && c.ok())
        (void)c.try_exec(fmt::format("SELECT pg_advisory_unlock({})", kSecretsLockKey));
    give_back(std::move(*conn));
    return out;
}

}  // namespace courier::db
