/* Bad input through the C ABI: NULLs, (NULL, 0) buffers, bad ids and names, too-small buffers,
 * unknown objects, sizes that are not block multiples, out-of-range I/O that must write nothing,
 * out-parameters left alone on failure, status names, and the thread-local last error.
 *
 * Usage: errors */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>

#include "check.h"

#define MiB (1024u * 1024u)
#define BS 4096u
#define SENTINEL ((umbra_volume *)(uintptr_t)0x5e5e)

static const char *HOST1 = "iqn.1991-05.com.microsoft:host1";

static void last_error_semantics(void) {
    /* Before any failure on this thread: 0 and an empty string. */
    char buf[64];
    memset(buf, 'X', sizeof buf);
    CHECK(umbra_last_error(buf, sizeof buf) == 0);
    CHECK(buf[0] == '\0');
    CHECK(umbra_last_error(NULL, 0) == 0);

    umbra_volume *vol = SENTINEL;
    CHECK_STATUS(umbra_volume_create_mem(MiB, 1000, &vol), UMBRA_E_INVALID_ARGUMENT);
    CHECK(vol == SENTINEL); /* out-parameters are written only on success */
    size_t full = umbra_last_error(NULL, 0);
    CHECK(full > 10);
    char small[8];
    CHECK(umbra_last_error(small, sizeof small) == full);
    CHECK(strlen(small) == 7); /* truncated, NUL-terminated */
    char whole[512];
    CHECK(umbra_last_error(whole, sizeof whole) == full);
    CHECK(strlen(whole) == full);
    CHECK(strncmp(whole, "umbra_volume_create_mem: ", 25) == 0);
    CHECK(strstr(whole, "block size") != NULL);
    CHECK(umbra_last_error(NULL, 5) == full); /* writes nothing, still answers */

    /* Success does not clear it. */
    OK(umbra_volume_create_mem(MiB, BS, &vol));
    CHECK(umbra_last_error(NULL, 0) == full);
    umbra_volume_free(vol);
}

static void *fresh_thread(void *arg) {
    (void)arg;
    /* Another thread has its own, empty, last error. */
    char buf[16] = "junk";
    return (void *)(uintptr_t)(umbra_last_error(buf, sizeof buf) == 0 && buf[0] == '\0');
}

static void status_names(void) {
    const struct {
        umbra_status s;
        const char *name;
    } known[] = {
        {UMBRA_OK, "UMBRA_OK"},
        {UMBRA_E_NULL_POINTER, "UMBRA_E_NULL_POINTER"},
        {UMBRA_E_INVALID_ARGUMENT, "UMBRA_E_INVALID_ARGUMENT"},
        {UMBRA_E_OUT_OF_RANGE, "UMBRA_E_OUT_OF_RANGE"},
        {UMBRA_E_BUFFER_TOO_SMALL, "UMBRA_E_BUFFER_TOO_SMALL"},
        {UMBRA_E_NOT_FOUND, "UMBRA_E_NOT_FOUND"},
        {UMBRA_E_ALREADY_EXISTS, "UMBRA_E_ALREADY_EXISTS"},
        {UMBRA_E_BAD_STATE, "UMBRA_E_BAD_STATE"},
        {UMBRA_E_IN_PROGRESS, "UMBRA_E_IN_PROGRESS"},
        {UMBRA_E_TIMEOUT, "UMBRA_E_TIMEOUT"},
        {UMBRA_E_CANCELLED, "UMBRA_E_CANCELLED"},
        {UMBRA_E_BUSY, "UMBRA_E_BUSY"},
        {UMBRA_E_IO, "UMBRA_E_IO"},
        {UMBRA_E_NO_SPACE, "UMBRA_E_NO_SPACE"},
        {UMBRA_E_CORRUPT, "UMBRA_E_CORRUPT"},
        {UMBRA_E_UNSUPPORTED_VERSION, "UMBRA_E_UNSUPPORTED_VERSION"},
        {UMBRA_E_UNSUPPORTED, "UMBRA_E_UNSUPPORTED"},
        {UMBRA_E_INVALID_INITIATOR, "UMBRA_E_INVALID_INITIATOR"},
        {UMBRA_E_ACCESS_DENIED, "UMBRA_E_ACCESS_DENIED"},
        {UMBRA_E_WRITER_FAILED, "UMBRA_E_WRITER_FAILED"},
        {UMBRA_E_INVALID_DOCUMENT, "UMBRA_E_INVALID_DOCUMENT"},
        {UMBRA_E_PANIC, "UMBRA_E_PANIC"},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        const char *n = umbra_status_name(known[i].s);
        CHECK(n != NULL && strcmp(n, known[i].name) == 0);
    }
    CHECK(strcmp(umbra_status_name(12345), "UMBRA_E_UNKNOWN") == 0);
    CHECK(strcmp(umbra_status_name(7), "UMBRA_E_UNKNOWN") == 0);
    CHECK(strcmp(umbra_status_name(UINT32_MAX), "UMBRA_E_UNKNOWN") == 0);
}

