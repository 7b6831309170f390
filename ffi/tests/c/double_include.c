/* The header may be included twice (and after its own guard macro's dependencies): its include
 * guard and the system headers it pulls in must make that harmless. */
#include "umbra.h"
#include "umbra.h"

#include <stdio.h>
#include <string.h>

#include "umbra.h"

#if UMBRA_ABI_MAJOR < 1
#error "UMBRA_ABI_MAJOR must be at least 1"
#endif

int main(void) {
    umbra_status s = UMBRA_OK;
    if (umbra_abi_version() != UMBRA_ABI_VERSION) return 1;
    if (strcmp(umbra_status_name(s), "UMBRA_OK") != 0) return 2;
    printf("double_include: ok (ABI %u.%u)\n", (unsigned)UMBRA_ABI_MAJOR,
           (unsigned)UMBRA_ABI_MINOR);
    return 0;
}
