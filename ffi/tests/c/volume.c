/* Volumes and snapshots through the C ABI: memory and file volumes, writable and read-only
 * snapshots, revert (sync and async), listing and metadata, changed blocks, diff-area usage and
 * limits with their notification, grow, discard, freeze/thaw, reopen, a damaged directory, and a
 * snapshot moved out into a file.
 *
 * Usage: volume SCRATCH_DIR (an existing, empty directory) */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <pthread.h>

#include "check.h"

#define MiB (1024u * 1024u)
#define BS 4096u
/* A value an untouched out-parameter keeps. */
#define SENTINEL ((uintptr_t)0x5e5e)

static void fill(uint8_t *buf, size_t len, uint8_t seed) {
    for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)(seed + i * 7);
}

static void expect_bytes(umbra_volume *vol, uint64_t snap, uint64_t off, const void *want,
                         size_t len) {
    uint8_t *got = malloc(len);
    CHECK(got != NULL);
    if (snap == UMBRA_ORIGIN)
        OK(umbra_volume_read(vol, off, got, len));
    else
        OK(umbra_snapshot_read(vol, snap, off, got, len));
    CHECK(memcmp(got, want, len) == 0);
    free(got);
}

static void memory_volume(void) {
    umbra_volume *vol = NULL;
    OK(umbra_volume_create_mem(MiB, BS, &vol));
    CHECK(vol != NULL);

    uint64_t size = 0;
    uint32_t bs = 0;
    OK(umbra_volume_get_size(vol, &size));
    OK(umbra_volume_get_block_size(vol, &bs));
    CHECK(size == MiB && bs == BS);

    /* Unaligned small write, then a snapshot, then an overwrite. */
    OK(umbra_volume_write(vol, 100, (const uint8_t *)"before", 6));
    uint64_t s1 = 0;
    OK(umbra_snapshot_create(vol, &s1));
    CHECK(s1 != 0);
    OK(umbra_volume_write(vol, 100, (const uint8_t *)"after!", 6));
    expect_bytes(vol, s1, 100, "before", 6);
    expect_bytes(vol, UMBRA_ORIGIN, 100, "after!", 6);

    /* A write across three blocks at an odd offset. */
    uint8_t big[10000], big2[10000];
    fill(big, sizeof big, 1);
    fill(big2, sizeof big2, 99);
    OK(umbra_volume_write(vol, 4000, big, sizeof big));
    uint64_t s2 = 0;
    OK(umbra_snapshot_create(vol, &s2));
    CHECK(s2 > s1);
    OK(umbra_volume_write(vol, 4000, big2, sizeof big2));
    expect_bytes(vol, s2, 4000, big, sizeof big);
    expect_bytes(vol, UMBRA_ORIGIN, 4000, big2, sizeof big2);

    /* Writable snapshot: its writes stay in it. */
    OK(umbra_snapshot_write(vol, s1, 100, (const uint8_t *)"SNAPW!", 6));
    expect_bytes(vol, s1, 100, "SNAPW!", 6);
    expect_bytes(vol, UMBRA_ORIGIN, 100, "after!", 6);

    /* Read-only, pinned snapshot with metadata. */
    const char label[] = "backup-set 42";
    uint64_t s3 = 0;
    OK(umbra_snapshot_create_ex(vol, UMBRA_SNAPSHOT_READ_ONLY | UMBRA_SNAPSHOT_PINNED,
                                (const uint8_t *)label, strlen(label), &s3));
    CHECK_STATUS(umbra_snapshot_write(vol, s3, 0, (const uint8_t *)"x", 1), UMBRA_E_BAD_STATE);
    umbra_snapshot_info info;
    memset(&info, 0, sizeof info);
    OK(umbra_snapshot_get_info(vol, s3, &info));
    CHECK(info.id == s3 && info.size_bytes == MiB);
    /* A memory volume has no journal: its snapshots are volatile, whatever was asked. */
    CHECK(info.flags == (UMBRA_SNAPSHOT_READ_ONLY | UMBRA_SNAPSHOT_PINNED | UMBRA_SNAPSHOT_VOLATILE));
    CHECK(info.metadata_len == strlen(label));
    size_t mlen = 0;
    CHECK_STATUS(umbra_snapshot_get_metadata(vol, s3, NULL, 0, &mlen), UMBRA_E_BUFFER_TOO_SMALL);
    CHECK(mlen == strlen(label));
    char meta[64];
    OK(umbra_snapshot_get_metadata(vol, s3, (uint8_t *)meta, sizeof meta, &mlen));
    CHECK(mlen == strlen(label) && memcmp(meta, label, mlen) == 0);
    OK(umbra_snapshot_set_metadata(vol, s3, (const uint8_t *)"new", 3));
    OK(umbra_snapshot_get_metadata(vol, s3, (uint8_t *)meta, sizeof meta, &mlen));
    CHECK(mlen == 3 && memcmp(meta, "new", 3) == 0);
    OK(umbra_snapshot_set_pinned(vol, s3, false));
    OK(umbra_snapshot_get_info(vol, s3, &info));
    CHECK(info.flags == (UMBRA_SNAPSHOT_READ_ONLY | UMBRA_SNAPSHOT_VOLATILE));
    OK(umbra_snapshot_get_info(vol, s1, &info));
    CHECK(info.flags == UMBRA_SNAPSHOT_VOLATILE && info.diff_blocks > 0);

    /* Listing, oldest first. */
    uint64_t ids[8];
    size_t count = 0;
    CHECK_STATUS(umbra_snapshot_list(vol, NULL, 0, &count), UMBRA_E_BUFFER_TOO_SMALL);
    CHECK(count == 3);
    OK(umbra_snapshot_list(vol, ids, 8, &count));
    CHECK(count == 3 && ids[0] == s1 && ids[1] == s2 && ids[2] == s3);

    /* Changed blocks: s2 -> origin covers the blocks of the overwrite at 4000..14000 (0..3). */
    uint64_t blocks[16];
    OK(umbra_snapshot_get_changed_blocks(vol, s2, UMBRA_ORIGIN, blocks, 16, &count));
    CHECK(count == 4);
    for (size_t i = 0; i < count; i++) CHECK(blocks[i] == i);
    OK(umbra_snapshot_get_changed_blocks(vol, s3, UMBRA_ORIGIN, blocks, 16, &count));
    CHECK(count == 0);

    /* Diff-area usage. */
    uint64_t used = 0, limit = 0;
    OK(umbra_volume_get_diff_usage(vol, &used, &limit));
    CHECK(used > 0 && used % BS == 0 && limit == UMBRA_UNLIMITED);

    /* Revert to s2: the origin becomes s2's image; every snapshot stays unchanged. */
    OK(umbra_volume_revert(vol, s2));
    expect_bytes(vol, UMBRA_ORIGIN, 4000, big, sizeof big);
    expect_bytes(vol, s2, 4000, big, sizeof big);
    expect_bytes(vol, s1, 100, "SNAPW!", 6);

    /* Async revert to s1 with progress. */
    umbra_async *op = NULL;
    OK(umbra_volume_revert_async(vol, s1, &op));
    uint32_t pct = 0;
    OK(umbra_async_get_percent(op, &pct));
    CHECK(pct <= 100);
    OK(umbra_async_wait(op));
    OK(umbra_async_wait(op)); /* repeatable */
    OK(umbra_async_get_percent(op, &pct));
    CHECK(pct == 100);
    umbra_async_free(op);
    expect_bytes(vol, UMBRA_ORIGIN, 100, "SNAPW!", 6);

    /* Delete the middle snapshot: the others keep their images. */
    OK(umbra_snapshot_delete(vol, s2));
    uint8_t b;
    CHECK_STATUS(umbra_snapshot_read(vol, s2, 0, &b, 1), UMBRA_E_NOT_FOUND);
    expect_bytes(vol, s1, 100, "SNAPW!", 6);

    /* Discard: zeros on the volume, snapshots keep their data. */
    OK(umbra_volume_write(vol, 8192, (const uint8_t *)"keepme", 6));
    uint64_t s4 = 0;
    OK(umbra_snapshot_create(vol, &s4));
    OK(umbra_volume_discard(vol, 8192, BS));
    expect_bytes(vol, s4, 8192, "keepme", 6);
    uint8_t zeros[6] = {0};
    expect_bytes(vol, UMBRA_ORIGIN, 8192, zeros, 6);

    /* Grow: new space reads as zeros, snapshots keep their size. */
    OK(umbra_volume_grow(vol, 2 * MiB));
    OK(umbra_volume_get_size(vol, &size));
    CHECK(size == 2 * MiB);
    expect_bytes(vol, UMBRA_ORIGIN, 2 * MiB - 6, zeros, 6);
    OK(umbra_snapshot_get_info(vol, s4, &info));
    CHECK(info.size_bytes == MiB);
    CHECK_STATUS(umbra_snapshot_read(vol, s4, MiB, &b, 1), UMBRA_E_OUT_OF_RANGE);

    /* Freeze / thaw. */
    OK(umbra_volume_freeze(vol, 5000));
    CHECK_STATUS(umbra_volume_freeze(vol, 5000), UMBRA_E_BAD_STATE);
    OK(umbra_volume_thaw(vol));
    CHECK_STATUS(umbra_volume_thaw(vol), UMBRA_E_BAD_STATE);

    OK(umbra_volume_flush(vol));
    umbra_volume_free(vol);
}

