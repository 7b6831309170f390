/* The shadow-copy protocol through the C ABI (1.6): C writers (a table of function pointers and a
 * ctx) taken through a whole backup on the embedded array with the exact event order asserted
 * here; a writer that hangs at freeze (the set is aborted while the writer is still blocked, the
 * next set succeeds at once, the late call is answered with abort); a writer that fails (its
 * status names the step and the kind, no shadow remains); calls out of order (BAD_STATE); the
 * documents and shadow properties as JSON; fast recovery read back by the host's LUN number; a
 * software coordinator over volumes. */
#define _POSIX_C_SOURCE 200809L
#include "vss_writer.h"

static void step_is(const umbra_vss_backup *b, uint32_t want) {
    uint32_t step = 99;
    OK(umbra_vss_backup_get_step(b, &step));
    CHECK(step == want);
}

static char *shadows_of(const umbra_vss_coordinator *c) {
    size_t n = 0;
    CHECK_STATUS(umbra_vss_coordinator_list_shadows(c, NULL, 0, &n), UMBRA_E_BUFFER_TOO_SMALL);
    char *s = malloc(n + 1);
    CHECK(s != NULL);
    OK(umbra_vss_coordinator_list_shadows(c, s, n + 1, &n));
    return s;
}

static void no_shadows(const umbra_vss_coordinator *c) {
    char *s = shadows_of(c);
    if (strcmp(s, "[]") != 0) fprintf(stderr, "shadows left: %s\n", s);
    CHECK(strcmp(s, "[]") == 0);
    free(s);
}

static umbra_array *array_with_db(void) {
    umbra_array *a = NULL;
    OK(umbra_array_open(NULL, &a));
    OK(umbra_lun_create(a, "db", 4 * MiB, HOST));
    OK(umbra_lun_set_host_number(a, "db", HOST, 3));
    OK(umbra_lun_write(a, "db", HOST, 0, (const uint8_t *)"committed", 9));
    return a;
}

/* Gathers, starts a set (its id into `set_id`, 40 bytes), adds LUN "db" and prepares. */
static void set_of_db(umbra_vss_backup *b, char *set_id) {
    size_t n = 0;
    OK(umbra_vss_backup_gather(b));
    OK(umbra_vss_backup_start_set(b, set_id, 40, &n));
    CHECK(n == 36);
    OK(umbra_vss_backup_add_volume(b, "db"));
    OK(umbra_vss_backup_prepare(b));
}

