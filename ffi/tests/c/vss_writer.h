/* What the shadow-copy C tests (vss.c, vss_restore.c) share: a C writer logging the events it
 * gets, that hangs at one event until released and fails at another; string outputs into
 * malloc'd strings; a JSON string field read back. */
#ifndef UMBRA_TEST_VSS_WRITER_H
#define UMBRA_TEST_VSS_WRITER_H

#include <pthread.h>
#include <stdbool.h>

#include "check.h"

#define MiB (1024u * 1024u)

static const char *HOST = "iqn.2024-01.org.example:db-server";

static const char *EVENT_NAMES[] = {
    "?",           "identify",        "prepare-backup",  "prepare-snapshot",
    "freeze",      "thaw",            "post-snapshot",   "abort",
    "backup-complete", "backup-shutdown", "pre-restore", "post-restore",
};

/* What one C writer saw, and how it misbehaves. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char log[1024];
    uint32_t hang_at;  /* an event that blocks until `released` (0: none) */
    uint32_t fail_at;  /* an event that fails, as `fail_kind` (0: none) */
    uint32_t fail_kind; /* UMBRA_VSS_FAILURE_RETRYABLE unless set after ctx_init */
    bool hanging;      /* the hang began */
    bool released;
    bool bad_call;     /* a call came without a set id after identify, or with no time left */
} writer_ctx;

static inline void ctx_init(writer_ctx *w, uint32_t hang_at, uint32_t fail_at) {
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->hang_at = hang_at;
    w->fail_at = fail_at;
    w->fail_kind = UMBRA_VSS_FAILURE_RETRYABLE;
}

static inline void ctx_destroy(writer_ctx *w) {
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
}

static inline uint32_t on_event(void *ctx, uint32_t event, const char *set_id, uint64_t ms_left,
                         char *message) {
    writer_ctx *w = ctx;
    pthread_mutex_lock(&w->mu);
    if (w->log[0] != '\0') strcat(w->log, ",");
    strcat(w->log, event <= UMBRA_VSS_EVENT_POST_RESTORE ? EVENT_NAMES[event] : "?");
    if ((event != UMBRA_VSS_EVENT_IDENTIFY && strlen(set_id) != 36) || ms_left == 0)
        w->bad_call = true;
    if (event == w->hang_at) {
        w->hanging = true;
        while (!w->released) pthread_cond_wait(&w->cv, &w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    if (event == w->fail_at) {
        snprintf(message, UMBRA_VSS_MESSAGE_LEN, "disk busy at %s", EVENT_NAMES[event]);
        return w->fail_kind;
    }
    return UMBRA_VSS_FAILURE_NONE;
}

static inline umbra_vss_writer table_for(writer_ctx *w) {
    umbra_vss_writer t;
    t.ctx = w;
    t.identify = t.prepare_backup = t.prepare_snapshot = t.freeze = t.thaw = on_event;
    t.post_snapshot = t.abort = t.backup_complete = t.backup_shutdown = on_event;
    t.pre_restore = t.post_restore = on_event;
    return t;
}

static inline void log_is(writer_ctx *w, const char *want) {
    pthread_mutex_lock(&w->mu);
    bool same = strcmp(w->log, want) == 0;
    if (!same) fprintf(stderr, "events \"%s\"\n  want \"%s\"\n", w->log, want);
    bool bad = w->bad_call;
    pthread_mutex_unlock(&w->mu);
    CHECK(same);
    CHECK(!bad);
}

static inline void clear_log(writer_ctx *w) {
    pthread_mutex_lock(&w->mu);
    w->log[0] = '\0';
    pthread_mutex_unlock(&w->mu);
}

/* A JSON output into a malloc'd string: the length asked first, then the text. */
static inline char *text_of(umbra_status (*f)(const umbra_vss_backup *, char *, size_t, size_t *),
                     const umbra_vss_backup *b) {
    size_t n = 0;
    CHECK_STATUS(f(b, NULL, 0, &n), UMBRA_E_BUFFER_TOO_SMALL);
    char *s = malloc(n + 1);
    CHECK(s != NULL);
    OK(f(b, s, n + 1, &n));
    CHECK(strlen(s) == n);
    return s;
}

/* Copies the value of the first `"key":"..."` in `json` into `out` (a UUID or a name). */
static inline void json_string(const char *json, const char *key, char *out, size_t cap) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(json, pat);
    CHECK(p != NULL);
    p += strlen(pat);
    const char *end = strchr(p, '"');
    CHECK(end != NULL && (size_t)(end - p) < cap);
    memcpy(out, p, (size_t)(end - p));
    out[end - p] = '\0';
}

#endif /* UMBRA_TEST_VSS_WRITER_H */
