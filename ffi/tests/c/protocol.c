/* What the shadow-copy protocol needs from the array, through the C ABI (1.5): freeze and thaw of
 * a set of LUNs (all or none), a snapshot set (one instant, shadow LUNs masked to no one and
 * read-only until broken, its metadata), break, delete of the set in one record, per-LUN and pool
 * metadata (get, set, remove, list), and per-LUN I/O statistics (the writes counted; a swap and a
 * break move no data). */
#define _POSIX_C_SOURCE 200809L
#include "check.h"

#define MiB (1024u * 1024u)
#define BS 4096u

static const char *WRITER = "iqn.2024-01.org.example:writer";
static const char *READER = "iqn.2024-01.org.example:reader";

static void get_string(umbra_status (*f)(const umbra_array *, const char *, char *, size_t, size_t *),
                       const umbra_array *a, const char *arg, const char *want) {
    char buf[256];
    size_t n = 0;
    OK(f(a, arg, buf, sizeof buf, &n));
    if (strcmp(buf, want) != 0) {
        fprintf(stderr, "got \"%s\", want \"%s\"\n", buf, want);
        exit(1);
    }
    CHECK(n == strlen(want));
}

static void luns_are(const umbra_array *a, const char *want) {
    char buf[256];
    size_t n = 0;
    OK(umbra_lun_list(a, buf, sizeof buf, &n));
    if (strcmp(buf, want) != 0) {
        fprintf(stderr, "LUNs \"%s\", want \"%s\"\n", buf, want);
        exit(1);
    }
}

static void lun_meta_is(const umbra_array *a, const char *lun, const char *key, const char *want) {
    char buf[256];
    size_t n = 0;
    OK(umbra_lun_get_metadata(a, lun, key, buf, sizeof buf, &n));
    CHECK(strcmp(buf, want) == 0);
}

static void freeze_and_thaw(umbra_array *a) {
    const char *both[] = {"a", "b"};
    const char *twice[] = {"a", "a"};
    const char *unknown[] = {"a", "nope"};
    umbra_frozen_luns *f = NULL, *g = NULL;
    CHECK_STATUS(umbra_array_freeze_luns(a, unknown, 2, 60000, &f), UMBRA_E_NOT_FOUND);
    CHECK_STATUS(umbra_array_freeze_luns(a, twice, 2, 60000, &f), UMBRA_E_BAD_STATE);
    CHECK_STATUS(umbra_array_freeze_luns(a, both, 0, 60000, &f), UMBRA_E_INVALID_ARGUMENT);
    CHECK_STATUS(umbra_array_freeze_luns(a, NULL, 2, 60000, &f), UMBRA_E_NULL_POINTER);
    CHECK(f == NULL);
    OK(umbra_array_freeze_luns(a, both, 2, 60000, &f));
    /* "b" is frozen already. */
    CHECK_STATUS(umbra_array_freeze_luns(a, both + 1, 1, 60000, &g), UMBRA_E_BAD_STATE);
    bool expired = true;
    OK(umbra_frozen_luns_thaw(f, &expired));
    CHECK(!expired);
    /* A freeze whose deadline passes: the thaw says so. */
    OK(umbra_array_freeze_luns(a, both, 1, 0, &f));
    OK(umbra_frozen_luns_thaw(f, &expired));
    CHECK(expired);
    CHECK_STATUS(umbra_frozen_luns_thaw(NULL, NULL), UMBRA_E_NULL_POINTER);
    /* Writes flow again. */
    uint8_t block[BS];
    memset(block, 9, sizeof block);
    OK(umbra_lun_write(a, "a", WRITER, 8 * BS, block, sizeof block));
}

