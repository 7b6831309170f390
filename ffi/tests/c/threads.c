/* Four threads write one volume while a fifth takes snapshots; afterwards every snapshot must be a
 * point-in-time image.
 *
 * Each writer owns a region of SLOTS records. Its k-th write (k = 0, 1, 2, ...) fills record
 * k % SLOTS with the stamp (writer, k). Records are RECORD bytes at an unaligned offset, so each
 * write spans three blocks. Before the writers start, record s holds stamp s, so at every instant a
 * writer's region holds exactly the stamps m-SLOTS+1 .. m for some m (each once, in slot order).
 * A snapshot that mixed instants, or held part of one write, breaks that: every record must be one
 * stamp throughout, and the stamps of a region must form one such window. Snapshots taken later must
 * also hold windows at least as far along (m never goes back). The snapshotter waits for every
 * writer to make progress before each snapshot, so the snapshots catch the writers mid-run, and
 * the writers keep writing until the last snapshot is taken.
 *
 * Usage: threads */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>

#include "check.h"

#define BS 4096u
#define WRITERS 4
#define SLOTS 8
#define RECORD (2 * BS)
#define REGION (SLOTS * RECORD + BS)
#define VOLUME_SIZE ((uint64_t)WRITERS * REGION + BS)
#define MAX_WRITES 1000000
#define SNAPSHOTS 12

static umbra_volume *vol;
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t start_cond = PTHREAD_COND_INITIALIZER;
static int started;
static atomic_uint_fast64_t written[WRITERS]; /* stamps written so far, per writer */
static atomic_bool stop;
static uint64_t last_stamp[WRITERS];

static uint64_t record_offset(int writer, int slot) {
    /* 1000 bytes into the region's first block: records straddle block boundaries. */
    return (uint64_t)writer * REGION + 1000 + (uint64_t)slot * RECORD;
}

static void stamp_record(uint8_t *rec, int writer, uint64_t k) {
    for (size_t i = 0; i < RECORD; i += 16) {
        uint64_t w = (uint64_t)writer, kk = k;
        memcpy(rec + i, &w, 8);
        memcpy(rec + i + 8, &kk, 8);
    }
}

/* The stamp of a record, or UINT64_MAX if its parts disagree (a torn write). */
static uint64_t read_stamp(const uint8_t *rec, int writer) {
    uint64_t w0, k0;
    memcpy(&w0, rec, 8);
    memcpy(&k0, rec + 8, 8);
    if (w0 != (uint64_t)writer) return UINT64_MAX;
    for (size_t i = 16; i < RECORD; i += 16) {
        uint64_t w, k;
        memcpy(&w, rec + i, 8);
        memcpy(&k, rec + i + 8, 8);
        if (w != w0 || k != k0) return UINT64_MAX;
    }
    return k0;
}

static void wait_start(void) {
    pthread_mutex_lock(&start_lock);
    while (!started) pthread_cond_wait(&start_cond, &start_lock);
    pthread_mutex_unlock(&start_lock);
}

static void *writer_main(void *arg) {
    int w = (int)(intptr_t)arg;
    uint8_t *rec = malloc(RECORD);
    CHECK(rec != NULL);
    wait_start();
    uint64_t k = SLOTS;
    for (; k < SLOTS + MAX_WRITES && !atomic_load(&stop); k++) {
        stamp_record(rec, w, k);
        OK(umbra_volume_write(vol, record_offset(w, (int)(k % SLOTS)), rec, RECORD));
        atomic_store(&written[w], k);
    }
    last_stamp[w] = k - 1;
    free(rec);
    return NULL;
}

static uint64_t snaps[SNAPSHOTS];

static void *snapshotter_main(void *arg) {
    (void)arg;
    wait_start();
    /* seen[w]: a stamp at least as new as any writer w had finished when the previous snapshot
     * was taken (read after taking it). */
    uint64_t seen[WRITERS] = {0};
    for (int i = 0; i < SNAPSHOTS; i++) {
        /* Wait until every writer has finished a write since the previous snapshot. */
        for (int w = 0; w < WRITERS; w++)
            while (atomic_load(&written[w]) <= seen[w]) umbra_test_sleep_ms(1);
        OK(umbra_snapshot_create(vol, &snaps[i]));
        for (int w = 0; w < WRITERS; w++) seen[w] = atomic_load(&written[w]);
    }
    atomic_store(&stop, true);
    return NULL;
}

