#include "db/open.h"

#include <filesystem>

#include "db/sqlite/sqlite_store.h"

namespace courier::db {

Result<std::unique_ptr<Store>> open_store(const std::string& url, const std::string& data_dir) {
    std::string path = url;
    if (url.rfind("postgres://", 0) == 0 || url.rfind("postgresql://", 0) == 0) {
        return invalid("postgres:// is planned but not built yet; use sqlite://");
    }
    if (url.rfind("sqlite://", 0) == 0) {
        path = url.substr(std::string_view("sqlite://").size());
    } else if (url.find("://") != std::string::npos) {
        return invalid("unsupported --db URL scheme; use sqlite://PATH");
    }
    if (path.empty()) path = (std::filesystem::path(data_dir) / "courier.db").string();
    auto store = SqliteStore::open(path, SqliteOptions{}, SystemClock::instance());
    if (!store) return store.status();
    return std::unique_ptr<Store>(std::move(store).value());
}

}  // namespace courier::db