static void snapshot_sets(umbra_array *a) {
    const char *sources[] = {"a", "b"};
    const char *names[] = {"a-sh", "b-sh"};
    char set[UMBRA_SET_NAME_MAX];
    char small[8];
    CHECK_STATUS(umbra_array_create_snapshot_set(a, sources, names, 2, NULL, small, sizeof small),
                 UMBRA_E_INVALID_ARGUMENT);
    CHECK_STATUS(umbra_array_create_snapshot_set(a, sources, names, 2, "[1]", set, sizeof set),
                 UMBRA_E_INVALID_ARGUMENT);
    size_t n = 0;
    luns_are(a, "a;b");
    OK(umbra_array_create_snapshot_set(a, sources, names, 2, "{\"vss:set-id\":\"s1\"}", set,
                                 sizeof set));
    CHECK(strncmp(set, "set-", 4) == 0);
    get_string(umbra_array_get_snapshot_set_luns, a, set, "a-sh;b-sh");
    lun_meta_is(a, "a-sh", "vss:set-id", "s1");
    lun_meta_is(a, "b-sh", "umbra:snapshot-set", set);

    /* Masked to no one, then read-only until broken. */
    char mask[64];
    OK(umbra_lun_get_mask(a, "a-sh", mask, sizeof mask, &n));
    CHECK(n == 0);
    OK(umbra_lun_set_mask(a, "a-sh", WRITER));
    uint8_t block[BS], back[BS];
    memset(block, 5, sizeof block);
    CHECK_STATUS(umbra_lun_write(a, "a-sh", WRITER, 0, block, sizeof block), UMBRA_E_ACCESS_DENIED);
    OK(umbra_lun_read(a, "a-sh", WRITER, 0, back, sizeof back));
    CHECK(back[0] == 1);

    /* Break: out of the set, writable, and a swap moves no data. */
    umbra_lun_stats before, after;
    OK(umbra_lun_break_shadow(a, "b-sh"));
    CHECK_STATUS(umbra_lun_break_shadow(a, "b-sh"), UMBRA_E_BAD_STATE);
    CHECK_STATUS(umbra_lun_get_metadata(a, "b-sh", "umbra:snapshot-set", mask, sizeof mask, &n),
                 UMBRA_E_NOT_FOUND);
    get_string(umbra_array_get_snapshot_set_luns, a, set, "a-sh");
    OK(umbra_lun_get_stats(a, "b-sh", &before));
    OK(umbra_lun_swap(a, "b", "b-sh"));
    OK(umbra_lun_get_stats(a, "b-sh", &after));
    CHECK(memcmp(&before, &after, sizeof before) == 0);

    /* The set's delete takes its unbroken LUNs only. */
    OK(umbra_array_delete_snapshot_set(a, set));
    luns_are(a, "a;b;b-sh");
    CHECK_STATUS(umbra_array_delete_snapshot_set(a, set), UMBRA_E_NOT_FOUND);
    get_string(umbra_array_get_snapshot_set_luns, a, set, "");
}

static void metadata(umbra_array *a) {
    OK(umbra_lun_set_metadata(a, "a", "provider", "umbra"));
    OK(umbra_lun_set_metadata(a, "a", "context", "backup;full"));
    get_string(umbra_lun_list_metadata, a, "a", "{\"context\":\"backup;full\",\"provider\":\"umbra\"}");
    OK(umbra_lun_set_metadata(a, "a", "context", NULL));
    get_string(umbra_lun_list_metadata, a, "a", "{\"provider\":\"umbra\"}");
    char buf[8];
    size_t n = 0;
    CHECK_STATUS(umbra_lun_get_metadata(a, "a", "context", buf, sizeof buf, &n), UMBRA_E_NOT_FOUND);
    CHECK_STATUS(umbra_lun_set_metadata(a, "a", "has space", "v"), UMBRA_E_INVALID_ARGUMENT);
    CHECK_STATUS(umbra_lun_set_metadata(a, "nope", "k", "v"), UMBRA_E_NOT_FOUND);

    char list[64];
    OK(umbra_array_list_metadata(a, list, sizeof list, &n));
    CHECK(strcmp(list, "{}") == 0);
    OK(umbra_array_set_metadata(a, "writers", "sql;exchange"));
    OK(umbra_array_get_metadata(a, "writers", list, sizeof list, &n));
    CHECK(strcmp(list, "sql;exchange") == 0 && n == 12);
    /* The size query: (NULL, 0) gives the length. */
    CHECK_STATUS(umbra_array_get_metadata(a, "writers", NULL, 0, &n), UMBRA_E_BUFFER_TOO_SMALL);
    CHECK(n == 12);
    OK(umbra_array_list_metadata(a, list, sizeof list, &n));
    CHECK(strcmp(list, "{\"writers\":\"sql;exchange\"}") == 0);
    OK(umbra_array_set_metadata(a, "writers", NULL));
    CHECK_STATUS(umbra_array_get_metadata(a, "writers", list, sizeof list, &n), UMBRA_E_NOT_FOUND);
}

int main(void) {
    umbra_array *a = NULL;
    OK(umbra_array_open(NULL, &a));
    char mask[128];
    snprintf(mask, sizeof mask, "%s;%s=ro", WRITER, READER);
    OK(umbra_lun_create(a, "a", MiB, mask));
    OK(umbra_lun_create(a, "b", MiB, mask));

    /* Statistics: three blocks in one write and one more reach the LUN's data. */
    umbra_lun_stats s0, s1;
    OK(umbra_lun_get_stats(a, "a", &s0));
    uint8_t three[3 * BS];
    memset(three, 1, sizeof three);
    OK(umbra_lun_write(a, "a", WRITER, 0, three, sizeof three));
    OK(umbra_lun_write(a, "a", WRITER, 4 * BS, three, BS));
    OK(umbra_lun_get_stats(a, "a", &s1));
    CHECK(s1.origin_write_bytes - s0.origin_write_bytes == 4 * BS);
    CHECK(s1.origin_writes - s0.origin_writes == 2);
    CHECK(s1.diff_write_bytes == 0 && s1.snapshots == 0 && s1.size_bytes == MiB);
    CHECK_STATUS(umbra_lun_get_stats(a, "nope", &s1), UMBRA_E_NOT_FOUND);
    CHECK_STATUS(umbra_lun_get_stats(a, "a", NULL), UMBRA_E_NULL_POINTER);

    freeze_and_thaw(a);
    snapshot_sets(a);
    metadata(a);
    umbra_array_free(a);
    printf("protocol: ok\n");
    return 0;
}
