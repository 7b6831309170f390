/* LUN handles through the C ABI, as a SCSI or NBD target uses them: a LUN opened by (initiator,
 * host LUN number); vectored I/O; flush, FUA, discard and write-zeroes; the allocation query
 * (3 blocks written to a 1 GiB LUN report exactly 3, 2 after a discard); after a swap the old
 * handle is refused and the same number reaches the replacement; after a resync onto a LUN the
 * handles opened before are refused and one opened again reads the resynced data. Then the fence: three threads
 * write 1 MiB as a host (two through handles, one by LUN name) while the main thread removes that
 * host; once umbra_lun_set_mask has returned, the LUN's contents never change again.
 *
 * Also import and export of a sparse raw image, and changed extents paged with a cursor.
 *
 * Usage: lun_io SCRATCH_DIR (an existing, empty directory) */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>

#include "check.h"

#define MiB (1024u * 1024u)
#define GiB ((uint64_t)1024 * MiB)
#define BS 4096u
#define WRITERS 3
#define ROUNDS 60

static const char *WRITER = "iqn.2024-01.org.example:writer";
static const char *READER = "iqn.2024-01.org.example:reader";

static uint32_t number_of(const umbra_array *a, const char *lun, const char *host) {
    uint32_t access = 0, number = 0;
    OK(umbra_lun_get_access(a, lun, host, &access, &number));
    CHECK(access != UMBRA_ACCESS_NONE);
    return number;
}

static uint64_t covered(const umbra_extent *e, size_t n) {
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) total += e[i].length;
    return total;
}

static void handle_basics(void) {
    umbra_array *a = NULL;
    OK(umbra_array_open(NULL, &a));
    OK(umbra_lun_create(a, "big", GiB, WRITER));
    OK(umbra_lun_set_host_number(a, "big", WRITER, 5));
    umbra_lun_handle *h = NULL;
    CHECK_STATUS(umbra_lun_handle_open(a, WRITER, 6, &h), UMBRA_E_NOT_FOUND);
    CHECK_STATUS(umbra_lun_handle_open(a, "not an id", 5, &h), UMBRA_E_INVALID_INITIATOR);
    CHECK_STATUS(umbra_lun_handle_open(a, WRITER, 5, NULL), UMBRA_E_NULL_POINTER);
    OK(umbra_lun_handle_open(a, WRITER, 5, &h));
    uint64_t size = 0;
    OK(umbra_lun_handle_get_size(h, &size));
    CHECK(size == GiB);

    /* Vectored: written as two buffers, read back as three. */
    char a1[] = "hello, ", a2[] = "world";
    umbra_iovec wv[2] = {{a1, 7}, {a2, 5}};
    OK(umbra_lun_handle_writev(h, 100, wv, 2));
    char r1[3], r2[4], r3[5];
    umbra_iovec rv[3] = {{r1, 3}, {r2, 4}, {r3, 5}};
    OK(umbra_lun_handle_readv(h, 100, rv, 3));
    CHECK(memcmp(r1, "hel", 3) == 0 && memcmp(r2, "lo, ", 4) == 0 && memcmp(r3, "world", 5) == 0);
    CHECK_STATUS(umbra_lun_handle_readv(h, 0, NULL, 1), UMBRA_E_NULL_POINTER);
    OK(umbra_lun_handle_readv(h, 0, NULL, 0));

    /* Allocation: three blocks written (one above), then one discarded. */
    uint8_t block[BS];
    memset(block, 0xab, sizeof block);
    OK(umbra_lun_handle_write_fua(h, 70000 * (uint64_t)BS, block, BS));
    OK(umbra_lun_handle_write(h, GiB - BS, block, BS));
    OK(umbra_lun_handle_flush(h));
    umbra_extent ext[8];
    size_t n = 0;
    CHECK_STATUS(umbra_lun_handle_get_allocation(h, 0, GiB, ext, 1, &n), UMBRA_E_BUFFER_TOO_SMALL);
    CHECK(n == 3);
    OK(umbra_lun_handle_get_allocation(h, 0, GiB, ext, 8, &n));
    CHECK(n == 3 && covered(ext, n) == 3 * BS);
    CHECK(ext[0].offset == 0 && ext[1].offset == 70000 * (uint64_t)BS && ext[2].offset == GiB - BS);
    OK(umbra_lun_handle_discard(h, 70000 * (uint64_t)BS, BS));
    OK(umbra_lun_handle_get_allocation(h, 0, GiB, ext, 8, &n));
    CHECK(n == 2 && covered(ext, n) == 2 * BS);
    OK(umbra_lun_handle_write_zeroes(h, 102, 3));
    char back[12];
    OK(umbra_lun_handle_read(h, 100, (uint8_t *)back, 12));
    CHECK(memcmp(back, "he\0\0\0, world", 12) == 0);
    CHECK_STATUS(umbra_lun_handle_discard(h, GiB - BS, 2 * BS), UMBRA_E_OUT_OF_RANGE);

    /* The swap: the old handle is refused, the same number reaches the replacement. */
    OK(umbra_lun_create(a, "spare", GiB, ""));
    OK(umbra_lun_swap(a, "big", "spare"));
    CHECK_STATUS(umbra_lun_handle_write(h, 0, block, BS), UMBRA_E_ACCESS_DENIED);
    CHECK_STATUS(umbra_lun_handle_flush(h), UMBRA_E_ACCESS_DENIED);
    umbra_lun_handle *h2 = NULL;
    OK(umbra_lun_handle_open(a, WRITER, 5, &h2));
    OK(umbra_lun_handle_get_allocation(h2, 0, GiB, ext, 8, &n));
    CHECK(n == 0);
    OK(umbra_lun_handle_write(h2, 0, block, BS));
    /* Read-only access: reads and flushes, no writes. */
    OK(umbra_lun_set_mask(a, "spare", "iqn.2024-01.org.example:writer=ro"));
    OK(umbra_lun_handle_read(h2, 0, block, BS));
    OK(umbra_lun_handle_flush(h2));
    CHECK_STATUS(umbra_lun_handle_write_fua(h2, 0, block, BS), UMBRA_E_ACCESS_DENIED);
    CHECK_STATUS(umbra_lun_handle_discard(h2, 0, BS), UMBRA_E_ACCESS_DENIED);

    /* A resync onto the LUN (here from its own snapshot LUN) revokes, as a swap does, every
     * handle opened on it before: their clients' caches sit on replaced content. A handle opened
     * again reads the restored data. */
    OK(umbra_lun_set_mask(a, "spare", WRITER));
    OK(umbra_lun_snapshot(a, "spare", "spare.snap"));
    umbra_lun_handle *h3 = NULL;
    OK(umbra_lun_handle_open(a, WRITER, 5, &h3));
    uint8_t later[BS];
    memset(later, 0x5a, BS);
    OK(umbra_lun_handle_write(h3, 0, later, BS));
    umbra_async *op = NULL;
    OK(umbra_lun_resync_async(a, "spare.snap", "spare", &op));
    OK(umbra_async_wait(op));
    umbra_async_free(op);
    CHECK_STATUS(umbra_lun_handle_read(h3, 0, later, BS), UMBRA_E_ACCESS_DENIED);
    CHECK_STATUS(umbra_lun_handle_write(h3, 0, later, BS), UMBRA_E_ACCESS_DENIED);
    CHECK_STATUS(umbra_lun_handle_read(h2, 0, later, BS), UMBRA_E_ACCESS_DENIED);
    umbra_lun_handle *h4 = NULL;
    OK(umbra_lun_handle_open(a, WRITER, 5, &h4));
    OK(umbra_lun_handle_read(h4, 0, later, BS));
    CHECK(memcmp(later, block, BS) == 0);
    umbra_lun_handle_close(h3);
    umbra_lun_handle_close(h4);
    umbra_lun_handle_close(h);
    umbra_lun_handle_close(h2);
    umbra_lun_handle_close(NULL);
    umbra_array_free(a);
}

