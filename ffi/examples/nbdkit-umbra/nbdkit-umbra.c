/* nbdkit-umbra: an nbdkit plugin serving one LUN of an umbra pool, as one initiator, over NBD.
 *
 *   nbdkit ./nbdkit-umbra.so pool=DIR initiator=ID lun=N|NAME
 *
 * Written in C against include/umbra.h alone (libumbra's stable C ABI): the proof that another
 * storage stack embeds libumbra without reading Rust. The LUN is the one initiator ID sees at
 * host LUN number N (or LUN NAME, which ID must see), exactly as a SCSI initiator would address
 * it; masking decides: a LUN masked from ID is refused when nbdkit starts, and read-only access
 * (or an unbroken shadow LUN) is served read-only. nbdkit holds the pool while it runs, so no
 * other process can change a mask, take a shadow or recover meanwhile: the masking is the one of
 * the start, for nbdkit's whole life.
 *
 * Lifecycle: .get_ready opens the pool, resolves the LUN and closes the pool again, so a bad
 * configuration makes nbdkit exit non-zero with the reason before it serves anything; .after_fork
 * opens the pool for serving (nbdkit may have forked into the background in between, and the
 * pool belongs to one process). Every connection opens its own umbra_lun_handle by host LUN
 * number. The handle is thread-safe, so the thread model is PARALLEL; a flush covers every write
 * to the LUN by any handle, so multi-conn is advertised.
 *
 * See README.md beside this file.
 */

#define NBDKIT_API_VERSION 2
#define _GNU_SOURCE /* strdup in strict modes */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nbdkit-plugin.h>

#include "umbra.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

/* The largest read or write served, advertised as the maximum block size: `umbra serve`'s
 * default (docs/nbd.md); nbdkit itself refuses requests over 64 MiB. A larger request is refused
 * with EOVERFLOW (NBD EINVAL unless the client asked DF), as `umbra serve` refuses it. */
#define MAX_REQUEST (32u << 20)

/* Zeros written as data (WRITE_ZEROES with NO_HOLE) go out this many bytes at a time, from
 * zero_chunk: zero-initialized and never written, so every thread reads it without a lock (not
 * const: in .bss rather than 256 KiB of zeros in the plugin's file). */
#define ZERO_CHUNK (256u << 10)
static uint8_t zero_chunk[ZERO_CHUNK];

/* The LUN metadata key naming the snapshot set of a shadow LUN; removed when the shadow is
 * broken. An unbroken shadow is read-only whatever its mask says (docs/abi.md). */
#define SET_KEY "umbra:snapshot-set"

/* Configuration (pool is absolute: nbdkit may change directory when it daemonizes). */
static char *pool_dir;
static char *initiator;
static char *lun_arg;

/* The pool, open from .after_fork until .cleanup. */
static umbra_array *array;

/* One connection. */
struct conn {
  umbra_lun_handle *h;
  uint32_t number;  /* the host LUN number it was opened at */
  char *name;       /* the LUN's name when it was opened */
  bool writable;    /* read-write access and not an unbroken shadow */
};

/* Reports a failed umbra call through nbdkit_error (naming the status and libumbra's message)
 * and returns the errno that NBD carries for it. `write` picks the out-of-range errno: ENOSPC
 * past the end of a write, EINVAL of a read (the NBD protocol's choice). */
static int
report (umbra_status st, bool write, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));

static int
report (umbra_status st, bool write, const char *fmt, ...)
{
  char what[256];
  char msg[512];
  va_list ap;
  int err;

  va_start (ap, fmt);
  vsnprintf (what, sizeof what, fmt, ap);
  va_end (ap);
  umbra_last_error (msg, sizeof msg);
  nbdkit_error ("umbra: %s: %s (%s)", what, umbra_status_name (st), msg);

  switch (st) {
  case UMBRA_E_ACCESS_DENIED:     err = EPERM; break;
  case UMBRA_E_OUT_OF_RANGE:      err = write ? ENOSPC : EINVAL; break;
  case UMBRA_E_NO_SPACE:          err = ENOSPC; break;
  case UMBRA_E_UNSUPPORTED:       err = ENOTSUP; break;
  case UMBRA_E_NULL_POINTER:
  case UMBRA_E_INVALID_ARGUMENT:  err = EINVAL; break;
  case UMBRA_E_BUFFER_TOO_SMALL:  err = ENOMEM; break;
  case UMBRA_E_BUSY:              err = EBUSY; break;
  case UMBRA_E_TIMEOUT:           err = ETIMEDOUT; break;
  default:                        err = EIO; break; /* IO, CORRUPT, BAD_STATE (offline), ... */
  }
  nbdkit_set_error (err);
  return err;
}

