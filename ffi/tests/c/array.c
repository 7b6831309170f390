/* The embedded array through the C ABI: LUN masking with VDS SetMask semantics and access denial,
 * read-only access, host LUN numbers, initiator groups, notifications, and the seed's story end to
 * end: snapshot a LUN, keep the snapshot masked away, and when the LUN is damaged swap the snapshot
 * LUN in (nothing copied), then split it and drop the damaged copy. Also extend, resync, offline,
 * changed blocks between snapshot LUNs (incremental backup), and a persistent pool that is
 * reopened.
 *
 * Usage: array SCRATCH_DIR (an existing, empty directory) */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <unistd.h>

#include "check.h"

#define MiB (1024u * 1024u)

static const char *SERVER = "iqn.1991-05.com.microsoft:server";
static const char *HOST1 = "iqn.1991-05.com.microsoft:host1";
static const char *HOST2 = "iqn.1991-05.com.microsoft:host2";
static const char *DIAG = "iqn.2020-01.com.example:diag";

/* ---- a notification recorder ---- */

#define MAX_EVENTS 256
struct recorder {
    pthread_mutex_t lock;
    int count;
    uint32_t kinds[MAX_EVENTS];
    char subjects[MAX_EVENTS][72];
    char json[MAX_EVENTS][512];
};

static void record(void *ctx, uint32_t kind, const char *subject, const char *json) {
    struct recorder *r = ctx;
    pthread_mutex_lock(&r->lock);
    if (r->count < MAX_EVENTS) {
        r->kinds[r->count] = kind;
        snprintf(r->subjects[r->count], sizeof r->subjects[0], "%s", subject);
        snprintf(r->json[r->count], sizeof r->json[0], "%s", json);
        r->count++;
    }
    pthread_mutex_unlock(&r->lock);
}

/* Waits (a few seconds at most) for an event of `kind` about `subject` whose JSON contains
 * `needle` (NULL: any); returns whether one arrived. */
static int saw(struct recorder *r, uint32_t kind, const char *subject, const char *needle) {
    for (int tries = 0; tries < 500; tries++) {
        pthread_mutex_lock(&r->lock);
        for (int i = 0; i < r->count; i++) {
            if (r->kinds[i] == kind && strcmp(r->subjects[i], subject) == 0 &&
                (needle == NULL || strstr(r->json[i], needle) != NULL)) {
                pthread_mutex_unlock(&r->lock);
                return 1;
            }
        }
        pthread_mutex_unlock(&r->lock);
        umbra_test_sleep_ms(10);
    }
    return 0;
}

/* ---- helpers ---- */

static void get_mask(umbra_array *a, const char *lun, char *buf, size_t len) {
    size_t n = 0;
    OK(umbra_lun_get_mask(a, lun, buf, len, &n));
    CHECK(strlen(buf) == n);
}

static int visible(umbra_array *a, const char *lun, const char *host) {
    bool v = false;
    OK(umbra_lun_is_visible(a, lun, host, &v));
    return v ? 1 : 0;
}

static void expect_lun(umbra_array *a, const char *lun, const char *host, uint64_t off,
                       const char *want) {
    char got[64];
    size_t len = strlen(want);
    CHECK(len < sizeof got);
    OK(umbra_lun_read(a, lun, host, off, (uint8_t *)got, len));
    CHECK(memcmp(got, want, len) == 0);
}

static void write_lun(umbra_array *a, const char *lun, const char *host, uint64_t off,
                      const char *text) {
    OK(umbra_lun_write(a, lun, host, off, (const uint8_t *)text, strlen(text)));
}

/* ---- masking ---- */