static void volume_input(void) {
    umbra_volume *vol = SENTINEL;
    /* NULL out-parameters and handles. */
    CHECK_STATUS(umbra_volume_create_mem(MiB, BS, NULL), UMBRA_E_NULL_POINTER);
    CHECK_STATUS(umbra_volume_create_file(NULL, MiB, BS, &vol), UMBRA_E_NULL_POINTER);
    CHECK_STATUS(umbra_volume_open_file(NULL, &vol), UMBRA_E_NULL_POINTER);
    CHECK_STATUS(umbra_volume_open_file("", &vol), UMBRA_E_INVALID_ARGUMENT);
    CHECK(vol == SENTINEL);
    uint64_t u64 = 77;
    CHECK_STATUS(umbra_volume_get_size(NULL, &u64), UMBRA_E_NULL_POINTER);
    CHECK_STATUS(umbra_volume_flush(NULL), UMBRA_E_NULL_POINTER);
    CHECK_STATUS(umbra_snapshot_create(NULL, &u64), UMBRA_E_NULL_POINTER);
    CHECK(u64 == 77);
    umbra_volume_free(NULL);
    umbra_array_free(NULL);
    umbra_async_free(NULL);

    /* Block sizes: powers of two from 4 KiB to 1 MiB only; sizes positive multiples. */
    const uint32_t bad_bs[] = {0, 1, 512, 2048, 3000, 12288, 2 * MiB, UINT32_MAX};
    for (size_t i = 0; i < sizeof bad_bs / sizeof bad_bs[0]; i++)
        CHECK_STATUS(umbra_volume_create_mem(2 * MiB, bad_bs[i], &vol), UMBRA_E_INVALID_ARGUMENT);
    const uint64_t bad_size[] = {0, 1, 4095, 4097, MiB + 512};
    for (size_t i = 0; i < sizeof bad_size / sizeof bad_size[0]; i++)
        CHECK_STATUS(umbra_volume_create_mem(bad_size[i], BS, &vol), UMBRA_E_INVALID_ARGUMENT);
    CHECK_STATUS(umbra_volume_create_mem(64 * 1024, 65536 * 2, &vol), UMBRA_E_INVALID_ARGUMENT);
    CHECK_STATUS(umbra_volume_create_mem_ex(MiB, BS, UMBRA_UNLIMITED, 0x80, &vol),
                 UMBRA_E_INVALID_ARGUMENT);
    CHECK(vol == SENTINEL);
    OK(umbra_volume_create_mem(MiB, 1024 * 1024, &vol));
    umbra_volume_free(vol);

    OK(umbra_volume_create_mem(MiB, BS, &vol));
    CHECK(umbra_volume_get_size(vol, NULL) == UMBRA_E_NULL_POINTER);

    /* (NULL, 0) buffers are fine; (NULL, n) is not. */
    OK(umbra_volume_read(vol, 0, NULL, 0));
    OK(umbra_volume_write(vol, 0, NULL, 0));
    OK(umbra_volume_write(vol, MiB, NULL, 0)); /* empty range at the end */
    CHECK_STATUS(umbra_volume_read(vol, 0, NULL, 5), UMBRA_E_NULL_POINTER);
    CHECK_STATUS(umbra_volume_write(vol, 0, NULL, 5), UMBRA_E_NULL_POINTER);

    /* Out of range writes nothing at all. */
    OK(umbra_volume_write(vol, MiB - 4, (const uint8_t *)"abcd", 4));
    CHECK_STATUS(umbra_volume_write(vol, MiB - 2, (const uint8_t *)"ZZZZ", 4),
                 UMBRA_E_OUT_OF_RANGE);
    CHECK_STATUS(umbra_volume_write(vol, UINT64_MAX, (const uint8_t *)"Z", 1),
                 UMBRA_E_OUT_OF_RANGE);
    CHECK_STATUS(umbra_volume_write(vol, UINT64_MAX - 1, (const uint8_t *)"ZZZZ", 4),
                 UMBRA_E_OUT_OF_RANGE);
    uint8_t tail[4];
    OK(umbra_volume_read(vol, MiB - 4, tail, 4));
    CHECK(memcmp(tail, "abcd", 4) == 0);
    CHECK_STATUS(umbra_volume_read(vol, MiB - 3, tail, 4), UMBRA_E_OUT_OF_RANGE);
    CHECK_STATUS(umbra_volume_discard(vol, MiB, 1), UMBRA_E_OUT_OF_RANGE);

    /* Unknown snapshot ids (0 is never a snapshot). */
    uint8_t b = 0;
    const uint64_t unknown[] = {0, 1, 999, UINT64_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        CHECK_STATUS(umbra_snapshot_read(vol, unknown[i], 0, &b, 1), UMBRA_E_NOT_FOUND);
        CHECK_STATUS(umbra_snapshot_write(vol, unknown[i], 0, &b, 1), UMBRA_E_NOT_FOUND);
        CHECK_STATUS(umbra_snapshot_delete(vol, unknown[i]), UMBRA_E_NOT_FOUND);
        CHECK_STATUS(umbra_volume_revert(vol, unknown[i]), UMBRA_E_NOT_FOUND);
        umbra_async *op = (umbra_async *)SENTINEL;
        CHECK_STATUS(umbra_volume_revert_async(vol, unknown[i], &op), UMBRA_E_NOT_FOUND);
        CHECK(op == (umbra_async *)SENTINEL);
        umbra_snapshot_info info;
        memset(&info, 0xEE, sizeof info);
        CHECK_STATUS(umbra_snapshot_get_info(vol, unknown[i], &info), UMBRA_E_NOT_FOUND);
        CHECK(info.id == 0xEEEEEEEEEEEEEEEEull);
        size_t n = 0;
        CHECK_STATUS(umbra_snapshot_get_changed_blocks(vol, unknown[i], UMBRA_ORIGIN, NULL, 0, &n),
                     UMBRA_E_NOT_FOUND);
    }

    uint64_t snap = 0;
    OK(umbra_snapshot_create(vol, &snap));
    CHECK_STATUS(umbra_snapshot_read(vol, snap, MiB, &b, 1), UMBRA_E_OUT_OF_RANGE);
    CHECK_STATUS(umbra_snapshot_read(vol, snap, 0, NULL, 1), UMBRA_E_NULL_POINTER);
    OK(umbra_snapshot_read(vol, snap, 0, NULL, 0));
    CHECK_STATUS(umbra_snapshot_create_ex(vol, 0x100, NULL, 0, &u64), UMBRA_E_INVALID_ARGUMENT);
    CHECK_STATUS(umbra_snapshot_create_ex(vol, 0, NULL, 3, &u64), UMBRA_E_NULL_POINTER);
    /* Metadata over 64 KiB. */
    uint8_t *huge = calloc(1, 64 * 1024 + 1);
    CHECK(huge != NULL);
    CHECK_STATUS(umbra_snapshot_set_metadata(vol, snap, huge, 64 * 1024 + 1),
                 UMBRA_E_INVALID_ARGUMENT);
    free(huge);

    /* Lists: too small a buffer leaves it untouched and reports the count. */
    uint64_t snap2 = 0;
    OK(umbra_snapshot_create(vol, &snap2));
    uint64_t ids[1] = {42};
    size_t count = 0;
    CHECK_STATUS(umbra_snapshot_list(vol, ids, 1, &count), UMBRA_E_BUFFER_TOO_SMALL);
    CHECK(count == 2 && ids[0] == 42);
    CHECK_STATUS(umbra_snapshot_list(vol, NULL, 3, &count), UMBRA_E_NULL_POINTER);
    CHECK_STATUS(umbra_snapshot_list(vol, ids, 1, NULL), UMBRA_E_NULL_POINTER);

    /* A pinned snapshot is not deleted: unpin it first. */
    uint64_t pinned = 0;
    OK(umbra_snapshot_create_ex(vol, UMBRA_SNAPSHOT_PINNED, NULL, 0, &pinned));
    CHECK_STATUS(umbra_snapshot_delete(vol, pinned), UMBRA_E_BAD_STATE);
    CHECK_STATUS(umbra_snapshot_list(vol, NULL, 0, &count), UMBRA_E_BUFFER_TOO_SMALL);
    CHECK(count == 3); /* still there */
    OK(umbra_snapshot_set_pinned(vol, pinned, false));
    OK(umbra_snapshot_delete(vol, pinned));
    CHECK_STATUS(umbra_snapshot_get_info(vol, pinned, &(umbra_snapshot_info){0}), UMBRA_E_NOT_FOUND);

    /* Grow: not a block multiple, or smaller. */
    CHECK_STATUS(umbra_volume_grow(vol, MiB + 1), UMBRA_E_INVALID_ARGUMENT);
    CHECK_STATUS(umbra_volume_grow(vol, MiB - BS), UMBRA_E_INVALID_ARGUMENT);

    /* Thaw without freeze; subscriptions. */
    CHECK_STATUS(umbra_volume_thaw(vol), UMBRA_E_BAD_STATE);
    CHECK_STATUS(umbra_volume_subscribe(vol, NULL, NULL, &u64), UMBRA_E_NULL_POINTER);
    CHECK_STATUS(umbra_volume_unsubscribe(vol, 12345), UMBRA_E_NOT_FOUND);

    /* Async handle misuse. */
    CHECK_STATUS(umbra_async_wait(NULL), UMBRA_E_NULL_POINTER);
    CHECK_STATUS(umbra_async_cancel(NULL), UMBRA_E_NULL_POINTER);
    uint32_t pct;
    CHECK_STATUS(umbra_async_get_percent(NULL, &pct), UMBRA_E_NULL_POINTER);
    umbra_async *op = NULL;
    OK(umbra_volume_revert_async(vol, snap, &op));
    CHECK_STATUS(umbra_async_get_percent(op, NULL), UMBRA_E_NULL_POINTER);
    umbra_status st = umbra_async_wait_timeout(op, 0);
    CHECK(st == UMBRA_OK || st == UMBRA_E_IN_PROGRESS);
    OK(umbra_async_wait_timeout(op, 60000));
    umbra_async_free(op);

    umbra_volume_free(vol);
}