static void
umbra_unload (void)
{
  free (pool_dir);
  free (initiator);
  free (lun_arg);
}

static int
set_string (char **slot, const char *key, const char *value)
{
  if (*slot) {
    nbdkit_error ("umbra: %s given twice", key);
    return -1;
  }
  *slot = strdup (value);
  if (*slot == NULL) {
    nbdkit_error ("umbra: strdup: %m");
    return -1;
  }
  return 0;
}

static int
umbra_config (const char *key, const char *value)
{
  if (strcmp (key, "pool") == 0) {
    if (pool_dir) {
      nbdkit_error ("umbra: pool given twice");
      return -1;
    }
    pool_dir = nbdkit_absolute_path (value);
    return pool_dir ? 0 : -1;
  }
  if (strcmp (key, "initiator") == 0)
    return set_string (&initiator, key, value);
  if (strcmp (key, "lun") == 0) {
    if (value[0] == '\0') {
      nbdkit_error ("umbra: lun is empty: give a host LUN number or a LUN name");
      return -1;
    }
    return set_string (&lun_arg, key, value);
  }
  nbdkit_error ("umbra: unknown parameter '%s' (the parameters are pool, initiator and lun)",
                key);
  return -1;
}

static int
umbra_config_complete (void)
{
  uint32_t v = umbra_abi_version ();

  if (pool_dir == NULL || initiator == NULL || lun_arg == NULL) {
    nbdkit_error ("umbra: pool, initiator and lun are all required "
                  "(nbdkit nbdkit-umbra.so pool=DIR initiator=ID lun=N|NAME)");
    return -1;
  }
  if ((v >> 16) != UMBRA_ABI_MAJOR || (v & 0xffff) < UMBRA_ABI_MINOR) {
    nbdkit_error ("umbra: libumbra %s has ABI %" PRIu32 ".%" PRIu32
                  "; this plugin was built for %d.%d or a later minor",
                  umbra_version_string (), v >> 16, v & 0xffff,
                  UMBRA_ABI_MAJOR, UMBRA_ABI_MINOR);
    return -1;
  }
  return 0;
}

#define umbra_config_help \
  "pool=<DIR>        (required) The umbra pool directory.\n" \
  "initiator=<ID>    (required) Serve as this initiator (iqn..., eui..., naa..., WWPN).\n" \
  "lun=<N>|<NAME>    (required) The host LUN number the initiator sees, or a LUN name."

/* True if `s` is a host LUN number, written to *out: a decimal number without sign or leading
 * zeros ("0", "17"), the rule of `umbra serve`'s export names (docs/nbd.md). Anything else
 * ("00", "+1", "007") is a LUN name. */
static bool
parse_number (const char *s, uint32_t *out)
{
  uint64_t n = 0;
  const char *p;

  if (s[0] == '0' && s[1] != '\0')
    return false;
  for (p = s; *p; p++) {
    if (*p < '0' || *p > '9')
      return false;
    n = n * 10 + (uint64_t) (*p - '0');
    if (n > UINT32_MAX)
      return false;
  }
  *out = (uint32_t) n;
  return p != s;
}

/* A string output of libumbra (string-output convention: (NULL, 0) asks the length) into a new
 * buffer, or NULL after reporting. */
typedef umbra_status (*string_fn) (const umbra_array *, const char *, char *, size_t, size_t *);