static void masking(umbra_array *a) {
    char buf[512];
    OK(umbra_lun_create(a, "data", MiB, "IQN.1991-05.COM.Microsoft:Host1"));
    get_mask(a, "data", buf, sizeof buf);
    CHECK(strcmp(buf, HOST1) == 0); /* canonical: lowercase */
    CHECK(visible(a, "data", HOST1));
    CHECK(!visible(a, "data", HOST2));

    /* Access denial: nothing written. */
    write_lun(a, "data", HOST1, 0, "host1 data");
    CHECK_STATUS(umbra_lun_write(a, "data", HOST2, 0, (const uint8_t *)"intruder", 8),
                 UMBRA_E_ACCESS_DENIED);
    uint8_t b[8];
    CHECK_STATUS(umbra_lun_read(a, "data", HOST2, 0, b, 8), UMBRA_E_ACCESS_DENIED);
    expect_lun(a, "data", HOST1, 0, "host1 data");

    /* "*" every host, "" no one; set replaces. */
    OK(umbra_lun_set_mask(a, "data", "*"));
    CHECK(visible(a, "data", HOST2) && visible(a, "data", DIAG));
    get_mask(a, "data", buf, sizeof buf);
    CHECK(strcmp(buf, "*") == 0);
    OK(umbra_lun_set_mask(a, "data", ""));
    CHECK(!visible(a, "data", HOST1));
    get_mask(a, "data", buf, sizeof buf);
    CHECK(strcmp(buf, "") == 0);

    /* Lists: whitespace, duplicates, WWN spellings; sorted canonical output. */
    OK(umbra_lun_set_mask(a, "data",
                          " iqn.1991-05.com.microsoft:host2 ; 50:01:43:80:01:23:45:67 ;"
                          "iqn.1991-05.com.microsoft:HOST2"));
    get_mask(a, "data", buf, sizeof buf);
    CHECK(strcmp(buf, "5001438001234567;iqn.1991-05.com.microsoft:host2") == 0);
    CHECK(visible(a, "data", "naa.5001438001234567"));
    CHECK(visible(a, "data", "0x5001438001234567"));
    CHECK(!visible(a, "data", HOST1));

    /* An invalid list changes nothing. */
    CHECK_STATUS(umbra_lun_set_mask(a, "data", "*;iqn.1991-05.com.microsoft:host1"),
                 UMBRA_E_INVALID_INITIATOR);
    CHECK_STATUS(umbra_lun_set_mask(a, "data", "iqn.1991-05.com.microsoft:host1;"),
                 UMBRA_E_INVALID_INITIATOR);
    CHECK_STATUS(umbra_lun_set_mask(a, "data", "bogus"), UMBRA_E_INVALID_INITIATOR);
    get_mask(a, "data", buf, sizeof buf);
    CHECK(strcmp(buf, "5001438001234567;iqn.1991-05.com.microsoft:host2") == 0);

    /* Add / remove entries. */
    OK(umbra_lun_add_to_mask(a, "data", HOST1));
    CHECK(visible(a, "data", HOST1));
    OK(umbra_lun_remove_from_mask(a, "data", "5001438001234567"));
    get_mask(a, "data", buf, sizeof buf);
    CHECK(strcmp(buf, "iqn.1991-05.com.microsoft:host1;iqn.1991-05.com.microsoft:host2") == 0);

    /* Read-only access: reads pass, writes are denied and write nothing. */
    OK(umbra_lun_set_mask(a, "data", "iqn.1991-05.com.microsoft:host1;"
                                     "iqn.1991-05.com.microsoft:host2=ro"));
    get_mask(a, "data", buf, sizeof buf);
    CHECK(strcmp(buf, "iqn.1991-05.com.microsoft:host1;iqn.1991-05.com.microsoft:host2=ro") ==
          0);
    expect_lun(a, "data", HOST2, 0, "host1 data");
    CHECK_STATUS(umbra_lun_write(a, "data", HOST2, 0, (const uint8_t *)"nope", 4),
                 UMBRA_E_ACCESS_DENIED);
    expect_lun(a, "data", HOST1, 0, "host1 data");
    uint32_t access = 99, number = 99;
    OK(umbra_lun_get_access(a, "data", HOST2, &access, &number));
    CHECK(access == UMBRA_ACCESS_READ_ONLY);
    OK(umbra_lun_get_access(a, "data", HOST1, &access, &number));
    CHECK(access == UMBRA_ACCESS_READ_WRITE);
    OK(umbra_lun_get_access(a, "data", DIAG, &access, &number));
    CHECK(access == UMBRA_ACCESS_NONE && number == UMBRA_NO_LUN_NUMBER);
    size_t n = 0;
    OK(umbra_lun_get_initiators(a, "data", buf, sizeof buf, &n));
    CHECK(strcmp(buf, "iqn.1991-05.com.microsoft:host1;iqn.1991-05.com.microsoft:host2=ro") ==
          0);

    /* Host LUN numbers. */
    OK(umbra_lun_set_host_number(a, "data", HOST1, 7));
    OK(umbra_lun_get_access(a, "data", HOST1, &access, &number));
    CHECK(access == UMBRA_ACCESS_READ_WRITE && number == 7);

    /* Initiator groups. */
    OK(umbra_group_set(a, "web", "iqn.2020-01.com.example:web1; iqn.2020-01.com.example:web2"));
    OK(umbra_lun_create(a, "logs", MiB, "@web;iqn.1991-05.com.microsoft:host1=ro"));
    CHECK(visible(a, "logs", "iqn.2020-01.com.example:web2"));
    CHECK(!visible(a, "logs", HOST2));
    OK(umbra_group_get(a, "web", buf, sizeof buf, &n));
    CHECK(strcmp(buf, "iqn.2020-01.com.example:web1;iqn.2020-01.com.example:web2") == 0);
    OK(umbra_group_set(a, "web", "iqn.2020-01.com.example:web3"));
    CHECK(!visible(a, "logs", "iqn.2020-01.com.example:web2"));
    CHECK(visible(a, "logs", "iqn.2020-01.com.example:web3"));
    OK(umbra_group_list(a, buf, sizeof buf, &n));
    CHECK(strcmp(buf, "web") == 0);
    CHECK_STATUS(umbra_group_delete(a, "web"), UMBRA_E_BAD_STATE); /* a mask names it */
    CHECK_STATUS(umbra_group_get(a, "nobody", buf, sizeof buf, &n), UMBRA_E_NOT_FOUND);

    /* A host's view: the LUN names it sees, sorted. */
    OK(umbra_initiator_get_luns(a, HOST1, buf, sizeof buf, &n));
    CHECK(strcmp(buf, "data;logs") == 0);
    OK(umbra_initiator_get_luns(a, DIAG, buf, sizeof buf, &n));
    CHECK(strcmp(buf, "") == 0 && n == 0);

    OK(umbra_lun_list(a, buf, sizeof buf, &n));
    CHECK(strcmp(buf, "data;logs") == 0);

    OK(umbra_lun_set_mask(a, "logs", ""));
    OK(umbra_group_delete(a, "web"));
    OK(umbra_lun_delete(a, "logs"));
}

