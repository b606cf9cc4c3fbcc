// The storage contract, and Store: every role of it in one object.
//
// Every method of every role is thread-safe and synchronous; it may block on
// disk I/O, so the HTTP layer calls it from worker threads, never from an I/O
// thread. A method that returns ok has committed: its effect survives kill -9
// and power loss. A method that fails has changed nothing. Methods shaped like
// a device request (apply_authenticate, apply_token_update, next_command,
// apply_report) do all their work in one transaction.
//
// The roles, one header each; components take only the ones they use:
//   EnrollmentStore       db/enrollment_store.h      enrollments, facts, tokens, timeline
//   BindingStore          db/binding_store.h         identity certificate bindings
//   CommandQueue          db/command_queue.h         commands and the queue
//   PushCertStore         db/push_cert_store.h       APNs push certificates
//   PushStore             db/push_store.h            push attempts, pending push, re-push
//   EnrollmentTokenStore  db/enrollment_token_store.h  /enroll tokens
//   StoreHealth           db/store_health.h          ping
//   ReadScopes            db/read_scope.h            one read transaction per request
//   SessionStore          db/session_store.h         web console sessions
//   ConsoleStore          db/console_store.h         console overview, CSR keys
//   WebhookStore          db/webhook_store.h         webhook destinations, outbox, deliveries
// The roles share one database: a transaction of one role sees what another
// role committed, and a read scope covers the reads of every role of the
// same Store object.
//
// A backend implements Store, the combination. Implementations: SqliteStore
// (db/sqlite/sqlite_store.h). The suite in tests/db/ runs against every
// implementation.
#pragma once

#include "db/binding_store.h"
#include "db/command_queue.h"
#include "db/console_store.h"
#include "db/enrollment_store.h"
#include "db/enrollment_token_store.h"
#include "db/page.h"
#include "db/push_cert_store.h"
#include "db/push_store.h"
#include "db/read_scope.h"
#include "db/session_store.h"
#include "db/store_health.h"
#include "db/webhook_store.h"

namespace courier::db {

class Store : public StoreHealth,
              public ReadScopes,
              public EnrollmentStore,
              public BindingStore,
              public CommandQueue,
              public PushCertStore,
              public PushStore,
              public EnrollmentTokenStore,
              public SessionStore,
              public ConsoleStore,
              public WebhookStore {
  public:
    ~Store() override = default;
};

}  // namespace courier::db
