// JSON shapes of the admin API, shared by its handler files.
#pragma once

#include <boost/json.hpp>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "db/store.h"
#include "server/http/http.h"

namespace courier::server {

boost::json::value time_json(const std::optional<SysTime>& t);
boost::json::object device_json(const db::Enrollment& e);
boost::json::object command_json(const db::CommandInfo& c, bool with_results);
Response json_response(int status, const boost::json::value& v);
// Splits "a,b,c" (path segment of /v1/enqueue and /v1/push), dropping empties
// and duplicates, keeping order.
std::vector<std::string> split_ids(const std::string& s);
// Page from ?limit=&cursor=; limit 1..1000 (default 100); kInvalid when
// limit is not a whole number in that range.
Result<db::Page> page_from(const Request& req);
boost::json::object page_json(boost::json::array items, const std::string& next_cursor);

}  // namespace courier::server
