/* The ABI 1.0 contract (the functions and status codes the C ABI first promised), declared again
 * exactly as first specified. C11 accepts a repeated typedef of the same type and a repeated
 * prototype only if it is compatible, so this file compiles only while the header keeps every one
 * of these signatures. The functions renamed in ABI 1.3 (umbra_volume_size, umbra_host_view) are
 * declared under their 1.0 names: deprecated aliases with the 1.0 signatures. */
#include "umbra.h"

#include <stdio.h>

typedef struct umbra_volume umbra_volume;            /* opaque */
typedef struct umbra_array umbra_array;              /* opaque */
typedef uint32_t umbra_status;                       /* UMBRA_OK = 0; named constants for every error */

uint32_t     umbra_abi_version(void);
const char  *umbra_status_name(umbra_status status);
size_t       umbra_last_error(char *buf, size_t len);

umbra_status umbra_volume_create_mem(uint64_t size_bytes, uint32_t block_size, umbra_volume **out);
umbra_status umbra_volume_create_file(const char *dir, uint64_t size_bytes, uint32_t block_size,
                                      umbra_volume **out);
umbra_status umbra_volume_open_file(const char *dir, umbra_volume **out);
void         umbra_volume_free(umbra_volume *vol);
umbra_status umbra_volume_size(const umbra_volume *vol, uint64_t *out_bytes);
umbra_status umbra_volume_read(umbra_volume *vol, uint64_t offset, uint8_t *buf, size_t len);
umbra_status umbra_volume_write(umbra_volume *vol, uint64_t offset, const uint8_t *buf, size_t len);
umbra_status umbra_volume_flush(umbra_volume *vol);
umbra_status umbra_snapshot_create(umbra_volume *vol, uint64_t *out_snapshot);
umbra_status umbra_snapshot_read(umbra_volume *vol, uint64_t snapshot, uint64_t offset, uint8_t *buf, size_t len);
umbra_status umbra_snapshot_write(umbra_volume *vol, uint64_t snapshot, uint64_t offset, const uint8_t *buf, size_t len);
umbra_status umbra_snapshot_delete(umbra_volume *vol, uint64_t snapshot);
umbra_status umbra_volume_revert(umbra_volume *vol, uint64_t snapshot);

umbra_status umbra_array_open(const char *pool_dir, umbra_array **out);
void         umbra_array_free(umbra_array *array);
umbra_status umbra_lun_create(umbra_array *array, const char *name, uint64_t size_bytes, const char *unmasking_list);
umbra_status umbra_lun_delete(umbra_array *array, const char *name);
umbra_status umbra_lun_set_mask(umbra_array *array, const char *name, const char *unmasking_list);
/* ABI 1.3 made the array of these two queries `const umbra_array *` (docs/abi.md: a call passing
 * `umbra_array *` compiles and links unchanged; a repeated prototype must say const). */
umbra_status umbra_lun_get_mask(const umbra_array *array, const char *name, char *buf, size_t len, size_t *out_len);
umbra_status umbra_lun_is_visible(const umbra_array *array, const char *name, const char *initiator, bool *out_visible);
umbra_status umbra_host_view(umbra_array *array, const char *initiator, char *buf, size_t len, size_t *out_len);
umbra_status umbra_lun_read(umbra_array *array, const char *name, const char *initiator,
                            uint64_t offset, uint8_t *buf, size_t len);
umbra_status umbra_lun_write(umbra_array *array, const char *name, const char *initiator,
                             uint64_t offset, const uint8_t *buf, size_t len);
umbra_status umbra_lun_snapshot(umbra_array *array, const char *source, const char *snapshot_name);

/* Every status name the 1.0 contract requires is a constant. */
static const umbra_status required[] = {
    UMBRA_OK, UMBRA_E_NULL_POINTER, UMBRA_E_INVALID_ARGUMENT, UMBRA_E_OUT_OF_RANGE,
    UMBRA_E_NOT_FOUND, UMBRA_E_ALREADY_EXISTS, UMBRA_E_INVALID_INITIATOR, UMBRA_E_ACCESS_DENIED,
    UMBRA_E_BUFFER_TOO_SMALL, UMBRA_E_IO, UMBRA_E_NO_SPACE, UMBRA_E_BAD_STATE, UMBRA_E_TIMEOUT,
    UMBRA_E_IN_PROGRESS, UMBRA_E_WRITER_FAILED, UMBRA_E_INVALID_DOCUMENT, UMBRA_E_PANIC,
};

int main(void) {
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        const char *name = umbra_status_name(required[i]);
        if (name == NULL || name[0] != 'U') return 1;
    }
    if (UMBRA_OK != 0) return 2;
    printf("contract: ok\n");
    return 0;
}