/* ---- the seed's story: fast recovery by swapping in the snapshot LUN ---- */

static void fast_recovery(umbra_array *a, struct recorder *rec) {
    char buf[512];
    size_t n = 0;
    OK(umbra_lun_create(a, "prod", 4 * MiB, SERVER));
    CHECK(saw(rec, UMBRA_EVENT_LUN_ARRIVE, "prod", NULL));
    write_lun(a, "prod", SERVER, 1000, "GOOD DATA");
    uint32_t access = 0, number_before = 0, number_after = 0;
    OK(umbra_lun_get_access(a, "prod", SERVER, &access, &number_before));

    /* The hardware snapshot: a new LUN, masked to no one at birth. */
    OK(umbra_lun_snapshot(a, "prod", "prod-snap"));
    CHECK(saw(rec, UMBRA_EVENT_LUN_ARRIVE, "prod-snap", NULL));
    get_mask(a, "prod-snap", buf, sizeof buf);
    CHECK(strcmp(buf, "") == 0);
    CHECK(!visible(a, "prod-snap", SERVER));
    umbra_lun_info info;
    OK(umbra_lun_get_info(a, "prod-snap", &info));
    CHECK(info.is_snapshot && info.size_bytes == 4 * MiB);
    CHECK(info.status == UMBRA_LUN_STATUS_ONLINE);
    OK(umbra_lun_get_source(a, "prod-snap", buf, sizeof buf, &n));
    CHECK(strcmp(buf, "prod") == 0);

    /* Damage. */
    write_lun(a, "prod", SERVER, 1000, "CORRUPTED");

    /* The swap: the server sees the snapshot LUN at prod's number; nothing copied. */
    OK(umbra_lun_swap(a, "prod", "prod-snap"));
    CHECK(!visible(a, "prod", SERVER));
    CHECK(visible(a, "prod-snap", SERVER));
    OK(umbra_lun_get_access(a, "prod-snap", SERVER, &access, &number_after));
    CHECK(access == UMBRA_ACCESS_READ_WRITE && number_after == number_before);
    expect_lun(a, "prod-snap", SERVER, 1000, "GOOD DATA");
    get_mask(a, "prod", buf, sizeof buf);
    CHECK(strcmp(buf, "") == 0);
    OK(umbra_initiator_get_luns(a, SERVER, buf, sizeof buf, &n));
    CHECK(strcmp(buf, "prod-snap") == 0);
    CHECK(saw(rec, UMBRA_EVENT_MASK_CHANGED, "prod", "\"lost\":[\"iqn.1991-05.com.microsoft:server\"]"));
    CHECK(saw(rec, UMBRA_EVENT_MASK_CHANGED, "prod-snap", SERVER));

    /* The damaged copy is kept for diagnosis. */
    OK(umbra_lun_set_mask(a, "prod", DIAG));
    expect_lun(a, "prod", DIAG, 1000, "CORRUPTED");

    /* Life goes on, independently. */
    write_lun(a, "prod-snap", SERVER, 5000, "NEW WRITES");
    uint8_t b[10];
    OK(umbra_lun_read(a, "prod", DIAG, 5000, b, 10));
    CHECK(memcmp(b, "\0\0\0\0\0\0\0\0\0\0", 10) == 0);

    /* The source cannot go while the snapshot LUN depends on it; split first. */
    CHECK_STATUS(umbra_lun_delete(a, "prod"), UMBRA_E_BAD_STATE);
    umbra_async *op = NULL;
    OK(umbra_lun_split_async(a, "prod-snap", &op));
    uint32_t pct = 0;
    OK(umbra_async_get_percent(op, &pct));
    CHECK(pct <= 100);
    OK(umbra_async_wait(op));
    OK(umbra_async_get_percent(op, &pct));
    CHECK(pct == 100);
    umbra_async_free(op);
    OK(umbra_lun_get_info(a, "prod-snap", &info));
    CHECK(!info.is_snapshot);
    OK(umbra_lun_get_source(a, "prod-snap", buf, sizeof buf, &n));
    CHECK(n == 0 && strcmp(buf, "") == 0);
    expect_lun(a, "prod-snap", SERVER, 1000, "GOOD DATA");
    expect_lun(a, "prod-snap", SERVER, 5000, "NEW WRITES");
    CHECK(saw(rec, UMBRA_EVENT_LUN_MODIFY, "prod-snap", NULL));

    OK(umbra_lun_delete(a, "prod"));
    CHECK(saw(rec, UMBRA_EVENT_LUN_DEPART, "prod", NULL));
    expect_lun(a, "prod-snap", SERVER, 1000, "GOOD DATA");

    /* Splitting a LUN that is not a snapshot fails the operation. */
    OK(umbra_lun_split_async(a, "prod-snap", &op));
    CHECK_STATUS(umbra_async_wait(op), UMBRA_E_INVALID_ARGUMENT);
    umbra_async_free(op);
}

