#include "db/enrollment_store.h"

namespace courier::db {

const char* state_name(EnrollmentState s) {
    switch (s) {
        case EnrollmentState::kPending:
            return "pending";
        case EnrollmentState::kEnrolled:
            return "enrolled";
        case EnrollmentState::kUnenrolled:
            return "unenrolled";
        case EnrollmentState::kRetired:
            return "retired";
    }
    return "pending";
}

}  // namespace courier::db
