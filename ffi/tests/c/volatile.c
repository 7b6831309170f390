/* Volatile LUNs through the C ABI (ABI 1.8): umbra_lun_create_ex with UMBRA_LUN_VOLATILE makes a
 * LUN whose volume keeps no journal. A block written through a handle and flushed survives a
 * close and a reopen of the pool; the LUN is still volatile after it; a snapshot LUN or a snapshot
 * set of it is refused with UMBRA_E_BAD_STATE (nothing made); unknown flag bits are refused with
 * UMBRA_E_INVALID_ARGUMENT (nothing made); flags 0 make a persistent LUN.
 *
 * Usage: volatile SCRATCH_DIR (an existing, empty directory) */
#define _POSIX_C_SOURCE 200809L
#include "check.h"

#define BS 4096u
#define LUN_SIZE (16u * BS)

static const char *HOST = "iqn.2024-01.org.example:host";

static void fill(uint8_t *buf, uint8_t seed) {
    for (size_t i = 0; i < BS; i++) buf[i] = (uint8_t)(seed + i * 31u);
}

static umbra_lun_handle *open_handle(umbra_array *a, const char *lun) {
    uint32_t access = 0, number = 0;
    OK(umbra_lun_get_access(a, lun, HOST, &access, &number));
    CHECK(access == UMBRA_ACCESS_READ_WRITE);
    umbra_lun_handle *h = NULL;
    OK(umbra_lun_handle_open(a, HOST, number, &h));
    CHECK(h != NULL);
    return h;
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    CHECK(UMBRA_ABI_MINOR >= 8);
    CHECK((umbra_abi_version() & 0xffff) >= 8);
    char pool[1024];
    snprintf(pool, sizeof pool, "%s/pool", argv[1]);

    uint8_t written[BS], other[BS], got[BS];
    fill(written, 7);
    fill(other, 99);

    umbra_array *a = NULL;
    OK(umbra_array_open(pool, &a));

    /* Unknown flags: refused, nothing created. */
    CHECK_STATUS(umbra_lun_create_ex(a, "bad", LUN_SIZE, HOST, 0x2), UMBRA_E_INVALID_ARGUMENT);
    CHECK_STATUS(umbra_lun_create_ex(a, "bad", LUN_SIZE, HOST, UMBRA_LUN_VOLATILE | 0x80000000u),
                 UMBRA_E_INVALID_ARGUMENT);
    bool is_volatile = true;
    CHECK_STATUS(umbra_lun_is_volatile(a, "bad", &is_volatile), UMBRA_E_NOT_FOUND);
    CHECK_STATUS(umbra_lun_create_ex(NULL, "bad", LUN_SIZE, HOST, 0), UMBRA_E_NULL_POINTER);

    /* Flags 0: a persistent LUN, as umbra_lun_create makes. */
    OK(umbra_lun_create_ex(a, "steady", LUN_SIZE, "", 0));
    OK(umbra_lun_is_volatile(a, "steady", &is_volatile));
    CHECK(!is_volatile);

    OK(umbra_lun_create_ex(a, "scratch", LUN_SIZE, HOST, UMBRA_LUN_VOLATILE));
    is_volatile = false;
    OK(umbra_lun_is_volatile(a, "scratch", &is_volatile));
    CHECK(is_volatile);
    CHECK_STATUS(umbra_lun_is_volatile(a, "scratch", NULL), UMBRA_E_NULL_POINTER);

    umbra_lun_handle *h = open_handle(a, "scratch");
    OK(umbra_lun_handle_write(h, 3 * BS, written, BS));
    OK(umbra_lun_handle_flush(h));
    OK(umbra_lun_handle_read(h, 3 * BS, got, BS));
    CHECK(memcmp(got, written, BS) == 0);

    /* Nothing the pool records may stand on its snapshots. */
    CHECK_STATUS(umbra_lun_snapshot(a, "scratch", "scratch-snap"), UMBRA_E_BAD_STATE);
    CHECK(strstr(umbra_status_name(UMBRA_E_BAD_STATE), "BAD_STATE") != NULL);
    char msg[512];
    umbra_last_error(msg, sizeof msg);
    CHECK(strstr(msg, "volatile") != NULL);
    CHECK_STATUS(umbra_lun_is_volatile(a, "scratch-snap", &is_volatile), UMBRA_E_NOT_FOUND);
    const char *sources[] = {"steady", "scratch"};
    const char *names[] = {"steady-shadow", "scratch-shadow"};
    char set[UMBRA_SET_NAME_MAX];
    CHECK_STATUS(umbra_array_create_snapshot_set(a, sources, names, 2, NULL, set, sizeof set),
                 UMBRA_E_BAD_STATE);
    CHECK_STATUS(umbra_lun_is_volatile(a, "steady-shadow", &is_volatile), UMBRA_E_NOT_FOUND);

    /* Written after the flush and never flushed: no promise either way, so not checked after the
     * reopen; written to another block so the flushed one stays what it was. */
    OK(umbra_lun_handle_write(h, 5 * BS, other, BS));
    umbra_lun_handle_close(h);
    umbra_array_free(a);

    /* Reopened: the flushed block is there, the rest of the LUN reads as zeros, still volatile. */
    a = NULL;
    OK(umbra_array_open_existing(pool, &a));
    is_volatile = false;
    OK(umbra_lun_is_volatile(a, "scratch", &is_volatile));
    CHECK(is_volatile);
    OK(umbra_lun_is_volatile(a, "steady", &is_volatile));
    CHECK(!is_volatile);
    h = open_handle(a, "scratch");
    OK(umbra_lun_handle_read(h, 3 * BS, got, BS));
    CHECK(memcmp(got, written, BS) == 0);
    uint8_t zeros[BS];
    memset(zeros, 0, sizeof zeros);
    OK(umbra_lun_handle_read(h, 0, got, BS));
    CHECK(memcmp(got, zeros, BS) == 0);
    CHECK_STATUS(umbra_lun_snapshot(a, "scratch", "scratch-snap"), UMBRA_E_BAD_STATE);
    umbra_lun_handle_close(h);
    umbra_array_free(a);

    printf("volatile: ok\n");
    return 0;
}
