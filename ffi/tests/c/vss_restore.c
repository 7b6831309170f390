/* Restore through the C ABI (1.7): a backup with a C writer whose component is marked backed up
 * (umbra_vss_backup_set_backup_succeeded, read back in the saved document), then a restore
 * session from that document in VSS's order (gather, select, pre-restore, restore,
 * post-restore) with the events the writer saw asserted and the data back, on the software
 * provider (revert) and on the array (resync); a writer failing pre-restore (its component is
 * not restored: status "none", the volume untouched); calls out of order (BAD_STATE); revert and
 * resync of a shadow on their own as umbra_async operations; bad ids and documents. */
#define _POSIX_C_SOURCE 200809L
#include "vss_writer.h"

/* log_is, then the log cleared. */
static void seen(writer_ctx *w, const char *want) {
    log_is(w, want);
    clear_log(w);
}

static char *restore_text(umbra_status (*f)(const umbra_vss_restore *, char *, size_t, size_t *),
                          const umbra_vss_restore *r) {
    size_t n = 0;
    CHECK_STATUS(f(r, NULL, 0, &n), UMBRA_E_BUFFER_TOO_SMALL);
    char *s = malloc(n + 1);
    CHECK(s != NULL);
    OK(f(r, s, n + 1, &n));
    return s;
}

static void restore_step_is(const umbra_vss_restore *r, uint32_t want) {
    uint32_t step = 99;
    OK(umbra_vss_restore_get_step(r, &step));
    CHECK(step == want);
}

/* A whole persistent backup of `volume` with writer "db": its component marked backed up. The
 * Backup Components document is returned (malloc'd); the shadow's id into `shadow_id`. */
static char *backup(umbra_vss_coordinator *c, const char *volume, char *shadow_id) {
    umbra_vss_backup *b = NULL;
    OK(umbra_vss_backup_create(c, 0x09 /* APP_ROLLBACK: persistent */, 1, &b));
    OK(umbra_vss_backup_gather(b));
    OK(umbra_vss_backup_select_component(b, "db", "db"));
    char set_id[40];
    size_t n = 0;
    OK(umbra_vss_backup_start_set(b, set_id, sizeof set_id, &n));
    OK(umbra_vss_backup_add_volume(b, volume));
    OK(umbra_vss_backup_prepare(b));
    /* Not before the set is made. */
    CHECK_STATUS(umbra_vss_backup_set_backup_succeeded(b, "db", "db", true), UMBRA_E_BAD_STATE);
    OK(umbra_vss_backup_do_snapshot_set(b));
    CHECK_STATUS(umbra_vss_backup_set_backup_succeeded(b, "db", "nope", true), UMBRA_E_NOT_FOUND);
    CHECK_STATUS(umbra_vss_backup_set_backup_succeeded(b, "other", "db", true), UMBRA_E_NOT_FOUND);
    char *before = text_of(umbra_vss_backup_get_components, b);
    CHECK(strstr(before, "\"backup_succeeded\":false") != NULL);
    free(before);
    OK(umbra_vss_backup_set_backup_succeeded(b, "db", "db", true));
    char *doc = text_of(umbra_vss_backup_get_components, b);
    CHECK(strstr(doc, "\"backup_succeeded\":true") != NULL);
    char *shadows = text_of(umbra_vss_backup_get_shadows, b);
    json_string(shadows, "shadow_id", shadow_id, 40);
    free(shadows);
    OK(umbra_vss_backup_complete(b));
    OK(umbra_vss_backup_shutdown(b));
    umbra_vss_backup_free(b);
    return doc;
}

/* The software provider: a restore session reverts the volume; a writer that fails pre-restore
 * keeps its component from being restored; revert on its own. */
