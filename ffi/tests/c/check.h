/* Tiny assertion helpers shared by the C tests of libumbra. */
#ifndef UMBRA_TEST_CHECK_H
#define UMBRA_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "umbra.h"

static inline void umbra_test_print_last_error(void) {
    char msg[512];
    size_t n = umbra_last_error(msg, sizeof msg);
    fprintf(stderr, "  last error (%zu bytes): %s\n", n, msg);
}

#define CHECK(expr)                                                                      \
    do {                                                                                 \
        if (!(expr)) {                                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr);    \
            umbra_test_print_last_error();                                               \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

#define CHECK_STATUS(call, expected)                                                     \
    do {                                                                                 \
        umbra_status got_ = (call);                                                      \
        umbra_status want_ = (expected);                                                 \
        if (got_ != want_) {                                                             \
            fprintf(stderr, "%s:%d: %s\n  returned %s (%u), expected %s (%u)\n", __FILE__, \
                    __LINE__, #call, umbra_status_name(got_), (unsigned)got_,            \
                    umbra_status_name(want_), (unsigned)want_);                          \
            umbra_test_print_last_error();                                               \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

#define OK(call) CHECK_STATUS(call, UMBRA_OK)

/* Sleeps for `ms` milliseconds. */
static inline void umbra_test_sleep_ms(long ms) {
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
}

#endif /* UMBRA_TEST_CHECK_H */