/* A whole backup with one C writer, in VSS's order, the events checked one by one. */
static void whole_backup(void) {
    umbra_array *a = array_with_db();
    umbra_vss_coordinator *c = NULL;
    OK(umbra_vss_coordinator_create_array(a, 0, 0, 0, &c));
    writer_ctx w;
    ctx_init(&w, 0, 0);
    umbra_vss_writer t = table_for(&w);
    OK(umbra_vss_coordinator_add_writer(c, "db", NULL, &t));
    CHECK_STATUS(umbra_vss_coordinator_add_writer(c, "db", NULL, &t), UMBRA_E_ALREADY_EXISTS);
    CHECK_STATUS(umbra_vss_coordinator_add_writer(c, "x", "{not json", &t),
                 UMBRA_E_INVALID_DOCUMENT);

    umbra_vss_backup *b = NULL;
    CHECK_STATUS(umbra_vss_backup_create(c, 0, 77, &b), UMBRA_E_INVALID_ARGUMENT);
    /* The header names the contexts, attribute bits and backup types (VSS's values). */
    CHECK(UMBRA_VSS_CONTEXT_APP_ROLLBACK == (UMBRA_VSS_ATTR_PERSISTENT | UMBRA_VSS_ATTR_NO_AUTO_RELEASE));
    CHECK(UMBRA_VSS_CONTEXT_NAS_ROLLBACK == (UMBRA_VSS_CONTEXT_APP_ROLLBACK | UMBRA_VSS_ATTR_NO_WRITERS));
    CHECK(UMBRA_VSS_CONTEXT_CLIENT_ACCESSIBLE ==
          (UMBRA_VSS_CONTEXT_NAS_ROLLBACK | UMBRA_VSS_ATTR_CLIENT_ACCESSIBLE));
    CHECK(UMBRA_VSS_ATTR_HARDWARE_ASSISTED == 0x10000);
    CHECK(UMBRA_VSS_BACKUP_TYPE_FULL == 1 && UMBRA_VSS_BACKUP_TYPE_COPY == 5);
    CHECK_STATUS(umbra_vss_backup_create(c, UMBRA_VSS_CONTEXT_BACKUP, UMBRA_VSS_BACKUP_TYPE_OTHER + 1, &b),
                 UMBRA_E_INVALID_ARGUMENT);
    OK(umbra_vss_backup_create(c, UMBRA_VSS_CONTEXT_APP_ROLLBACK, UMBRA_VSS_BACKUP_TYPE_FULL, &b));
    step_is(b, UMBRA_VSS_STEP_INITIAL);
    OK(umbra_vss_backup_gather(b));
    log_is(&w, "identify");
    CHECK_STATUS(umbra_vss_backup_select_component(b, "db", "nope"), UMBRA_E_NOT_FOUND);
    OK(umbra_vss_backup_select_component(b, "db", "db"));
    char set_id[40];
    size_t n = 0;
    OK(umbra_vss_backup_start_set(b, set_id, sizeof set_id, &n));
    CHECK(n == 36);
    CHECK_STATUS(umbra_vss_backup_add_volume(b, "missing"), UMBRA_E_VOLUME_NOT_SUPPORTED);
    OK(umbra_vss_backup_add_volume(b, "db"));
    OK(umbra_vss_backup_prepare(b));
    OK(umbra_vss_backup_do_snapshot_set(b));
    step_is(b, UMBRA_VSS_STEP_SNAPSHOTTED);
    log_is(&w, "identify,prepare-backup,prepare-snapshot,freeze,thaw,post-snapshot");

    char *shadows = text_of(umbra_vss_backup_get_shadows, b);
    CHECK(strstr(shadows, set_id) != NULL);
    char *doc = text_of(umbra_vss_backup_get_components, b);
    CHECK(strstr(doc, set_id) != NULL);
    CHECK(strstr(doc, "\"format\"") != NULL);
    uint32_t state = 0, failure = 99;
    OK(umbra_vss_backup_get_writer_state(b, "db", &state, &failure));
    CHECK(state == 4 /* WAITING_FOR_POST_SNAPSHOT */ || state == 5 /* WAITING_FOR_BACKUP_COMPLETE */);
    CHECK(failure == UMBRA_VSS_FAILURE_NONE);
    CHECK_STATUS(umbra_vss_backup_get_writer_state(b, "other", &state, NULL), UMBRA_E_NOT_FOUND);

    OK(umbra_vss_backup_complete(b));
    OK(umbra_vss_backup_shutdown(b));
    step_is(b, UMBRA_VSS_STEP_ENDED);
    log_is(&w, "identify,prepare-backup,prepare-snapshot,freeze,thaw,post-snapshot,"
               "backup-complete,backup-shutdown");
    umbra_vss_backup_free(b);

    /* The persistent shadow stays, with its properties by id. */
    char shadow_id[40];
    json_string(shadows, "shadow_id", shadow_id, sizeof shadow_id);
    char props[4096];
    OK(umbra_vss_coordinator_get_shadow(c, shadow_id, props, sizeof props, &n));
    CHECK(strstr(props, set_id) != NULL);
    CHECK_STATUS(umbra_vss_coordinator_get_shadow(c, "not-a-uuid", props, sizeof props, &n),
                 UMBRA_E_INVALID_ARGUMENT);

    /* Fast recovery: the LUN is damaged; the shadow takes its place at host LUN 3. */
    OK(umbra_lun_write(a, "db", HOST, 0, (const uint8_t *)"GARBAGE!!", 9));
    char report[1024];
    OK(umbra_vss_coordinator_recover(c, shadow_id, NULL, report, sizeof report, &n));
    CHECK(strstr(report, "\"bytes_moved\":0") != NULL);
    CHECK(strstr(report, "\"damaged\":\"db\"") != NULL);
    umbra_lun_handle *h = NULL;
    OK(umbra_lun_handle_open(a, HOST, 3, &h));
    uint8_t buf[9];
    OK(umbra_lun_handle_read(h, 0, buf, sizeof buf));
    CHECK(memcmp(buf, "committed", 9) == 0);
    umbra_lun_handle_close(h);
    /* The damaged LUN keeps its name, masked off the host. */
    CHECK_STATUS(umbra_lun_read(a, "db", HOST, 0, buf, sizeof buf), UMBRA_E_ACCESS_DENIED);

    free(shadows);
    free(doc);
    umbra_vss_coordinator_free(c);
    umbra_array_free(a);
    ctx_destroy(&w);
}