/* ---- the fence ---- */

struct writer {
    umbra_array *array;
    const char *lun;       /* by-name writer: the LUN's name */
    umbra_lun_handle *h;   /* handle writer */
    uint8_t fill;
    pthread_t thread;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int started;

static void *write_until_refused(void *arg) {
    struct writer *w = arg;
    uint8_t *buf = malloc(MiB);
    CHECK(buf != NULL);
    memset(buf, w->fill, MiB);
    int first = 1;
    for (;;) {
        umbra_status st = w->h ? umbra_lun_handle_write(w->h, 0, buf, MiB)
                               : umbra_lun_write(w->array, w->lun, WRITER, 0, buf, MiB);
        if (st != UMBRA_OK) {
            CHECK(st == UMBRA_E_ACCESS_DENIED);
            break;
        }
        if (first) {
            first = 0;
            pthread_mutex_lock(&lock);
            started++;
            pthread_cond_broadcast(&cond);
            pthread_mutex_unlock(&lock);
        }
    }
    free(buf);
    return NULL;
}

static void fence(void) {
    umbra_array *a = NULL;
    OK(umbra_array_open(NULL, &a));
    char both[256], reader_only[256];
    snprintf(both, sizeof both, "%s;%s=ro", WRITER, READER);
    snprintf(reader_only, sizeof reader_only, "%s=ro", READER);
    OK(umbra_lun_create(a, "x", 4 * MiB, both));
    uint32_t number = number_of(a, "x", WRITER);
    uint8_t *after = malloc(MiB), *end = malloc(MiB);
    CHECK(after && end);
    for (int round = 0; round < ROUNDS; round++) {
        OK(umbra_lun_set_mask(a, "x", both));
        struct writer w[WRITERS];
        started = 0;
        for (int i = 0; i < WRITERS; i++) {
            w[i].array = a;
            w[i].lun = "x";
            w[i].h = NULL;
            if (i < 2) OK(umbra_lun_handle_open(a, WRITER, number, &w[i].h));
            w[i].fill = (uint8_t)(round * WRITERS + i + 1);
            CHECK(pthread_create(&w[i].thread, NULL, write_until_refused, &w[i]) == 0);
        }
        pthread_mutex_lock(&lock);
        while (started < WRITERS) pthread_cond_wait(&cond, &lock);
        pthread_mutex_unlock(&lock);
        OK(umbra_lun_set_mask(a, "x", reader_only));
        OK(umbra_lun_read(a, "x", READER, 0, after, MiB));
        for (int i = 0; i < WRITERS; i++) {
            CHECK(pthread_join(w[i].thread, NULL) == 0);
            umbra_lun_handle_close(w[i].h);
        }
        OK(umbra_lun_read(a, "x", READER, 0, end, MiB));
        if (memcmp(after, end, MiB) != 0) {
            fprintf(stderr, "round %d: the LUN changed after umbra_lun_set_mask returned\n", round);
            exit(1);
        }
    }
    free(after);
    free(end);
    umbra_array_free(a);
}

static void images_and_extents(const char *scratch) {
    char pool[512], in[512], out[512];
    snprintf(pool, sizeof pool, "%s/pool", scratch);
    snprintf(in, sizeof in, "%s/in.img", scratch);
    snprintf(out, sizeof out, "%s/out.img", scratch);
    /* A sparse 64 MiB image with two data blocks. */
    FILE *f = fopen(in, "wb");
    CHECK(f != NULL);
    uint8_t block[BS];
    memset(block, 0x5a, sizeof block);
    CHECK(fwrite(block, 1, BS, f) == BS);
    CHECK(fseek(f, 40 * (long)MiB, SEEK_SET) == 0);
    CHECK(fwrite(block, 1, BS, f) == BS);
    CHECK(fseek(f, 64 * (long)MiB - 1, SEEK_SET) == 0);
    CHECK(fputc(0, f) == 0);
    CHECK(fclose(f) == 0);

    umbra_array *a = NULL;
    OK(umbra_array_open(pool, &a));
    umbra_async *op = NULL;
    OK(umbra_lun_import_async(a, "img", in, &op));
    OK(umbra_async_wait(op));
    umbra_async_free(op);
    char mask[8];
    size_t mlen = 0;
    OK(umbra_lun_get_mask(a, "img", mask, sizeof mask, &mlen));
    CHECK(mlen == 0);
    OK(umbra_lun_export_async(a, "img", out, &op));
    OK(umbra_async_wait(op));
    umbra_async_free(op);
    CHECK_STATUS(umbra_lun_export_async(a, "nope", out, &op), UMBRA_E_NOT_FOUND);
    OK(umbra_lun_export_async(a, "img", out, &op));
    CHECK_STATUS(umbra_async_wait(op), UMBRA_E_ALREADY_EXISTS);
    umbra_async_free(op);
    /* The export holds the same bytes. */
    FILE *g = fopen(out, "rb");
    CHECK(g != NULL);
    uint8_t got[BS];
    CHECK(fseek(g, 40 * (long)MiB, SEEK_SET) == 0);
    CHECK(fread(got, 1, BS, g) == BS && memcmp(got, block, BS) == 0);
    CHECK(fseek(g, 0, SEEK_END) == 0 && ftell(g) == 64 * (long)MiB);
    CHECK(fclose(g) == 0);

    /* Changed extents between a snapshot LUN and its source, one per call. */
    OK(umbra_lun_snapshot(a, "img", "base"));
    umbra_array_free(a);
    OK(umbra_array_open(pool, &a));
    char who[128];
    snprintf(who, sizeof who, "%s", WRITER);
    OK(umbra_lun_set_mask(a, "img", who));
    for (uint64_t b = 10; b < 13; b++) OK(umbra_lun_write(a, "img", WRITER, b * BS, block, BS));
    OK(umbra_lun_write(a, "img", WRITER, 1000 * (uint64_t)BS, block, 1));
    umbra_extent e[1];
    size_t n = 0;
    uint64_t cursor = 0, next = 0;
    OK(umbra_lun_get_changed_extents(a, "base", "img", cursor, e, 1, &n, &next));
    CHECK(n == 1 && e[0].offset == 10 * (uint64_t)BS && e[0].length == 3 * BS);
    CHECK(next != UMBRA_EXTENTS_END);
    OK(umbra_lun_get_changed_extents(a, "base", "img", next, e, 1, &n, &next));
    CHECK(n == 1 && e[0].offset == 1000 * (uint64_t)BS && e[0].length == BS);
    CHECK(next == UMBRA_EXTENTS_END);
    CHECK_STATUS(umbra_lun_get_changed_extents(a, "base", "img", 1, e, 1, &n, &next),
                 UMBRA_E_INVALID_ARGUMENT);
    umbra_array_free(a);
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    handle_basics();
    images_and_extents(argv[1]);
    fence();
    printf("lun_io: ok\n");
    return 0;
}