static char *
get_string (string_fn fn, const char *arg, const char *what)
{
  size_t n = 0;
  char *buf;
  umbra_status st;

  for (;;) {
    st = fn (array, arg, NULL, 0, &n);
    if (st != UMBRA_OK && st != UMBRA_E_BUFFER_TOO_SMALL) {
      report (st, false, "%s", what);
      return NULL;
    }
    buf = malloc (n + 1);
    if (buf == NULL) {
      nbdkit_error ("umbra: malloc: %m");
      return NULL;
    }
    st = fn (array, arg, buf, n + 1, &n);
    if (st == UMBRA_OK)
      return buf;
    free (buf);
    if (st != UMBRA_E_BUFFER_TOO_SMALL) { /* else it grew meanwhile: again */
      report (st, false, "%s", what);
      return NULL;
    }
  }
}

/* Resolves lun_arg for the initiator against the pool's masking of this moment: the host LUN
 * number, the LUN's name (new string) and whether the initiator may write to it. Reports and
 * returns -1 when the initiator sees no such LUN. */
static int
resolve (uint32_t *out_number, char **out_name, bool *out_writable)
{
  uint32_t access = UMBRA_ACCESS_NONE, number = UMBRA_NO_LUN_NUMBER, want;
  char *name = NULL, *names, *tok, *save = NULL;
  char set[UMBRA_SET_NAME_MAX + 64];
  size_t set_len = 0;
  umbra_status st;

  if (parse_number (lun_arg, &want)) {
    /* By number: the LUN among those the initiator sees that it sees at that number. */
    names = get_string (umbra_initiator_get_luns, initiator, "listing the initiator's LUNs");
    if (names == NULL)
      return -1;
    for (tok = strtok_r (names, ";", &save); tok; tok = strtok_r (NULL, ";", &save)) {
      st = umbra_lun_get_access (array, tok, initiator, &access, &number);
      if (st != UMBRA_OK) {
        report (st, false, "access of LUN '%s' for initiator %s", tok, initiator);
        free (names);
        return -1;
      }
      if (number == want) {
        name = strdup (tok);
        break;
      }
    }
    free (names);
    if (name == NULL) {
      nbdkit_error ("umbra: initiator %s sees no LUN at host LUN number %" PRIu32
                    " in pool %s (masked from it, or none there)",
                    initiator, want, pool_dir);
      return -1;
    }
  }
  else {
    st = umbra_lun_get_access (array, lun_arg, initiator, &access, &number);
    if (st != UMBRA_OK) {
      report (st, false, "LUN '%s' in pool %s for initiator %s", lun_arg, pool_dir,
              initiator);
      return -1;
    }
    if (access == UMBRA_ACCESS_NONE || number == UMBRA_NO_LUN_NUMBER) {
      nbdkit_error ("umbra: LUN '%s' is masked from initiator %s "
                    "(its mask does not name it)", lun_arg, initiator);
      return -1;
    }
    name = strdup (lun_arg);
  }
  if (name == NULL) {
    nbdkit_error ("umbra: strdup: %m");
    return -1;
  }

  /* An unbroken shadow LUN of a snapshot set is read-only whatever its mask says. */
  st = umbra_lun_get_metadata (array, name, SET_KEY, set, sizeof set, &set_len);
  if (st != UMBRA_OK && st != UMBRA_E_NOT_FOUND && st != UMBRA_E_BUFFER_TOO_SMALL) {
    report (st, false, "metadata of LUN '%s'", name);
    free (name);
    return -1;
  }
  *out_number = number;
  *out_name = name;
  *out_writable = access == UMBRA_ACCESS_READ_WRITE && st == UMBRA_E_NOT_FOUND;
  return 0;
}

static umbra_status
open_pool (void)
{
  umbra_status st = umbra_array_open_existing (pool_dir, &array);
  if (st != UMBRA_OK)
    report (st, false, "opening pool %s", pool_dir);
  return st;
}

/* Checks the configuration against the pool before nbdkit serves: a pool that does not open, or
 * a LUN the initiator does not see, makes nbdkit exit with the reason. The pool is closed again:
 * .after_fork opens it in the process that serves. */