/* ---- diff-area limits and the snapshot-deleted notification ---- */

struct events {
    pthread_mutex_t lock;
    int count;
    uint64_t last_kind;
    char last_subject[64];
    char last_json[256];
};

static void on_event(void *ctx, uint32_t kind, const char *subject, const char *json) {
    struct events *ev = ctx;
    pthread_mutex_lock(&ev->lock);
    ev->count++;
    ev->last_kind = kind;
    snprintf(ev->last_subject, sizeof ev->last_subject, "%s", subject);
    snprintf(ev->last_json, sizeof ev->last_json, "%s", json);
    pthread_mutex_unlock(&ev->lock);
}

static int event_count(struct events *ev) {
    pthread_mutex_lock(&ev->lock);
    int n = ev->count;
    pthread_mutex_unlock(&ev->lock);
    return n;
}

static void diff_limits(void) {
    /* Delete-oldest policy: a full diff area deletes the oldest unpinned snapshot and says so. */
    umbra_volume *vol = NULL;
    OK(umbra_volume_create_mem_ex(MiB, BS, 2 * BS, 0, &vol));
    struct events ev;
    memset(&ev, 0, sizeof ev);
    pthread_mutex_init(&ev.lock, NULL);
    uint64_t sub = 0;
    OK(umbra_volume_subscribe(vol, on_event, &ev, &sub));
    CHECK(sub != 0);

    uint64_t old = 0;
    OK(umbra_snapshot_create(vol, &old));
    uint8_t block[3 * BS];
    fill(block, sizeof block, 5);
    OK(umbra_volume_write(vol, 0, block, sizeof block)); /* needs 3 slots, limit 2 */
    for (int i = 0; i < 500 && event_count(&ev) == 0; i++) umbra_test_sleep_ms(10);
    CHECK(event_count(&ev) == 1);
    pthread_mutex_lock(&ev.lock);
    CHECK(ev.last_kind == UMBRA_EVENT_SNAPSHOT_DELETED);
    char want[32];
    snprintf(want, sizeof want, "%llu", (unsigned long long)old);
    CHECK(strcmp(ev.last_subject, want) == 0);
    CHECK(strstr(ev.last_json, "\"snapshot_deleted\"") != NULL);
    pthread_mutex_unlock(&ev.lock);
    uint8_t b;
    CHECK_STATUS(umbra_snapshot_read(vol, old, 0, &b, 1), UMBRA_E_NOT_FOUND);
    uint64_t used = 0, limit = 0;
    OK(umbra_volume_get_diff_usage(vol, &used, &limit));
    CHECK(limit == 2 * BS && used <= limit);

    OK(umbra_volume_unsubscribe(vol, sub));
    CHECK_STATUS(umbra_volume_unsubscribe(vol, sub), UMBRA_E_NOT_FOUND);
    umbra_volume_free(vol);
    pthread_mutex_destroy(&ev.lock);

    /* Fail-writes policy: the write fails whole and changes nothing. */
    OK(umbra_volume_create_mem_ex(MiB, BS, BS, UMBRA_VOLUME_FAIL_WRITES_WHEN_FULL, &vol));
    OK(umbra_volume_write(vol, 0, block, sizeof block));
    uint64_t snap = 0;
    OK(umbra_snapshot_create(vol, &snap));
    uint8_t other[3 * BS];
    fill(other, sizeof other, 77);
    CHECK_STATUS(umbra_volume_write(vol, 0, other, sizeof other), UMBRA_E_NO_SPACE);
    expect_bytes(vol, UMBRA_ORIGIN, 0, block, sizeof block);
    expect_bytes(vol, snap, 0, block, sizeof block);
    umbra_volume_free(vol);
}

