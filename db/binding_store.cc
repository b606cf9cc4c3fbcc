#include "db/binding_store.h"

namespace courier::db {

const char* binding_state_name(BindingState s) {
    switch (s) {
        case BindingState::kActive:
            return "active";
        case BindingState::kPending:
            return "pending";
        case BindingState::kApproved:
            return "approved";
        case BindingState::kSuperseded:
            return "superseded";
        case BindingState::kRevoked:
            return "revoked";
    }
    return "active";
}

}  // namespace courier::db
