/* The deprecated aliases of ABI 1.3's renames keep working: each old name is called and must
 * answer exactly as its new name does, and a failure through an old name is reported under that
 * name. The header marks each one UMBRA_DEPRECATED("use <new name>"): calling them is a warning
 * (an error under -Werror), which is what a program still on the old names sees; this file opts
 * out of it on purpose. Every other test program uses the new names.
 *
 * Usage: aliases <scratch-dir> */
#define _POSIX_C_SOURCE 200809L
#include "check.h"

#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif

#define MiB (1024u * 1024u)
#define BS 4096u

static const char *HOST1 = "iqn.1991-05.com.microsoft:host1";

/* The last error starts with `function: `. */
static void check_named(const char *function) {
    char msg[512];
    umbra_last_error(msg, sizeof msg);
    size_t n = strlen(function);
    CHECK(strncmp(msg, function, n) == 0 && msg[n] == ':');
}

static void volume_aliases(const char *scratch) {
    umbra_volume *vol = NULL;
    OK(umbra_volume_create_mem_ex(MiB, BS, 64 * 1024, 0, &vol));

    uint64_t a = 0, b = 1;
    OK(umbra_volume_size(vol, &a));
    OK(umbra_volume_get_size(vol, &b));
    CHECK(a == MiB && a == b);
    CHECK_STATUS(umbra_volume_size(NULL, &a), UMBRA_E_NULL_POINTER);
    check_named("umbra_volume_size");

    uint32_t bs1 = 0, bs2 = 1;
    OK(umbra_volume_block_size(vol, &bs1));
    OK(umbra_volume_get_block_size(vol, &bs2));
    CHECK(bs1 == BS && bs1 == bs2);

    uint64_t used1 = 9, limit1 = 9, used2 = 8, limit2 = 8;
    OK(umbra_volume_diff_usage(vol, &used1, &limit1));
    OK(umbra_volume_get_diff_usage(vol, &used2, &limit2));
    CHECK(used1 == used2 && limit1 == limit2 && limit1 == 64 * 1024);

    uint64_t snap = 0;
    OK(umbra_snapshot_create(vol, &snap));
    uint8_t data[BS];
    memset(data, 0xab, sizeof data);
    OK(umbra_volume_write(vol, 3 * BS, data, sizeof data));
    uint64_t blocks1[8], blocks2[8];
    size_t n1 = 0, n2 = 0;
    OK(umbra_changed_blocks(vol, snap, UMBRA_ORIGIN, blocks1, 8, &n1));
    OK(umbra_snapshot_get_changed_blocks(vol, snap, UMBRA_ORIGIN, blocks2, 8, &n2));
    CHECK(n1 == 1 && n2 == 1 && blocks1[0] == 3 && blocks2[0] == 3);
    CHECK_STATUS(umbra_changed_blocks(vol, 999, UMBRA_ORIGIN, blocks1, 8, &n1),
                 UMBRA_E_NOT_FOUND);
    check_named("umbra_changed_blocks");

    /* The old name of umbra_snapshot_move_to_file_async. */
    char path[1024];
    snprintf(path, sizeof path, "%s/moved.img", scratch);
    umbra_async *op = NULL;
    OK(umbra_snapshot_split_async(vol, snap, path, &op));
    OK(umbra_async_wait(op));
    uint32_t pct1 = 0, pct2 = 0;
    OK(umbra_async_percent(op, &pct1));
    OK(umbra_async_get_percent(op, &pct2));
    CHECK(pct1 == 100 && pct2 == 100);
    CHECK_STATUS(umbra_async_percent(NULL, &pct1), UMBRA_E_NULL_POINTER);
    check_named("umbra_async_percent");
    umbra_async_free(op);
    size_t count = 9;
    OK(umbra_snapshot_list(vol, NULL, 0, &count));
    CHECK(count == 0);
    CHECK_STATUS(umbra_snapshot_split_async(vol, snap, path, &op), UMBRA_E_NOT_FOUND);
    check_named("umbra_snapshot_split_async");
    umbra_volume_free(vol);
}

static void array_aliases(void) {
    umbra_array *array = NULL;
    OK(umbra_array_open(NULL, &array));
    OK(umbra_lun_create(array, "prod", MiB, HOST1));

    uint32_t bs1 = 0, bs2 = 1;
    OK(umbra_array_block_size(array, &bs1));
    OK(umbra_array_get_block_size(array, &bs2));
    CHECK(bs1 == BS && bs1 == bs2);

    uint32_t acc1 = 9, num1 = 9, acc2 = 8, num2 = 8;
    OK(umbra_lun_access(array, "prod", HOST1, &acc1, &num1));
    OK(umbra_lun_get_access(array, "prod", HOST1, &acc2, &num2));
    CHECK(acc1 == UMBRA_ACCESS_READ_WRITE && acc1 == acc2 && num1 == num2);
    CHECK_STATUS(umbra_lun_access(array, "prod", "not an initiator", &acc1, &num1),
                 UMBRA_E_INVALID_INITIATOR);
    check_named("umbra_lun_access");

    char b1[256], b2[256];
    size_t l1 = 0, l2 = 0;
    OK(umbra_lun_hosts(array, "prod", b1, sizeof b1, &l1));
    OK(umbra_lun_get_initiators(array, "prod", b2, sizeof b2, &l2));
    CHECK(l1 == l2 && strcmp(b1, HOST1) == 0 && strcmp(b1, b2) == 0);
    CHECK_STATUS(umbra_lun_hosts(array, "nope", b1, sizeof b1, &l1), UMBRA_E_NOT_FOUND);
    check_named("umbra_lun_hosts");

    OK(umbra_host_view(array, HOST1, b1, sizeof b1, &l1));
    OK(umbra_initiator_get_luns(array, HOST1, b2, sizeof b2, &l2));
    CHECK(l1 == l2 && strcmp(b1, "prod") == 0 && strcmp(b1, b2) == 0);
    /* A size query through the old name stays quiet too: the last error is the one above. */
    CHECK_STATUS(umbra_host_view(array, HOST1, NULL, 0, &l1), UMBRA_E_BUFFER_TOO_SMALL);
    CHECK(l1 == strlen("prod"));
    check_named("umbra_lun_hosts");

    OK(umbra_lun_snapshot(array, "prod", "snap1"));
    uint8_t data[BS];
    memset(data, 0x5a, sizeof data);
    OK(umbra_lun_write(array, "prod", HOST1, 2 * BS, data, sizeof data));
    uint64_t c1[8], c2[8];
    size_t n1 = 0, n2 = 0;
    OK(umbra_lun_changed_blocks(array, "snap1", "prod", c1, 8, &n1));
    OK(umbra_lun_get_changed_blocks(array, "snap1", "prod", c2, 8, &n2));
    CHECK(n1 == 1 && n2 == 1 && c1[0] == 2 && c2[0] == 2);
    CHECK_STATUS(umbra_lun_changed_blocks(array, "snap1", "prod", c1, 0, &n1),
                 UMBRA_E_BUFFER_TOO_SMALL);
    check_named("umbra_lun_changed_blocks");

    umbra_array_free(array);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: aliases <scratch-dir>\n");
        return 2;
    }
    volume_aliases(argv[1]);
    array_aliases();
    printf("aliases: ok\n");
    return 0;
}
