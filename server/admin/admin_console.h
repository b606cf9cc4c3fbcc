// The web console's files under /ui/ (SPEC "Web console"), served from the
// binary (server/console_assets.h), and `/` redirecting there.
#pragma once

#include "server/http/http.h"

namespace courier::server {

// Registers GET /, GET /ui and GET /ui/{file...}. Register the console's
// API routes (UiSessions) first: /ui/session must win over the files.
void register_console_files(Router& router);

// The headers every console file carries: a strict Content-Security-Policy
// (default-src 'self', nothing inline), no sniffing, no framing, no referrer.
void add_console_headers(Response& r);

}  // namespace courier::server