/* Checks the region of writer `w` in snapshot `snap` (UMBRA_ORIGIN: the volume) and returns m. */
static uint64_t check_window(uint64_t snap, int w) {
    uint8_t *rec = malloc(RECORD);
    CHECK(rec != NULL);
    uint64_t stamps[SLOTS];
    uint64_t m = 0;
    for (int s = 0; s < SLOTS; s++) {
        if (snap == UMBRA_ORIGIN)
            OK(umbra_volume_read(vol, record_offset(w, s), rec, RECORD));
        else
            OK(umbra_snapshot_read(vol, snap, record_offset(w, s), rec, RECORD));
        stamps[s] = read_stamp(rec, w);
        if (stamps[s] == UINT64_MAX) {
            fprintf(stderr, "snapshot %llu writer %d slot %d: torn record\n",
                    (unsigned long long)snap, w, s);
            exit(1);
        }
        CHECK(stamps[s] % SLOTS == (uint64_t)s);
        if (stamps[s] > m) m = stamps[s];
    }
    /* A window m-SLOTS+1 .. m: slot s holds the largest stamp <= m that is s mod SLOTS. */
    for (int s = 0; s < SLOTS; s++) {
        uint64_t want = m - ((m - (uint64_t)s) % SLOTS);
        if (stamps[s] != want) {
            fprintf(stderr, "snapshot %llu writer %d: slot %d holds %llu, window end %llu\n",
                    (unsigned long long)snap, w, s, (unsigned long long)stamps[s],
                    (unsigned long long)m);
            exit(1);
        }
    }
    free(rec);
    return m;
}

int main(void) {
    OK(umbra_volume_create_mem(VOLUME_SIZE, BS, &vol));
    uint8_t *rec = malloc(RECORD);
    CHECK(rec != NULL);
    for (int w = 0; w < WRITERS; w++)
        for (int s = 0; s < SLOTS; s++) {
            stamp_record(rec, w, (uint64_t)s);
            OK(umbra_volume_write(vol, record_offset(w, s), rec, RECORD));
        }
    free(rec);

    pthread_t writers[WRITERS], snapshotter;
    for (int w = 0; w < WRITERS; w++)
        CHECK(pthread_create(&writers[w], NULL, writer_main, (void *)(intptr_t)w) == 0);
    CHECK(pthread_create(&snapshotter, NULL, snapshotter_main, NULL) == 0);
    pthread_mutex_lock(&start_lock);
    started = 1;
    pthread_cond_broadcast(&start_cond);
    pthread_mutex_unlock(&start_lock);
    for (int w = 0; w < WRITERS; w++) CHECK(pthread_join(writers[w], NULL) == 0);
    CHECK(pthread_join(snapshotter, NULL) == 0);

    /* Every snapshot is a point-in-time image, and later snapshots are no older. */
    uint64_t prev[WRITERS] = {0};
    for (int i = 0; i < SNAPSHOTS; i++) {
        CHECK(i == 0 || snaps[i] > snaps[i - 1]);
        for (int w = 0; w < WRITERS; w++) {
            uint64_t m = check_window(snaps[i], w);
            /* Each snapshot was taken after the writer progressed past the previous one's. */
            CHECK(i == 0 ? m >= SLOTS : m > prev[w]);
            CHECK(m <= last_stamp[w]);
            prev[w] = m;
        }
    }
    /* The volume holds every writer's last window. */
    uint64_t total = 0;
    for (int w = 0; w < WRITERS; w++) {
        CHECK(check_window(UMBRA_ORIGIN, w) == last_stamp[w]);
        total += last_stamp[w] - SLOTS + 1;
    }

    size_t count = 0;
    uint64_t ids[SNAPSHOTS];
    OK(umbra_snapshot_list(vol, ids, SNAPSHOTS, &count));
    CHECK(count == SNAPSHOTS);
    umbra_volume_free(vol);
    printf("threads: ok (%d writers, %llu writes, %d snapshots)\n", WRITERS,
           (unsigned long long)total, SNAPSHOTS);
    return 0;
}