static void software(void) {
    umbra_volume *v = NULL;
    OK(umbra_volume_create_mem(1 * MiB, 4096, &v));
    OK(umbra_volume_write(v, 0, (const uint8_t *)"committed", 9));
    const umbra_volume *vols[] = {v};
    const char *names[] = {"data"};
    umbra_vss_coordinator *c = NULL;
    OK(umbra_vss_coordinator_create_volumes(vols, names, 1, 0, 0, 0, &c));
    writer_ctx w;
    ctx_init(&w, 0, 0);
    umbra_vss_writer t = table_for(&w);
    OK(umbra_vss_coordinator_add_writer(c, "db", NULL, &t));
    char shadow_id[40];
    char *doc = backup(c, "data", shadow_id);
    seen(&w, "identify,prepare-backup,prepare-snapshot,freeze,thaw,post-snapshot,"
               "backup-complete,backup-shutdown");

    /* Bad documents change nothing and make no session. */
    umbra_vss_restore *r = NULL;
    CHECK_STATUS(umbra_vss_restore_create(c, "{\"format\":", &r), UMBRA_E_INVALID_DOCUMENT);
    CHECK(r == NULL);
    CHECK_STATUS(umbra_vss_restore_create(c, NULL, &r), UMBRA_E_NULL_POINTER);

    /* The damage, then the restore in VSS's order; out of order is BAD_STATE. */
    OK(umbra_volume_write(v, 0, (const uint8_t *)"GARBAGE!!", 9));
    OK(umbra_vss_restore_create(c, doc, &r));
    restore_step_is(r, UMBRA_VSS_RESTORE_STEP_LOADED);
    CHECK_STATUS(umbra_vss_restore_pre_restore(r), UMBRA_E_BAD_STATE);
    CHECK_STATUS(umbra_vss_restore_do_restore(r), UMBRA_E_BAD_STATE);
    OK(umbra_vss_restore_gather(r));
    CHECK_STATUS(umbra_vss_restore_gather(r), UMBRA_E_BAD_STATE);
    CHECK_STATUS(umbra_vss_restore_select_component(r, "db", "nope"), UMBRA_E_NOT_FOUND);
    OK(umbra_vss_restore_select_component(r, "db", "db"));
    CHECK_STATUS(umbra_vss_restore_select_component(r, "db", "db"), UMBRA_E_ALREADY_EXISTS);
    char *status = restore_text(umbra_vss_restore_get_status, r);
    CHECK(strcmp(status, "[]") == 0);
    free(status);
    OK(umbra_vss_restore_pre_restore(r));
    CHECK_STATUS(umbra_vss_restore_post_restore(r), UMBRA_E_BAD_STATE);
    OK(umbra_vss_restore_do_restore(r));
    restore_step_is(r, UMBRA_VSS_RESTORE_STEP_RESTORED);
    OK(umbra_vss_restore_post_restore(r));
    restore_step_is(r, UMBRA_VSS_RESTORE_STEP_ENDED);
    seen(&w, "identify,pre-restore,post-restore");
    status = restore_text(umbra_vss_restore_get_status, r);
    CHECK(strstr(status, "\"status\":\"all\"") != NULL);
    CHECK(strstr(status, "\"status_code\":2") != NULL);
    CHECK(strstr(status, "\"volumes\":[\"data\"]") != NULL);
    free(status);
    umbra_vss_restore_free(r);
    uint8_t buf[9];
    OK(umbra_volume_read(v, 0, buf, sizeof buf));
    CHECK(memcmp(buf, "committed", 9) == 0);

    /* Revert on its own: no writer called, progress 100 once done. */
    OK(umbra_volume_write(v, 0, (const uint8_t *)"LATER....", 9));
    umbra_async *op = NULL;
    CHECK_STATUS(umbra_vss_coordinator_revert_async(c, "not-a-uuid", &op), UMBRA_E_INVALID_ARGUMENT);
    CHECK_STATUS(umbra_vss_coordinator_revert_async(c, "00000000-0000-4000-8000-000000000000", &op),
                 UMBRA_E_NOT_FOUND);
    CHECK(op == NULL);
    CHECK_STATUS(umbra_vss_coordinator_resync_async(c, shadow_id, NULL, &op), UMBRA_E_UNSUPPORTED);
    OK(umbra_vss_coordinator_revert_async(c, shadow_id, &op));
    OK(umbra_async_wait(op));
    uint32_t pct = 0;
    OK(umbra_async_get_percent(op, &pct));
    CHECK(pct == 100);
    umbra_async_free(op);
    OK(umbra_volume_read(v, 0, buf, sizeof buf));
    CHECK(memcmp(buf, "committed", 9) == 0);
    seen(&w, "");
    free(doc);
    umbra_vss_coordinator_free(c);
    umbra_volume_free(v);
    ctx_destroy(&w);
}

/* The array: a restore session resyncs the LUN; a writer failing pre-restore keeps its
 * component (and the LUN) as they are; resync on its own, onto another LUN too. */
