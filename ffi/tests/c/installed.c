/* A C user's first program against an installed libumbra, built by ffi/tests/install.rs with only
 * `pkg-config --cflags --libs [--static] umbra`: prints the library's version and ABI, and reads a
 * snapshot of a memory volume back. */
#include <stdio.h>
#include <string.h>

#include <umbra.h>

static int fail(const char *what, umbra_status s) {
    char msg[256];
    umbra_last_error(msg, sizeof msg);
    fprintf(stderr, "%s: %s: %s\n", what, umbra_status_name(s), msg);
    return 1;
}

int main(void) {
    uint32_t abi = umbra_abi_version();
    if ((abi >> 16) != UMBRA_ABI_MAJOR || (abi & 0xffff) < UMBRA_ABI_MINOR) {
        fprintf(stderr, "library ABI %u.%u, header %u.%u\n", (unsigned)(abi >> 16),
                (unsigned)(abi & 0xffff), (unsigned)UMBRA_ABI_MAJOR, (unsigned)UMBRA_ABI_MINOR);
        return 1;
    }
    umbra_volume *vol = NULL;
    umbra_status s = umbra_volume_create_mem(1 << 20, 4096, &vol);
    if (s != UMBRA_OK) return fail("umbra_volume_create_mem", s);
    uint64_t snap = 0;
    uint8_t got[6] = {0};
    if ((s = umbra_volume_write(vol, 0, (const uint8_t *)"before", 6)) != UMBRA_OK ||
        (s = umbra_snapshot_create(vol, &snap)) != UMBRA_OK ||
        (s = umbra_volume_write(vol, 0, (const uint8_t *)"after!", 6)) != UMBRA_OK ||
        (s = umbra_snapshot_read(vol, snap, 0, got, sizeof got)) != UMBRA_OK) {
        umbra_volume_free(vol);
        return fail("snapshot round trip", s);
    }
    umbra_volume_free(vol);
    if (memcmp(got, "before", 6) != 0) {
        fprintf(stderr, "the snapshot does not hold what was written before it\n");
        return 1;
    }
    printf("libumbra %s ABI %u.%u\n", umbra_version_string(), (unsigned)(abi >> 16),
           (unsigned)(abi & 0xffff));
    return 0;
}