/* ---- extend, resync, offline ---- */

static void lun_operations(umbra_array *a) {
    umbra_lun_info info;
    OK(umbra_lun_extend(a, "data", 2 * MiB));
    OK(umbra_lun_get_info(a, "data", &info));
    CHECK(info.size_bytes == 2 * MiB);
    umbra_async *op = NULL;
    OK(umbra_lun_extend_async(a, "data", 3 * MiB, &op));
    OK(umbra_async_wait(op));
    umbra_async_free(op);
    OK(umbra_lun_get_info(a, "data", &info));
    CHECK(info.size_bytes == 3 * MiB);
    expect_lun(a, "data", HOST1, 0, "host1 data");

    /* Resync: copy "data" onto a LUN of the same size. */
    OK(umbra_lun_create(a, "copy", 3 * MiB, HOST1));
    write_lun(a, "data", HOST1, 2 * MiB + 17, "tail bytes");
    OK(umbra_lun_resync_async(a, "data", "copy", &op));
    OK(umbra_async_wait(op));
    umbra_async_free(op);
    expect_lun(a, "copy", HOST1, 0, "host1 data");
    expect_lun(a, "copy", HOST1, 2 * MiB + 17, "tail bytes");

    /* Offline LUNs refuse I/O. */
    OK(umbra_lun_set_online(a, "copy", false));
    OK(umbra_lun_get_info(a, "copy", &info));
    CHECK(info.status == UMBRA_LUN_STATUS_OFFLINE);
    uint8_t b[4];
    CHECK_STATUS(umbra_lun_read(a, "copy", HOST1, 0, b, 4), UMBRA_E_BAD_STATE);
    OK(umbra_lun_set_online(a, "copy", true));
    OK(umbra_lun_read(a, "copy", HOST1, 0, b, 4));
    OK(umbra_lun_delete(a, "copy"));
}

