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

std::optional<BindingState> parse_binding_state(std::string_view name) {
    for (auto st : {BindingState::kActive, BindingState::kPending, BindingState::kApproved,
                    BindingState::kSuperseded, BindingState::kRevoked}) {
        if (name == binding_state_name(st)) return st;
    }
    return std::nullopt;
}

}  // namespace courier::db