/* A writer that fails prepare-snapshot: the set is aborted, the status names the step. */
static void failing_writer(void) {
    umbra_array *a = array_with_db();
    umbra_vss_coordinator *c = NULL;
    OK(umbra_vss_coordinator_create_array(a, 0, 0, 0, &c));
    writer_ctx w;
    ctx_init(&w, 0, UMBRA_VSS_EVENT_PREPARE_SNAPSHOT);
    umbra_vss_writer t = table_for(&w);
    OK(umbra_vss_coordinator_add_writer(c, "db", NULL, &t));
    umbra_vss_backup *b = NULL;
    OK(umbra_vss_backup_create(c, 0, 1, &b));
    char set_id[40];
    set_of_db(b, set_id);
    CHECK_STATUS(umbra_vss_backup_do_snapshot_set(b), UMBRA_E_WRITER_FAILED);
    step_is(b, UMBRA_VSS_STEP_ABORTED);
    log_is(&w, "identify,prepare-backup,prepare-snapshot,abort");
    uint32_t state = 0, failure = 0;
    OK(umbra_vss_backup_get_writer_state(b, "db", &state, &failure));
    CHECK(state == 8 /* FAILED_AT_PREPARE_SNAPSHOT */);
    CHECK(failure == UMBRA_VSS_FAILURE_RETRYABLE);
    char *status = text_of(umbra_vss_backup_get_writer_status, b);
    CHECK(strstr(status, "\"state\":\"FAILED_AT_PREPARE_SNAPSHOT\"") != NULL);
    CHECK(strstr(status, "disk busy at prepare-snapshot") != NULL);
    CHECK(strstr(status, "\"kind\":\"retryable\"") != NULL);
    free(status);
    no_shadows(c);
    /* Once over, every step is out of order. */
    CHECK_STATUS(umbra_vss_backup_complete(b), UMBRA_E_BAD_STATE);
    umbra_vss_backup_free(b);
    umbra_vss_coordinator_free(c);
    umbra_array_free(a);
    ctx_destroy(&w);
}

/* A writer that never answers freeze until released: the set is aborted without it, the next
 * set starts at once and succeeds, and its late call is answered with abort. */
static void hanging_writer(void) {
    umbra_array *a = array_with_db();
    umbra_vss_coordinator *c = NULL;
    OK(umbra_vss_coordinator_create_array(a, 3000, 0, 10000, &c));
    writer_ctx hung, good;
    ctx_init(&hung, UMBRA_VSS_EVENT_FREEZE, 0);
    ctx_init(&good, 0, 0);
    umbra_vss_writer th = table_for(&hung), tg = table_for(&good);
    OK(umbra_vss_coordinator_add_writer(c, "hung", NULL, &th));
    OK(umbra_vss_coordinator_add_writer(c, "good", NULL, &tg));

    umbra_vss_backup *b = NULL;
    OK(umbra_vss_backup_create(c, 0, 1, &b));
    char set_id[40];
    set_of_db(b, set_id);
    CHECK_STATUS(umbra_vss_backup_do_snapshot_set(b), UMBRA_E_WRITER_NOT_RESPONDING);
    /* Returned while the writer is still blocked in freeze. */
    pthread_mutex_lock(&hung.mu);
    CHECK(hung.hanging && !hung.released);
    pthread_mutex_unlock(&hung.mu);
    uint32_t state = 0, failure = 0;
    OK(umbra_vss_backup_get_writer_state(b, "hung", &state, &failure));
    CHECK(state == 9 /* FAILED_AT_FREEZE */);
    CHECK(failure == UMBRA_VSS_FAILURE_TIMEOUT);
    char *status = text_of(umbra_vss_backup_get_writer_status, b);
    CHECK(strstr(status, "\"responding\":false") != NULL);
    free(status);
    log_is(&good, "identify,prepare-backup,prepare-snapshot,freeze,abort");
    no_shadows(c);
    umbra_vss_backup_free(b);

    /* The next set: the hung writer is left out; the set succeeds. */
    clear_log(&good);
    OK(umbra_vss_backup_create(c, 0, 1, &b));
    set_of_db(b, set_id);
    OK(umbra_vss_backup_do_snapshot_set(b));
    OK(umbra_vss_backup_complete(b));
    OK(umbra_vss_backup_shutdown(b));
    log_is(&good, "identify,prepare-backup,prepare-snapshot,freeze,thaw,post-snapshot,"
                  "backup-complete,backup-shutdown");
    umbra_vss_backup_free(b);

    /* Released: its late freeze returns and is answered with abort. */
    pthread_mutex_lock(&hung.mu);
    hung.released = true;
    pthread_cond_broadcast(&hung.cv);
    pthread_mutex_unlock(&hung.mu);
    bool responding = false;
    OK(umbra_vss_coordinator_wait_writer(c, "hung", 60000, &responding));
    CHECK(responding);
    log_is(&hung, "identify,prepare-backup,prepare-snapshot,freeze,abort");

    umbra_vss_coordinator_free(c);
    umbra_array_free(a);
    ctx_destroy(&hung);
    ctx_destroy(&good);
}

