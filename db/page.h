// Paging for the store's list methods (EnrollmentStore::list_enrollments,
// CommandQueue::list_commands).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace courier::db {

struct Page {
    int64_t limit = 100;
    std::string cursor;  // opaque; empty for the first page
};
template <class T>
struct PageOf {
    std::vector<T> items;
    std::string next_cursor;  // empty at the end
};

}  // namespace courier::db