/* ---- file volumes: persistence, reopen, refusals, damage ---- */

static void file_volume(const char *scratch) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/vol1", scratch);

    umbra_volume *vol = NULL;
    OK(umbra_volume_create_file(dir, MiB, BS, &vol));
    OK(umbra_volume_write(vol, 12345, (const uint8_t *)"persisted", 9));
    uint64_t snap = 0;
    OK(umbra_snapshot_create(vol, &snap));
    uint64_t vsnap = 0;
    OK(umbra_snapshot_create_ex(vol, UMBRA_SNAPSHOT_VOLATILE, NULL, 0, &vsnap));
    OK(umbra_volume_write(vol, 12345, (const uint8_t *)"overwrite", 9));
    /* The flags say which snapshot survives the reopen below. */
    umbra_snapshot_info info;
    OK(umbra_snapshot_get_info(vol, snap, &info));
    CHECK(info.flags == 0);
    OK(umbra_snapshot_get_info(vol, vsnap, &info));
    CHECK(info.flags == UMBRA_SNAPSHOT_VOLATILE);

    /* One owner at a time. */
    umbra_volume *second = NULL;
    CHECK_STATUS(umbra_volume_open_file(dir, &second), UMBRA_E_BUSY);
    CHECK(second == NULL);
    umbra_volume_free(vol);

    /* A non-empty directory is refused. */
    CHECK_STATUS(umbra_volume_create_file(dir, MiB, BS, &vol), UMBRA_E_ALREADY_EXISTS);

    /* Reopen: the persistent snapshot is back, the volatile one is gone. */
    OK(umbra_volume_open_file(dir, &vol));
    expect_bytes(vol, snap, 12345, "persisted", 9);
    expect_bytes(vol, UMBRA_ORIGIN, 12345, "overwrite", 9);
    uint8_t b;
    CHECK_STATUS(umbra_snapshot_read(vol, vsnap, 0, &b, 1), UMBRA_E_NOT_FOUND);
    size_t count = 0;
    uint64_t ids[4];
    OK(umbra_snapshot_list(vol, ids, 4, &count));
    CHECK(count == 1 && ids[0] == snap);
    umbra_volume_free(vol);

    /* A volatile file volume keeps no journal: its snapshots say they are volatile. */
    char vdir[1024];
    snprintf(vdir, sizeof vdir, "%s/vol-volatile", scratch);
    OK(umbra_volume_create_file_ex(vdir, MiB, BS, UMBRA_UNLIMITED, UMBRA_VOLUME_VOLATILE, &vol));
    OK(umbra_snapshot_create(vol, &snap));
    OK(umbra_snapshot_get_info(vol, snap, &info));
    CHECK(info.flags == UMBRA_SNAPSHOT_VOLATILE);
    umbra_volume_free(vol);

    /* Missing directory. */
    char missing[1024];
    snprintf(missing, sizeof missing, "%s/no-such-volume", scratch);
    CHECK_STATUS(umbra_volume_open_file(missing, &vol), UMBRA_E_NOT_FOUND);
    /* Missing parent. */
    snprintf(missing, sizeof missing, "%s/no/such/parent", scratch);
    CHECK(umbra_volume_create_file(missing, MiB, BS, &vol) != UMBRA_OK);

    /* A damaged volume: garbage over everything but the origin. Never a crash. */
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "origin.img") == 0) continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "r+b");
        CHECK(f != NULL);
        uint8_t junk[8192];
        memset(junk, 0xA5, sizeof junk);
        CHECK(fwrite(junk, 1, sizeof junk, f) == sizeof junk);
        fclose(f);
    }
    closedir(d);
    vol = NULL;
    umbra_status st = umbra_volume_open_file(dir, &vol);
    CHECK(st == UMBRA_E_CORRUPT || st == UMBRA_E_UNSUPPORTED_VERSION);
    CHECK(vol == NULL);
    char msg[256];
    CHECK(umbra_last_error(msg, sizeof msg) > 0);
    CHECK(strstr(msg, "umbra_volume_open_file") != NULL);
}