/* ---- incremental backup: changed blocks between snapshot LUNs ---- */

static void incremental_backup(umbra_array *a) {
    uint32_t bs = 0;
    OK(umbra_array_get_block_size(a, &bs));
    CHECK(bs >= 4096 && (bs & (bs - 1)) == 0);
    OK(umbra_lun_create(a, "vm", 32 * (uint64_t)bs, HOST1));
    write_lun(a, "vm", HOST1, 0, "base");
    OK(umbra_lun_snapshot(a, "vm", "vm-full"));
    write_lun(a, "vm", HOST1, 5 * (uint64_t)bs + 10, "ten bytes!");
    write_lun(a, "vm", HOST1, 9 * (uint64_t)bs - 2, "span"); /* blocks 8 and 9 */
    OK(umbra_lun_snapshot(a, "vm", "vm-incr"));
    write_lun(a, "vm", HOST1, 20 * (uint64_t)bs, "later");

    uint64_t blocks[8];
    size_t n = 0;
    OK(umbra_lun_get_changed_blocks(a, "vm-full", "vm-incr", blocks, 8, &n));
    CHECK(n == 3 && blocks[0] == 5 && blocks[1] == 8 && blocks[2] == 9);
    OK(umbra_lun_get_changed_blocks(a, "vm-incr", "vm", blocks, 8, &n));
    CHECK(n == 1 && blocks[0] == 20);
    OK(umbra_lun_get_changed_blocks(a, "vm-full", "vm", blocks, 8, &n));
    CHECK(n == 4 && blocks[0] == 5 && blocks[1] == 8 && blocks[2] == 9 && blocks[3] == 20);

    /* Buffer convention: too small leaves the buffer untouched and reports the count. */
    blocks[0] = 77;
    CHECK_STATUS(umbra_lun_get_changed_blocks(a, "vm-full", "vm", blocks, 1, &n),
                 UMBRA_E_BUFFER_TOO_SMALL);
    CHECK(n == 4 && blocks[0] == 77);
    CHECK_STATUS(umbra_lun_get_changed_blocks(a, "vm-full", "vm", NULL, 0, &n),
                 UMBRA_E_BUFFER_TOO_SMALL);
    CHECK(n == 4);

    /* Bad pairs and arguments. */
    CHECK_STATUS(umbra_lun_get_changed_blocks(a, "vm", "vm-full", blocks, 8, &n),
                 UMBRA_E_INVALID_ARGUMENT);
    CHECK_STATUS(umbra_lun_get_changed_blocks(a, "vm-full", "nope", blocks, 8, &n), UMBRA_E_NOT_FOUND);
    CHECK_STATUS(umbra_lun_get_changed_blocks(a, NULL, "vm", blocks, 8, &n), UMBRA_E_NULL_POINTER);
    CHECK_STATUS(umbra_array_get_block_size(a, NULL), UMBRA_E_NULL_POINTER);

    OK(umbra_lun_delete(a, "vm-incr"));
    OK(umbra_lun_delete(a, "vm-full"));
    OK(umbra_lun_delete(a, "vm"));
}