static void array_input(void) {
    umbra_array *a = NULL;
    CHECK_STATUS(umbra_array_open(NULL, NULL), UMBRA_E_NULL_POINTER);
    OK(umbra_array_open(NULL, &a));
    char buf[256];
    size_t n = 0;
    bool vis = true;

    /* LUN names: 1 to 64 of letters, digits, '.', '_', '-'. */
    char long_name[66];
    memset(long_name, 'a', 65);
    long_name[65] = '\0';
    const char *bad_names[] = {"", long_name, "bad name", "semi;colon", "na\xc3\xafve",
                               "\xff\xfe", "slash/y", "*"};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        CHECK_STATUS(umbra_lun_create(a, bad_names[i], MiB, ""), UMBRA_E_INVALID_ARGUMENT);
        CHECK_STATUS(umbra_lun_delete(a, bad_names[i]), UMBRA_E_INVALID_ARGUMENT);
        CHECK_STATUS(umbra_lun_set_mask(a, bad_names[i], ""), UMBRA_E_INVALID_ARGUMENT);
    }
    long_name[64] = '\0';
    OK(umbra_lun_create(a, long_name, MiB, ""));
    OK(umbra_lun_delete(a, long_name));
    CHECK_STATUS(umbra_lun_create(NULL, "x", MiB, ""), UMBRA_E_NULL_POINTER);
    CHECK_STATUS(umbra_lun_create(a, NULL, MiB, ""), UMBRA_E_NULL_POINTER);
    CHECK_STATUS(umbra_lun_create(a, "x", MiB, NULL), UMBRA_E_NULL_POINTER);

    /* Sizes: positive multiples of 4 KiB. */
    CHECK_STATUS(umbra_lun_create(a, "x", 0, ""), UMBRA_E_INVALID_ARGUMENT);
    CHECK_STATUS(umbra_lun_create(a, "x", 4097, ""), UMBRA_E_INVALID_ARGUMENT);
    CHECK_STATUS(umbra_lun_create(a, "x", 1000, ""), UMBRA_E_INVALID_ARGUMENT);

    /* Masks: invalid lists are refused (and never half-applied). */
    const char *bad_lists[] = {"*;iqn.1991-05.com.microsoft:host1", ";", "bogus",
                               "iqn.1991-05.com.microsoft:host1;;iqn.1991-05.com.microsoft:h2",
                               "iqn.1991-05.com.microsoft:host1;", "0000000000000000",
                               "iqn.1991-13.com.x", "\xff"};
    for (size_t i = 0; i < sizeof bad_lists / sizeof bad_lists[0]; i++)
        CHECK_STATUS(umbra_lun_create(a, "x", MiB, bad_lists[i]), UMBRA_E_INVALID_INITIATOR);
    CHECK_STATUS(umbra_lun_get_mask(a, "x", buf, sizeof buf, &n), UMBRA_E_NOT_FOUND);
    OK(umbra_lun_create(a, "x", MiB, HOST1));
    for (size_t i = 0; i < sizeof bad_lists / sizeof bad_lists[0]; i++)
        CHECK_STATUS(umbra_lun_set_mask(a, "x", bad_lists[i]), UMBRA_E_INVALID_INITIATOR);
    OK(umbra_lun_get_mask(a, "x", buf, sizeof buf, &n));
    CHECK(strcmp(buf, HOST1) == 0);

    /* Duplicates. */
    CHECK_STATUS(umbra_lun_create(a, "x", MiB, ""), UMBRA_E_ALREADY_EXISTS);
    OK(umbra_lun_create(a, "y", MiB, ""));
    CHECK_STATUS(umbra_lun_snapshot(a, "x", "y"), UMBRA_E_ALREADY_EXISTS);
    CHECK_STATUS(umbra_lun_snapshot(a, "x", "bad name"), UMBRA_E_INVALID_ARGUMENT);

    /* Unknown LUNs. */
    uint8_t b = 0;
    CHECK_STATUS(umbra_lun_delete(a, "nope"), UMBRA_E_NOT_FOUND);
    CHECK_STATUS(umbra_lun_set_mask(a, "nope", "*"), UMBRA_E_NOT_FOUND);
    CHECK_STATUS(umbra_lun_get_mask(a, "nope", buf, sizeof buf, &n), UMBRA_E_NOT_FOUND);
    CHECK_STATUS(umbra_lun_is_visible(a, "nope", HOST1, &vis), UMBRA_E_NOT_FOUND);
    CHECK_STATUS(umbra_lun_read(a, "nope", HOST1, 0, &b, 1), UMBRA_E_NOT_FOUND);
    CHECK_STATUS(umbra_lun_write(a, "nope", HOST1, 0, &b, 1), UMBRA_E_NOT_FOUND);
    CHECK_STATUS(umbra_lun_snapshot(a, "nope", "nope-snap"), UMBRA_E_NOT_FOUND);
    CHECK_STATUS(umbra_lun_swap(a, "nope", "x"), UMBRA_E_NOT_FOUND);
    CHECK_STATUS(umbra_lun_swap(a, "x", "nope"), UMBRA_E_NOT_FOUND);
    CHECK_STATUS(umbra_lun_extend(a, "nope", 2 * MiB), UMBRA_E_NOT_FOUND);
    umbra_async *op = (umbra_async *)SENTINEL;
    CHECK_STATUS(umbra_lun_split_async(a, "nope", &op), UMBRA_E_NOT_FOUND);
    CHECK_STATUS(umbra_lun_resync_async(a, "nope", "x", &op), UMBRA_E_NOT_FOUND);
    CHECK(op == (umbra_async *)SENTINEL);
    CHECK(vis == true);

    /* Initiator arguments. */
    const char *bad_ids[] = {"", "not-an-id", "iqn.", "eui.123", "naa.12345", "\xff",
                             "00:00:00:00:00:00:00:00"};
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        CHECK_STATUS(umbra_lun_is_visible(a, "x", bad_ids[i], &vis), UMBRA_E_INVALID_INITIATOR);
        CHECK_STATUS(umbra_lun_write(a, "x", bad_ids[i], 0, &b, 1), UMBRA_E_INVALID_INITIATOR);
        CHECK_STATUS(umbra_initiator_get_luns(a, bad_ids[i], buf, sizeof buf, &n),
                     UMBRA_E_INVALID_INITIATOR);
    }
    CHECK_STATUS(umbra_lun_is_visible(a, "x", NULL, &vis), UMBRA_E_NULL_POINTER);
    CHECK_STATUS(umbra_lun_is_visible(a, "x", HOST1, NULL), UMBRA_E_NULL_POINTER);
    CHECK(vis == true);

    /* I/O: (NULL, 0), (NULL, n), out of range. */
    OK(umbra_lun_read(a, "x", HOST1, 0, NULL, 0));
    OK(umbra_lun_write(a, "x", HOST1, 0, NULL, 0));
    CHECK_STATUS(umbra_lun_read(a, "x", HOST1, 0, NULL, 4), UMBRA_E_NULL_POINTER);
    CHECK_STATUS(umbra_lun_write(a, "x", HOST1, 0, NULL, 4), UMBRA_E_NULL_POINTER);
    OK(umbra_lun_write(a, "x", HOST1, MiB - 3, (const uint8_t *)"end", 3));
    CHECK_STATUS(umbra_lun_write(a, "x", HOST1, MiB - 2, (const uint8_t *)"XXX", 3),
                 UMBRA_E_OUT_OF_RANGE);
    CHECK_STATUS(umbra_lun_write(a, "x", HOST1, UINT64_MAX, (const uint8_t *)"X", 1),
                 UMBRA_E_OUT_OF_RANGE);
    char end[3];
    OK(umbra_lun_read(a, "x", HOST1, MiB - 3, (uint8_t *)end, 3));
    CHECK(memcmp(end, "end", 3) == 0);

    /* String outputs: *out_len always, buf untouched when too small, (NULL, 0) a size query. */
    OK(umbra_lun_set_mask(a, "x", "iqn.1991-05.com.microsoft:host1;5001438001234567"));
    const char *canon = "5001438001234567;iqn.1991-05.com.microsoft:host1";
    size_t want = strlen(canon);
    n = 0;
    CHECK_STATUS(umbra_lun_get_mask(a, "x", NULL, 0, &n), UMBRA_E_BUFFER_TOO_SMALL);
    CHECK(n == want);
    memset(buf, 'Q', sizeof buf);
    n = 0;
    CHECK_STATUS(umbra_lun_get_mask(a, "x", buf, want, &n), UMBRA_E_BUFFER_TOO_SMALL);
    CHECK(n == want);
    for (size_t i = 0; i < sizeof buf; i++) CHECK(buf[i] == 'Q');
    OK(umbra_lun_get_mask(a, "x", buf, want + 1, &n));
    CHECK(n == want && strcmp(buf, canon) == 0);
    CHECK_STATUS(umbra_lun_get_mask(a, "x", NULL, 10, &n), UMBRA_E_NULL_POINTER);
    CHECK_STATUS(umbra_lun_get_mask(a, "x", buf, sizeof buf, NULL), UMBRA_E_NULL_POINTER);
    n = 0;
    CHECK_STATUS(umbra_initiator_get_luns(a, HOST1, buf, 1, &n), UMBRA_E_BUFFER_TOO_SMALL);
    CHECK(n == 1); /* "x" */
    OK(umbra_initiator_get_luns(a, HOST1, buf, 2, &n));
    CHECK(strcmp(buf, "x") == 0);

    /* Host numbers and groups. */
    CHECK_STATUS(umbra_lun_set_host_number(a, "x", "bogus", 1), UMBRA_E_INVALID_INITIATOR);
    CHECK_STATUS(umbra_lun_set_host_number(a, "x", HOST1, 99999), UMBRA_E_INVALID_ARGUMENT);
    CHECK_STATUS(umbra_group_set(a, "bad group", ""), UMBRA_E_INVALID_ARGUMENT);
    CHECK_STATUS(umbra_group_set(a, "g", "bogus"), UMBRA_E_INVALID_INITIATOR);
    CHECK_STATUS(umbra_group_delete(a, "nope"), UMBRA_E_NOT_FOUND);
    CHECK_STATUS(umbra_lun_set_mask(a, "x", "@bad group"), UMBRA_E_INVALID_INITIATOR);

    /* Swap with itself; extend by a non-multiple or smaller. */
    CHECK_STATUS(umbra_lun_swap(a, "x", "x"), UMBRA_E_INVALID_ARGUMENT);
    CHECK_STATUS(umbra_lun_extend(a, "x", MiB + 1), UMBRA_E_INVALID_ARGUMENT);
    CHECK_STATUS(umbra_lun_extend(a, "x", MiB / 2), UMBRA_E_INVALID_ARGUMENT);

    /* Events. */
    uint64_t id = 0;
    CHECK_STATUS(umbra_array_subscribe(a, NULL, NULL, &id), UMBRA_E_NULL_POINTER);
    CHECK_STATUS(umbra_array_unsubscribe(a, 1), UMBRA_E_NOT_FOUND);

    umbra_array_free(a);
}

int main(void) {
    last_error_semantics();
    pthread_t t;
    void *fresh = NULL;
    CHECK(pthread_create(&t, NULL, fresh_thread, NULL) == 0);
    CHECK(pthread_join(t, &fresh) == 0);
    CHECK(fresh == (void *)1);
    status_names();
    volume_input();
    array_input();
    printf("errors: ok\n");
    return 0;
}