/* A transportable set: its document is saved, the set imported by another host (read-only,
 * once), then broken into ordinary LUNs. */
static void transport(void) {
    static const char *BACKUP_HOST = "iqn.2024-01.org.example:backup-server";
    umbra_array *a = array_with_db();
    umbra_vss_coordinator *c = NULL;
    OK(umbra_vss_coordinator_create_array(a, 0, 0, 0, &c));
    umbra_vss_backup *b = NULL;
    OK(umbra_vss_backup_create(c, UMBRA_VSS_CONTEXT_APP_ROLLBACK | UMBRA_VSS_ATTR_TRANSPORTABLE,
                               UMBRA_VSS_BACKUP_TYPE_COPY, &b));
    char set_id[40];
    size_t n = 0;
    set_of_db(b, set_id);
    OK(umbra_vss_backup_do_snapshot_set(b));
    char *doc = text_of(umbra_vss_backup_get_components, b);
    OK(umbra_vss_backup_complete(b));
    OK(umbra_vss_backup_shutdown(b));
    umbra_vss_backup_free(b);
    OK(umbra_lun_write(a, "db", HOST, 0, (const uint8_t *)"later....", 9));

    char out[4096];
    CHECK_STATUS(umbra_vss_coordinator_import(c, "{\"format\":1}", BACKUP_HOST, out, sizeof out, &n),
                 UMBRA_E_INVALID_DOCUMENT);
    OK(umbra_vss_coordinator_import(c, doc, BACKUP_HOST, out, sizeof out, &n));
    char lun[128];
    json_string(strstr(out, "\"shadow\":"), "name", lun, sizeof lun);
    uint8_t buf[9];
    OK(umbra_lun_read(a, lun, BACKUP_HOST, 0, buf, sizeof buf));
    CHECK(memcmp(buf, "committed", 9) == 0);
    CHECK_STATUS(umbra_lun_write(a, lun, BACKUP_HOST, 0, buf, sizeof buf), UMBRA_E_ACCESS_DENIED);
    CHECK_STATUS(umbra_vss_coordinator_import(c, doc, BACKUP_HOST, out, sizeof out, &n),
                 UMBRA_E_BAD_STATE);

    OK(umbra_vss_coordinator_break_set(c, set_id, out, sizeof out, &n));
    CHECK(strstr(out, lun) != NULL);
    free(doc);
    umbra_vss_coordinator_free(c);
    umbra_array_free(a);
}

