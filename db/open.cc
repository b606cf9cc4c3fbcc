#include "db/open.h"

#include <filesystem>

#include "db/postgres/pg_store.h"
#include "db/sqlite/sqlite_store.h"

namespace courier::db {

bool is_postgres_url(const std::string& url) {
    return url.rfind("postgres://", 0) == 0 || url.rfind("postgresql://", 0) == 0;
}

Result<std::unique_ptr<Store>> open_store(const std::string& url, const std::string& data_dir,
                                          const OpenOptions& options) {
    std::string path = url;
    if (is_postgres_url(url)) {
        PgOptions pg;
        pg.pool_size = options.pg_pool;
        auto store = PgStore::open(url, pg, SystemClock::instance());
        if (!store) return store.status();
        return std::unique_ptr<Store>(std::move(store).value());
    }
    if (url.rfind("sqlite://", 0) == 0) {
        path = url.substr(std::string_view("sqlite://").size());
    } else if (url.find("://") != std::string::npos) {
        return invalid("unsupported --db URL scheme; use sqlite://PATH or postgres://…");
    }
    if (path.empty()) path = (std::filesystem::path(data_dir) / "courier.db").string();
    auto store = SqliteStore::open(path, SqliteOptions{}, SystemClock::instance());
    if (!store) return store.status();
    return std::unique_ptr<Store>(std::move(store).value());
}

}  // namespace courier::db