static void hardware(void) {
    umbra_array *a = NULL;
    OK(umbra_array_open(NULL, &a));
    OK(umbra_lun_create(a, "db", 4 * MiB, HOST));
    OK(umbra_lun_write(a, "db", HOST, 0, (const uint8_t *)"committed", 9));
    umbra_vss_coordinator *c = NULL;
    OK(umbra_vss_coordinator_create_array(a, 0, 0, 0, &c));
    writer_ctx w;
    ctx_init(&w, 0, UMBRA_VSS_EVENT_PRE_RESTORE);
    w.fail_kind = UMBRA_VSS_FAILURE_NON_RETRYABLE;
    umbra_vss_writer t = table_for(&w);
    OK(umbra_vss_coordinator_add_writer(c, "db", NULL, &t));
    char shadow_id[40];
    char *doc = backup(c, "db", shadow_id);
    seen(&w, "identify,prepare-backup,prepare-snapshot,freeze,thaw,post-snapshot,"
               "backup-complete,backup-shutdown");
    OK(umbra_lun_write(a, "db", HOST, 0, (const uint8_t *)"GARBAGE!!", 9));

    /* The writer fails pre-restore: nothing of its component is restored. */
    umbra_vss_restore *r = NULL;
    OK(umbra_vss_restore_create(c, doc, &r));
    OK(umbra_vss_restore_gather(r));
    OK(umbra_vss_restore_pre_restore(r));
    OK(umbra_vss_restore_do_restore(r));
    OK(umbra_vss_restore_post_restore(r));
    /* Post-restore still comes, as to every writer of the session. */
    seen(&w, "identify,pre-restore,post-restore");
    char *status = restore_text(umbra_vss_restore_get_status, r);
    CHECK(strstr(status, "\"status\":\"none\"") != NULL);
    CHECK(strstr(status, "disk busy at pre-restore") != NULL);
    free(status);
    char *ws = restore_text(umbra_vss_restore_get_writer_status, r);
    CHECK(strstr(ws, "\"state\":\"FAILED_AT_PRE_RESTORE\"") != NULL);
    CHECK(strstr(ws, "\"kind\":\"non_retryable\"") != NULL || strstr(ws, "\"kind\":\"non-retryable\"") != NULL);
    free(ws);
    umbra_vss_restore_free(r);
    uint8_t buf[9];
    OK(umbra_lun_read(a, "db", HOST, 0, buf, sizeof buf));
    CHECK(memcmp(buf, "GARBAGE!!", 9) == 0);

    /* The writer replaced by one that answers: the restore resyncs the LUN. */
    OK(umbra_vss_coordinator_remove_writer(c, "db"));
    writer_ctx w2;
    ctx_init(&w2, 0, 0);
    umbra_vss_writer t2 = table_for(&w2);
    OK(umbra_vss_coordinator_add_writer(c, "db", NULL, &t2));
    umbra_lun_stats before, after;
    OK(umbra_lun_get_stats(a, "db", &before));
    OK(umbra_vss_restore_create(c, doc, &r));
    OK(umbra_vss_restore_gather(r));
    OK(umbra_vss_restore_pre_restore(r));
    OK(umbra_vss_restore_do_restore(r));
    OK(umbra_vss_restore_post_restore(r));
    seen(&w2, "identify,pre-restore,post-restore");
    status = restore_text(umbra_vss_restore_get_status, r);
    CHECK(strstr(status, "\"status\":\"all\"") != NULL);
    free(status);
    umbra_vss_restore_free(r);
    OK(umbra_lun_get_stats(a, "db", &after));
    CHECK(after.origin_write_bytes > before.origin_write_bytes);
    OK(umbra_lun_read(a, "db", HOST, 0, buf, sizeof buf));
    CHECK(memcmp(buf, "committed", 9) == 0);

    /* Resync on its own, onto another LUN of the same size; a revert is the software way. */
    OK(umbra_lun_create(a, "copy", 4 * MiB, HOST));
    OK(umbra_lun_create(a, "small", 1 * MiB, HOST));
    umbra_async *op = NULL;
    CHECK_STATUS(umbra_vss_coordinator_revert_async(c, shadow_id, &op), UMBRA_E_UNSUPPORTED);
    CHECK_STATUS(umbra_vss_coordinator_resync_async(c, shadow_id, "missing", &op), UMBRA_E_NOT_FOUND);
    CHECK_STATUS(umbra_vss_coordinator_resync_async(c, shadow_id, "small", &op),
                 UMBRA_E_INVALID_ARGUMENT);
    CHECK(op == NULL);
    OK(umbra_vss_coordinator_resync_async(c, shadow_id, "copy", &op));
    OK(umbra_async_wait(op));
    uint32_t pct = 0;
    OK(umbra_async_get_percent(op, &pct));
    CHECK(pct == 100);
    umbra_async_free(op);
    OK(umbra_lun_read(a, "copy", HOST, 0, buf, sizeof buf));
    CHECK(memcmp(buf, "committed", 9) == 0);

    free(doc);
    umbra_vss_coordinator_free(c);
    umbra_array_free(a);
    ctx_destroy(&w);
    ctx_destroy(&w2);
}

int main(void) {
    CHECK(umbra_abi_version() >= ((1u << 16) | 7u));
    software();
    hardware();
    printf("vss_restore: ok\n");
    return 0;
}