static int
umbra_get_ready (void)
{
  uint32_t number;
  char *name;
  bool writable;
  umbra_lun_handle *h = NULL;
  umbra_status st;
  int r = -1;

  if (open_pool () != UMBRA_OK)
    return -1;
  if (resolve (&number, &name, &writable) == 0) {
    st = umbra_lun_handle_open (array, initiator, number, &h);
    if (st != UMBRA_OK)
      report (st, false, "opening LUN '%s' at host LUN number %" PRIu32 " as %s",
              name, number, initiator);
    else {
      nbdkit_debug ("umbra: serving LUN '%s' (host LUN number %" PRIu32 ", %s) of %s as %s",
                    name, number, writable ? "read-write" : "read-only", pool_dir, initiator);
      r = 0;
    }
    umbra_lun_handle_close (h);
    free (name);
  }
  umbra_array_free (array);
  array = NULL;
  return r;
}

static int
umbra_after_fork (void)
{
  return open_pool () == UMBRA_OK ? 0 : -1;
}

static void
umbra_cleanup (void)
{
  umbra_array_free (array); /* flushes and releases the pool */
  array = NULL;
}

static void *
umbra_open (int readonly)
{
  struct conn *c;
  umbra_status st;

  (void) readonly; /* nbdkit itself refuses writes under -r */
  c = calloc (1, sizeof *c);
  if (c == NULL) {
    nbdkit_error ("umbra: calloc: %m");
    return NULL;
  }
  if (resolve (&c->number, &c->name, &c->writable) == -1) {
    free (c);
    return NULL;
  }
  st = umbra_lun_handle_open (array, initiator, c->number, &c->h);
  if (st != UMBRA_OK) {
    report (st, false, "opening LUN '%s' at host LUN number %" PRIu32 " as %s",
            c->name, c->number, initiator);
    free (c->name);
    free (c);
    return NULL;
  }
  return c;
}

static void
umbra_close (void *handle)
{
  struct conn *c = handle;

  umbra_lun_handle_close (c->h);
  free (c->name);
  free (c);
}

static const char *
umbra_export_description (void *handle)
{
  struct conn *c = handle;
  return nbdkit_strdup_intern (c->name);
}

static int64_t
umbra_get_size (void *handle)
{
  struct conn *c = handle;
  uint64_t size = 0;
  umbra_status st = umbra_lun_handle_get_size (c->h, &size);

  if (st != UMBRA_OK) {
    report (st, false, "size of LUN '%s'", c->name);
    return -1;
  }
  return (int64_t) size;
}

static int
umbra_block_size (void *handle, uint32_t *minimum, uint32_t *preferred, uint32_t *maximum)
{
  uint32_t bs = 4096;

  (void) handle;
  /* The pool's block size as preferred (4096 unless the pool was made otherwise). */
  if (umbra_array_get_block_size (array, &bs) != UMBRA_OK || bs == 0)
    bs = 4096;
  *minimum = 1;
  *preferred = bs;
  *maximum = MAX_REQUEST;
  return 0;
}

static int
umbra_can_write (void *handle)
{
  struct conn *c = handle;
  return c->writable;
}

static int
umbra_can_one (void *handle)
{
  (void) handle;
  return 1;
}

static int
umbra_can_fua (void *handle)
{
  (void) handle;
  return NBDKIT_FUA_NATIVE;
}

/* Refuses a read or write larger than the advertised maximum block size (EOVERFLOW), as
 * `umbra serve` does: a client honouring the advertised maximum never sends one. */
static int
too_large (const struct conn *c, const char *what, uint32_t count, uint64_t offset)
{
  if (count <= MAX_REQUEST)
    return 0;
  nbdkit_error ("umbra: %s of %" PRIu32 " bytes at %" PRIu64 " of LUN '%s' is larger than "
                "the maximum block size %u", what, count, offset, c->name, MAX_REQUEST);
  nbdkit_set_error (EOVERFLOW);
  return -1;
}

static int
umbra_pread (void *handle, void *buf, uint32_t count, uint64_t offset, uint32_t flags)
{
  struct conn *c = handle;
  umbra_status st;

  (void) flags;
  if (too_large (c, "read", count, offset) == -1)
    return -1;
  st = umbra_lun_handle_read (c->h, offset, buf, count);
  if (st != UMBRA_OK) {
    report (st, false, "read of %" PRIu32 " bytes at %" PRIu64 " of LUN '%s'",
            count, offset, c->name);
    return -1;
  }
  return 0;
}