/* A snapshot moved out into a file stands alone, byte for byte; the volume forgets it. */
static void move_to_file(const char *scratch) {
    umbra_volume *vol = NULL;
    OK(umbra_volume_create_mem(MiB, BS, &vol));
    uint8_t *want = malloc(MiB);
    uint8_t *got = malloc(MiB);
    CHECK(want != NULL && got != NULL);
    fill(want, MiB, 7);
    OK(umbra_volume_write(vol, 0, want, MiB));
    uint64_t snap = 0;
    OK(umbra_snapshot_create(vol, &snap)); /* writable */
    /* The snapshot's own write, partial blocks on both sides. */
    uint8_t mine[6000];
    fill(mine, sizeof mine, 9);
    OK(umbra_snapshot_write(vol, snap, 3000, mine, sizeof mine));
    memcpy(want + 3000, mine, sizeof mine);
    /* Origin writes after the snapshot are not its business. */
    uint8_t later[BS];
    fill(later, sizeof later, 11);
    OK(umbra_volume_write(vol, 5 * BS, later, sizeof later));

    char path[1024];
    snprintf(path, sizeof path, "%s/split.img", scratch);
    umbra_async *op = NULL;
    OK(umbra_snapshot_move_to_file_async(vol, snap, path, &op));
    OK(umbra_async_wait(op));
    uint32_t pct = 0;
    OK(umbra_async_get_percent(op, &pct));
    CHECK(pct == 100);
    umbra_async_free(op);

    uint8_t b;
    CHECK_STATUS(umbra_snapshot_read(vol, snap, 0, &b, 1), UMBRA_E_NOT_FOUND);
    size_t count = 9;
    OK(umbra_snapshot_list(vol, NULL, 0, &count));
    CHECK(count == 0);
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    CHECK(fread(got, 1, MiB, f) == MiB);
    CHECK(fgetc(f) == EOF);
    fclose(f);
    CHECK(memcmp(got, want, MiB) == 0);

    /* Checked before any work: an unknown snapshot, an existing file (never written over: here
     * the finished image), a missing directory, a NULL path. */
    uint64_t other = 0;
    OK(umbra_snapshot_create(vol, &other));
    op = (umbra_async *)SENTINEL;
    CHECK_STATUS(umbra_snapshot_move_to_file_async(vol, snap, path, &op), UMBRA_E_NOT_FOUND);
    CHECK_STATUS(umbra_snapshot_move_to_file_async(vol, other, path, &op), UMBRA_E_ALREADY_EXISTS);
    f = fopen(path, "rb");
    CHECK(f != NULL && fread(got, 1, MiB, f) == MiB);
    fclose(f);
    CHECK(memcmp(got, want, MiB) == 0);
    char missing[1024];
    snprintf(missing, sizeof missing, "%s/no-such-dir/x.img", scratch);
    CHECK_STATUS(umbra_snapshot_move_to_file_async(vol, other, missing, &op), UMBRA_E_NOT_FOUND);
    CHECK_STATUS(umbra_snapshot_move_to_file_async(vol, other, NULL, &op), UMBRA_E_NULL_POINTER);
    CHECK(op == (umbra_async *)SENTINEL);

    /* A cancelled move starts over into a new file and copies everything. */
    uint8_t fresh[BS];
    fill(fresh, sizeof fresh, 13);
    OK(umbra_snapshot_write(vol, other, 7 * BS, fresh, sizeof fresh));
    CHECK_STATUS(umbra_snapshot_read(vol, other, 0, got, MiB), UMBRA_OK);
    memcpy(want, got, MiB);
    snprintf(path, sizeof path, "%s/cancelled.img", scratch);
    OK(umbra_snapshot_move_to_file_async(vol, other, path, &op));
    OK(umbra_async_cancel(op));
    umbra_status st = umbra_async_wait(op);
    CHECK(st == UMBRA_E_CANCELLED || st == UMBRA_OK);
    umbra_async_free(op);
    if (st == UMBRA_E_CANCELLED) {
        snprintf(path, sizeof path, "%s/second.img", scratch);
        OK(umbra_snapshot_move_to_file_async(vol, other, path, &op));
        OK(umbra_async_wait(op));
        umbra_async_free(op);
    }
    f = fopen(path, "rb");
    CHECK(f != NULL && fread(got, 1, MiB, f) == MiB);
    fclose(f);
    CHECK(memcmp(got, want, MiB) == 0);
    OK(umbra_snapshot_list(vol, NULL, 0, &count));
    CHECK(count == 0);

    free(want);
    free(got);
    umbra_volume_free(vol);
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    uint32_t abi = umbra_abi_version();
    CHECK(abi == UMBRA_ABI_VERSION);
    CHECK((abi >> 16) >= 1);
    CHECK(strlen(umbra_version_string()) > 0);
    memory_volume();
    diff_limits();
    file_volume(argv[1]);
    move_to_file(argv[1]);
    printf("volume: ok\n");
    return 0;
}
