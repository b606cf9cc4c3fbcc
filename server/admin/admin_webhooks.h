// The webhooks admin API (SPEC "Webhooks", docs/api.md): destinations and
// their deliveries. Routes go through AdminApi's origin and key checks.
#pragma once

#include "common/clock.h"
#include "db/webhook_store.h"
#include "server/http/http.h"

namespace courier::server {

class AdminApi;
class WebhookService;

// GET/POST /v1/webhooks, GET/PATCH/DELETE /v1/webhooks/{id},
// GET /v1/webhooks/{id}/deliveries, POST /v1/webhooks/{id}/deliveries/{event_id}/retry.
void register_webhook_routes(Router& router, const AdminApi& admin, db::WebhookStore& store,
                             WebhookService& service, const Clock& clock);

// Checks a destination's fields (url http(s)://, topic prefixes, id);
// the reason, or empty when valid.
std::string webhook_invalid(const db::Webhook& w);

}  // namespace courier::server