static int
umbra_pwrite (void *handle, const void *buf, uint32_t count, uint64_t offset, uint32_t flags)
{
  struct conn *c = handle;
  umbra_status st;

  if (too_large (c, "write", count, offset) == -1)
    return -1;
  st = (flags & NBDKIT_FLAG_FUA)
    ? umbra_lun_handle_write_fua (c->h, offset, buf, count)
    : umbra_lun_handle_write (c->h, offset, buf, count);
  if (st != UMBRA_OK) {
    report (st, true, "write%s of %" PRIu32 " bytes at %" PRIu64 " of LUN '%s'",
            (flags & NBDKIT_FLAG_FUA) ? " (FUA)" : "", count, offset, c->name);
    return -1;
  }
  return 0;
}

static int
umbra_flush (void *handle, uint32_t flags)
{
  struct conn *c = handle;
  umbra_status st = umbra_lun_handle_flush (c->h);

  (void) flags;
  if (st != UMBRA_OK) {
    report (st, false, "flush of LUN '%s'", c->name);
    return -1;
  }
  return 0;
}

/* Trim, and zero allowing holes: the range reads as zeros afterwards. libumbra zeroes by releasing
 * the range (as a discard), never by writing: always fast, so NBDKIT_FLAG_FAST_ZERO is satisfied.
 * Both are durable after the next flush: with FUA, flush before answering. */
static int
release (struct conn *c, uint32_t count, uint64_t offset, uint32_t flags, bool zero)
{
  umbra_status st = zero
    ? umbra_lun_handle_write_zeroes (c->h, offset, count)
    : umbra_lun_handle_discard (c->h, offset, count);

  if (st == UMBRA_OK && (flags & NBDKIT_FLAG_FUA))
    st = umbra_lun_handle_flush (c->h);
  if (st != UMBRA_OK) {
    report (st, true, "%s of %" PRIu32 " bytes at %" PRIu64 " of LUN '%s'",
            zero ? "write-zeroes" : "trim", count, offset, c->name);
    return -1;
  }
  return 0;
}

/* Zero without holes (the client's NBD_CMD_FLAG_NO_HOLE: no NBDKIT_FLAG_MAY_TRIM): the range is
 * provisioned, so zeros are written as data, ZERO_CHUNK bytes at a time. The whole range is
 * checked first, so a range past the end writes nothing. */
static int
write_zero_data (struct conn *c, uint32_t count, uint64_t offset, uint32_t flags)
{
  uint64_t size = 0, at = offset, end = offset + count;
  umbra_status st = umbra_lun_handle_get_size (c->h, &size);

  if (st == UMBRA_OK && end > size) {
    nbdkit_error ("umbra: write-zeroes of %" PRIu32 " bytes at %" PRIu64 " of LUN '%s' is "
                  "past its end (%" PRIu64 " bytes)", count, offset, c->name, size);
    nbdkit_set_error (ENOSPC);
    return -1;
  }
  while (st == UMBRA_OK && at < end) {
    uint64_t n = end - at < ZERO_CHUNK ? end - at : ZERO_CHUNK;
    st = umbra_lun_handle_write (c->h, at, zero_chunk, (size_t) n);
    if (st == UMBRA_OK)
      at += n;
  }
  if (st == UMBRA_OK && (flags & NBDKIT_FLAG_FUA))
    st = umbra_lun_handle_flush (c->h);
  if (st != UMBRA_OK) {
    report (st, true, "write-zeroes without holes of %" PRIu32 " bytes at %" PRIu64
            " of LUN '%s' (at %" PRIu64 ")", count, offset, c->name, at);
    return -1;
  }
  return 0;
}

static int
umbra_trim (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  return release (handle, count, offset, flags, false);
}