/* Calls out of order are BAD_STATE and change nothing. */
static void out_of_order(void) {
    umbra_array *a = array_with_db();
    umbra_vss_coordinator *c = NULL;
    OK(umbra_vss_coordinator_create_array(a, 0, 0, 0, &c));
    umbra_vss_backup *b = NULL;
    OK(umbra_vss_backup_create(c, 0, 1, &b));
    char set_id[40];
    size_t n = 0;
    CHECK_STATUS(umbra_vss_backup_prepare(b), UMBRA_E_BAD_STATE);
    CHECK_STATUS(umbra_vss_backup_start_set(b, set_id, sizeof set_id, &n), UMBRA_E_BAD_STATE);
    CHECK_STATUS(umbra_vss_backup_do_snapshot_set(b), UMBRA_E_BAD_STATE);
    CHECK_STATUS(umbra_vss_backup_get_components(b, set_id, sizeof set_id, &n), UMBRA_E_BAD_STATE);
    step_is(b, UMBRA_VSS_STEP_INITIAL);
    OK(umbra_vss_backup_gather(b));
    CHECK_STATUS(umbra_vss_backup_gather(b), UMBRA_E_BAD_STATE);
    CHECK_STATUS(umbra_vss_backup_add_volume(b, "db"), UMBRA_E_BAD_STATE);
    OK(umbra_vss_backup_start_set(b, set_id, sizeof set_id, &n));
    CHECK_STATUS(umbra_vss_backup_do_snapshot_set(b), UMBRA_E_BAD_STATE);
    step_is(b, UMBRA_VSS_STEP_SET_STARTED);
    /* A second requester while this set is in flight. */
    umbra_vss_backup *other = NULL;
    OK(umbra_vss_backup_create(c, 0, 1, &other));
    OK(umbra_vss_backup_gather(other));
    CHECK_STATUS(umbra_vss_backup_start_set(other, set_id, sizeof set_id, &n),
                 UMBRA_E_SNAPSHOT_SET_IN_PROGRESS);
    OK(umbra_vss_backup_abort(b));
    step_is(b, UMBRA_VSS_STEP_ABORTED);
    CHECK_STATUS(umbra_vss_backup_abort(b), UMBRA_E_BAD_STATE);
    OK(umbra_vss_backup_start_set(other, set_id, sizeof set_id, &n));
    umbra_vss_backup_free(other);
    umbra_vss_backup_free(b);
    CHECK_STATUS(umbra_vss_backup_gather(NULL), UMBRA_E_NULL_POINTER);
    umbra_vss_coordinator_free(c);
    umbra_array_free(a);
}

/* The software provider over two volumes: one set holds a snapshot of each. */
static void over_volumes(void) {
    umbra_volume *v1 = NULL, *v2 = NULL;
    OK(umbra_volume_create_mem(1 * MiB, 4096, &v1));
    OK(umbra_volume_create_mem(1 * MiB, 4096, &v2));
    const umbra_volume *vols[] = {v1, v2};
    const char *names[] = {"logs", "data"};
    umbra_vss_coordinator *c = NULL;
    CHECK_STATUS(umbra_vss_coordinator_create_volumes(vols, names, 0, 0, 0, 0, &c),
                 UMBRA_E_INVALID_ARGUMENT);
    OK(umbra_vss_coordinator_create_volumes(vols, names, 2, 0, 0, 0, &c));
    umbra_vss_backup *b = NULL;
    OK(umbra_vss_backup_create(c, 0x09, 1, &b));
    OK(umbra_vss_backup_gather(b));
    char set_id[40];
    size_t n = 0;
    OK(umbra_vss_backup_start_set(b, set_id, sizeof set_id, &n));
    OK(umbra_vss_backup_add_volume(b, "logs"));
    OK(umbra_vss_backup_add_volume(b, "data"));
    OK(umbra_vss_backup_prepare(b));
    OK(umbra_vss_backup_do_snapshot_set(b));
    OK(umbra_vss_backup_complete(b));
    OK(umbra_vss_backup_shutdown(b));
    umbra_vss_backup_free(b);
    char *s = shadows_of(c);
    CHECK(strstr(s, "\"logs\"") != NULL && strstr(s, "\"data\"") != NULL);
    free(s);
    OK(umbra_vss_coordinator_delete_shadows(c, NULL, set_id, &n));
    CHECK(n == 2);
    no_shadows(c);
    CHECK_STATUS(umbra_vss_coordinator_delete_shadows(c, NULL, set_id, &n), UMBRA_E_NOT_FOUND);
    umbra_vss_coordinator_free(c);
    umbra_volume_free(v1);
    umbra_volume_free(v2);
}

int main(void) {
    CHECK(strcmp(umbra_status_name(UMBRA_E_WRITER_NOT_RESPONDING), "UMBRA_E_WRITER_NOT_RESPONDING") == 0);
    out_of_order();
    whole_backup();
    failing_writer();
    hanging_writer();
    transport();
    over_volumes();
    printf("vss: ok\n");
    return 0;
}