/* ---- a persistent pool ---- */

static void persistent_pool(const char *scratch) {
    char pool[1024];
    snprintf(pool, sizeof pool, "%s/pool", scratch);
    umbra_array *a = NULL;
    OK(umbra_array_open(pool, &a));
    OK(umbra_lun_create(a, "disk0", MiB, "iqn.1991-05.com.microsoft:host1=ro;5001438001234567"));
    OK(umbra_lun_write(a, "disk0", "50-01-43-80-01-23-45-67", 4096, (const uint8_t *)"durable", 7));
    OK(umbra_lun_snapshot(a, "disk0", "disk0-snap"));
    OK(umbra_lun_write(a, "disk0", "5001438001234567", 4096, (const uint8_t *)"changed", 7));

    /* One owner per pool. */
    umbra_array *second = NULL;
    CHECK_STATUS(umbra_array_open(pool, &second), UMBRA_E_BUSY);
    CHECK(second == NULL);
    umbra_array_free(a);

    OK(umbra_array_open(pool, &a));
    char buf[256];
    get_mask(a, "disk0", buf, sizeof buf);
    CHECK(strcmp(buf, "5001438001234567;iqn.1991-05.com.microsoft:host1=ro") == 0);
    expect_lun(a, "disk0", HOST1, 4096, "changed");
    OK(umbra_lun_set_mask(a, "disk0-snap", HOST1));
    expect_lun(a, "disk0-snap", HOST1, 4096, "durable");
    umbra_array_free(a);

    /* The open-existing call opens the pool, never creates one. */
    OK(umbra_array_open_existing(pool, &a));
    expect_lun(a, "disk0", HOST1, 4096, "changed");
    umbra_array_free(a);
    char missing[1024];
    snprintf(missing, sizeof missing, "%s/no-pool-here", scratch);
    CHECK_STATUS(umbra_array_open_existing(missing, &second), UMBRA_E_NOT_FOUND);
    CHECK(second == NULL);

    /* A directory with files but no pool (a LUN's volume directory, a mistyped path) is refused
       with its own status, and nothing is written to it. */
    char notpool[1024];
    snprintf(notpool, sizeof notpool, "%s/pool/luns", scratch);
    CHECK_STATUS(umbra_array_open(notpool, &second), UMBRA_E_NOT_A_POOL);
    CHECK(second == NULL);
    CHECK_STATUS(umbra_array_open_existing(notpool, &second), UMBRA_E_NOT_A_POOL);
    CHECK(strcmp(umbra_status_name(UMBRA_E_NOT_A_POOL), "UMBRA_E_NOT_A_POOL") == 0);
    char probe[1100];
    snprintf(probe, sizeof probe, "%s/pool.log", notpool);
    CHECK(access(probe, F_OK) != 0);
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    umbra_array *a = NULL;
    OK(umbra_array_open(NULL, &a));
    CHECK(a != NULL);

    struct recorder *rec = calloc(1, sizeof *rec);
    CHECK(rec != NULL);
    pthread_mutex_init(&rec->lock, NULL);
    uint64_t sub = 0;
    OK(umbra_array_subscribe(a, record, rec, &sub));

    masking(a);
    fast_recovery(a, rec);
    lun_operations(a);
    incremental_backup(a);

    OK(umbra_array_unsubscribe(a, sub));
    pthread_mutex_lock(&rec->lock);
    int before = rec->count;
    pthread_mutex_unlock(&rec->lock);
    OK(umbra_lun_create(a, "quiet", MiB, ""));
    umbra_array_free(a); /* delivers what is queued, joins the notification thread */
    CHECK(rec->count == before);
    pthread_mutex_destroy(&rec->lock);
    free(rec);

    persistent_pool(argv[1]);
    printf("array: ok\n");
    return 0;
}