/* Zero, as `umbra serve` answers WRITE_ZEROES (docs/nbd.md): with MAY_TRIM the range is released
 * (fast); without it (NO_HOLE) zeros are written as data, which is not fast, so with FAST_ZERO
 * too it fails at once with ENOTSUP and writes nothing (the client zeroes another way). */
static int
umbra_zero (void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
  if (flags & NBDKIT_FLAG_MAY_TRIM)
    return release (handle, count, offset, flags, true);
  if (flags & NBDKIT_FLAG_FAST_ZERO) {
    nbdkit_debug ("umbra: write-zeroes without holes is not fast: ENOTSUP");
    nbdkit_set_error (ENOTSUP);
    return -1;
  }
  return write_zero_data (handle, count, offset, flags);
}

/* Block status: libumbra lists the extents that may hold data; everything else is a hole that
 * reads as zeros. */
static int
umbra_extents (void *handle, uint32_t count, uint64_t offset, uint32_t flags,
               struct nbdkit_extents *out)
{
  struct conn *c = handle;
  umbra_extent small[64];
  umbra_extent *ext = small;
  size_t cap = sizeof small / sizeof small[0], n = 0, i;
  uint64_t pos = offset, end = offset + count;
  bool one = flags & NBDKIT_FLAG_REQ_ONE;
  umbra_status st;
  int r = -1;

  for (;;) {
    st = umbra_lun_handle_get_allocation (c->h, offset, count, ext, cap, &n);
    if (st != UMBRA_E_BUFFER_TOO_SMALL)
      break;
    if (ext != small)
      free (ext);
    cap = n + 16; /* room for the list growing meanwhile */
    ext = malloc (cap * sizeof *ext);
    if (ext == NULL) {
      nbdkit_error ("umbra: malloc: %m");
      nbdkit_set_error (ENOMEM);
      return -1;
    }
  }
  if (st != UMBRA_OK) {
    report (st, false, "allocation of %" PRIu32 " bytes at %" PRIu64 " of LUN '%s'",
            count, offset, c->name);
    goto out;
  }
  /* Under REQ_ONE the first extent is enough. */
  for (i = 0; i < n; i++) {
    if (ext[i].offset > pos) {
      if (nbdkit_add_extent (out, pos, ext[i].offset - pos,
                             NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO) == -1)
        goto out;
      pos = ext[i].offset;
      if (one)
        goto done;
    }
    if (nbdkit_add_extent (out, ext[i].offset, ext[i].length, 0) == -1)
      goto out;
    pos = ext[i].offset + ext[i].length;
    if (one)
      goto done;
  }
  if (pos < end &&
      nbdkit_add_extent (out, pos, end - pos, NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO) == -1)
    goto out;
 done:
  r = 0;
 out:
  if (ext != small)
    free (ext);
  return r;
}

static struct nbdkit_plugin plugin = {
  .name               = "umbra",
  .longname           = "umbra: a LUN of an umbra pool, as one initiator sees it",
  .version            = "1.0",
  .description        = "Serves one LUN of an umbra pool (libumbra) as one initiator.",
  .unload             = umbra_unload,
  .config             = umbra_config,
  .config_complete    = umbra_config_complete,
  .config_help        = umbra_config_help,
  .magic_config_key   = "lun",
  .get_ready          = umbra_get_ready,
  .after_fork         = umbra_after_fork,
  .cleanup            = umbra_cleanup,
  .open               = umbra_open,
  .close              = umbra_close,
  .export_description = umbra_export_description,
  .get_size           = umbra_get_size,
  .block_size         = umbra_block_size,
  .can_write          = umbra_can_write,
  .can_flush          = umbra_can_one,
  .can_trim           = umbra_can_one,
  .can_zero           = umbra_can_one,
  .can_fast_zero      = umbra_can_one,
  .can_fua            = umbra_can_fua,
  .can_multi_conn     = umbra_can_one,
  .pread              = umbra_pread,
  .pwrite             = umbra_pwrite,
  .flush              = umbra_flush,
  .trim               = umbra_trim,
  .zero               = umbra_zero,
  .extents            = umbra_extents,
  .errno_is_preserved = 0,
};

NBDKIT_REGISTER_PLUGIN (plugin)
