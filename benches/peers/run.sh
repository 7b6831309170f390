#!/usr/bin/env bash
# The peer benchmark (issue 14): fio's nbd engine against umbra and against the NBD servers people
# use for the same job, under the same conditions, in one run.
#
#   benches/peers/run.sh            # builds what it needs (release), runs, writes results/
#
# Conditions, the same for every case: a 1 GiB random base file on the filesystem of the work
# directory, a unix socket, 4 KiB I/Os, the same fixed number of I/Os per run (fio --number_ios,
# same random sequence), every (case, workload) three times in one run, interleaved (repetition,
# then workload, then case), medians reported. Workloads:
#   randwrite-qd1, randwrite-qd32   random writes right after a snapshot (a fresh snapshot, overlay
#                                   or cow layer per run: every write is a first write after it)
#   randread-qd1, randread-qd32     random reads of a snapshot
# Cases:
#   umbra-serve       `umbra serve`, a persistent LUN imported from the base (snapshot LUN taken
#                     before each write run, deleted after it; reads: a snapshot LUN)
#   umbra-volatile    `umbra serve` over a volatile LUN (no metadata journal) filled with the base:
#                     a volatile LUN has no snapshot LUN, so each run (writes and reads) is fio
#                     run by an `exec` line of a DiskShadow script (`umbra exec`, through the
#                     server's control socket) right after the script's `create` took a volatile
#                     software shadow of the LUN (an engine snapshot in the server: every write is
#                     a first write after it, its old block preserved in the diff area); the
#                     shadow is released when the script ends
#   umbra-nbdkit      nbdkit with ffi/examples/nbdkit-umbra over the same persistent LUN
#   qcow2-overlay     qemu-nbd over a new qcow2 overlay on the raw base (--cache=none --aio=native)
#   nbdkit-cow        nbdkit's cow filter over the base (cow-block-size=4096)
#   raw               qemu-nbd over the raw base (--cache=none --aio=native; writes in place: the
#                     ceiling, no snapshot)
# A case whose server is missing is reported as missing, never silently left out.
#
# Environment: UMBRA_PEERS_IOS (I/Os per run, default 20000), UMBRA_PEERS_WORK (scratch, default
# target/peers: 1 GiB base + a 2 GiB pool + overlays), UMBRA_PEERS_OUT (default
# benches/peers/results), UMBRA_PEERS_CASES and UMBRA_PEERS_WORKLOADS (space-separated subsets),
# UMBRA_PEERS_REPS (repetitions, default 3), UMBRA_PEERS_NO_BUILD=1 (use target/release as it
# is). Needs fio (nbd engine), qemu-img, qemu-nbd, nbdcopy, nbdkit with the cow
# filter and plugin headers, nbdinfo, python3, cc, make, pkg-config.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/benches/peers
WORK=${UMBRA_PEERS_WORK:-$ROOT/target/peers}
OUT=${UMBRA_PEERS_OUT:-$HERE/results}
IOS=${UMBRA_PEERS_IOS:-20000}
REPS=${UMBRA_PEERS_REPS:-3}
CASES=${UMBRA_PEERS_CASES:-"umbra-serve umbra-volatile umbra-nbdkit qcow2-overlay nbdkit-cow raw"}
WORKLOADS=${UMBRA_PEERS_WORKLOADS:-"randwrite-qd1 randwrite-qd32 randread-qd1 randread-qd32"}
INITIATOR=iqn.2026-12.org.umbra.bench:fio
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
UMBRA=$TARGET_DIR/release/umbra
BASE=$WORK/base.raw
SOCK=$WORK/nbd.sock

say() { printf '%s\n' "$*" >&2; }
die() { say "run.sh: $*"; exit 1; }

for tool in fio qemu-img qemu-nbd nbdkit nbdinfo nbdcopy python3 make pkg-config cc; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install fio qemu-utils nbdkit nbdkit-plugin-dev libnbd-bin python3 make pkg-config gcc)"
done
fio --enghelp=nbd >/dev/null 2>&1 || die "this fio has no nbd engine"

mkdir -p "$WORK" "$OUT"
WORK=$(cd "$WORK" && pwd)

# --- build: the umbra CLI and libumbra in release, the plugin against an installed libumbra ---
WANT_UMBRA=0
[[ " $CASES " == *" umbra-"* ]] && WANT_UMBRA=1
HAVE_SERVE=0
HAVE_VOLATILE=0
if [ "$WANT_UMBRA" = 1 ]; then
if [ -z "${UMBRA_PEERS_NO_BUILD:-}" ]; then
  (cd "$ROOT" && cargo build --release -p umbra-ffi -p umbra)
fi
[ -x "$UMBRA" ] || die "$UMBRA is not built"
rm -rf "$WORK/prefix"
make -s -C "$ROOT" install PREFIX="$WORK/prefix" PREBUILT="$TARGET_DIR/release" >/dev/null
PKG_CONFIG_PATH=$WORK/prefix/lib/pkgconfig make -s -C "$ROOT/ffi/examples/nbdkit-umbra" \
  OUT="$WORK" RPATH=1 >/dev/null 2>&1
PLUGIN=$WORK/nbdkit-umbra.so
"$UMBRA" serve --help >/dev/null 2>&1 && HAVE_SERVE=1
"$UMBRA" lun create --help 2>/dev/null | grep -q -- '--volatile' && HAVE_VOLATILE=1
fi

# --- the base and the pool ---
say "base: 1 GiB of random bytes in $BASE"
rm -f "$BASE"
head -c 1G /dev/urandom >"$BASE"
sync "$BASE"
POOL=$WORK/pool
rm -rf "$POOL"
if [ "$WANT_UMBRA" = 1 ]; then
say "pool: importing the base as LUN data (and filling data-v, volatile, with it when offered)"
"$UMBRA" --pool "$POOL" lun import data "$BASE" >/dev/null 2>&1
"$UMBRA" --pool "$POOL" lun unmask data "$INITIATOR" >/dev/null
"$UMBRA" --pool "$POOL" lun snapshot data read-snap >/dev/null
"$UMBRA" --pool "$POOL" lun unmask read-snap "$INITIATOR" >/dev/null
if [ "$HAVE_VOLATILE" = 1 ]; then
  # A volatile LUN (no journal): imported so when the import offers it, else created empty and
  # filled with the base through the pool.
  if "$UMBRA" lun import --help 2>/dev/null | grep -q -- '--volatile'; then
    "$UMBRA" --pool "$POOL" lun import data-v "$BASE" --volatile >/dev/null 2>&1
    "$UMBRA" --pool "$POOL" lun unmask data-v "$INITIATOR" >/dev/null
  else
    "$UMBRA" --pool "$POOL" lun create data-v 1GiB --volatile --unmask "$INITIATOR" >/dev/null
    "$UMBRA" --pool "$POOL" lun write data-v --in "$BASE" --as "$INITIATOR" >/dev/null
  fi
fi
fi
lun_number() { # the host LUN number INITIATOR sees LUN $1 at
  "$UMBRA" --pool "$POOL" --json lun detail "$1" | python3 -c '
import json, sys
hosts = json.load(sys.stdin)["lun"]["unmasked"]["hosts"]
print([h["number"] for h in hosts if h["initiator"] == sys.argv[1]][0])' "$INITIATOR"
}

# --- servers: start one, wait until it listens, stop it ---
SERVER_PID=
wait_listening() { # $1: what; waits (bounded) until the socket answers
  local i
  for i in $(seq 1 600); do
    if [ -S "$SOCK" ] && nbdinfo --size "nbd+unix:///${EXPORT:-}?socket=$SOCK" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.05
  done
  die "$1 did not listen on $SOCK within 30 s"
}
stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill "$SERVER_PID" 2>/dev/null || true
  local i
  for i in $(seq 1 600); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.05
  done
  kill -0 "$SERVER_PID" 2>/dev/null && die "server $SERVER_PID did not stop"
  SERVER_PID=
  rm -f "$SOCK"
}
trap 'stop_server' EXIT

start_qemu_nbd() { # $1 format, $2 file
  rm -f "$SOCK" "$WORK/server.pid"
  qemu-nbd --fork --pid-file="$WORK/server.pid" --socket="$SOCK" --format="$1" \
    --cache=none --aio=native --shared=8 --persistent "$2"
  SERVER_PID=$(cat "$WORK/server.pid")
  EXPORT=
  wait_listening qemu-nbd
}
start_nbdkit() { # nbdkit arguments after the socket
  rm -f "$SOCK" "$WORK/server.pid"
  nbdkit --unix "$SOCK" --pidfile "$WORK/server.pid" "$@"
  local i
  for i in $(seq 1 600); do [ -s "$WORK/server.pid" ] && break; sleep 0.05; done
  SERVER_PID=$(cat "$WORK/server.pid")
  EXPORT=
  wait_listening nbdkit
}
start_umbra_serve() { # $1: the LUN to export (its host LUN number is the export name)
  rm -f "$SOCK" "$WORK/ready"
  "$UMBRA" --pool "$POOL" serve --listen "unix:$SOCK" --as "$INITIATOR" \
    --ready-file "$WORK/ready" >"$WORK/serve.log" 2>&1 &
  SERVER_PID=$!
  EXPORT=${NUMBERS[$1]}
  wait_listening "umbra serve"
}
declare -A NUMBERS

# The LUN a case writes to / reads, and its server.
# (umbra-volatile reads and writes data-v under a shadow: see run_case.)
write_lun() { case $1 in umbra-volatile) echo data-v ;; *) echo data ;; esac; }
read_lun() { case $1 in umbra-volatile) echo data-v ;; *) echo read-snap ;; esac; }

available() { # $1 case: 0 if it can run
  case $1 in
    umbra-serve) [ "$HAVE_SERVE" = 1 ] ;;
    umbra-volatile) [ "$HAVE_SERVE" = 1 ] && [ "$HAVE_VOLATILE" = 1 ] ;;
    *) return 0 ;;
  esac
}

# Prepares case $1 for workload $2 (a fresh snapshot for writes) and starts its server.
setup_case() {
  local c=$1 w=$2 lun
  case $c in
    umbra-volatile)
      # The shadow is taken by run_case's script, inside the served pool.
      start_umbra_serve data-v
      ;;
    umbra-serve | umbra-nbdkit)
      if [[ $w == randwrite-* ]]; then
        lun=$(write_lun "$c")
        "$UMBRA" --pool "$POOL" lun snapshot "$lun" "snap-$c" >/dev/null
      else
        lun=$(read_lun "$c")
      fi
      if [ "$c" = umbra-nbdkit ]; then
        start_nbdkit "$PLUGIN" pool="$POOL" initiator="$INITIATOR" lun="$lun"
      else
        start_umbra_serve "$lun"
      fi
      ;;
    qcow2-overlay)
      rm -f "$WORK/overlay.qcow2"
      qemu-img create -q -f qcow2 -b "$BASE" -F raw "$WORK/overlay.qcow2"
      start_qemu_nbd qcow2 "$WORK/overlay.qcow2"
      ;;
    nbdkit-cow)
      start_nbdkit --filter=cow file "$BASE" cow-block-size=4096
      ;;
    raw)
      start_qemu_nbd raw "$BASE"
      ;;
  esac
}
teardown_case() {
  local c=$1 w=$2
  stop_server
  case $c in
    umbra-serve | umbra-nbdkit)
      if [[ $w == randwrite-* ]]; then
        "$UMBRA" --pool "$POOL" lun delete "snap-$c" >/dev/null
      fi
      ;;
    qcow2-overlay) rm -f "$WORK/overlay.qcow2" ;;
  esac
}

fio_command() { # $1 workload, $2 json output: the fio command line, one shell word each
  local rw qd
  rw=${1%-qd*}
  qd=${1#*-qd}
  printf '%q ' fio --name=peer --ioengine=nbd --uri="nbd+unix:///${EXPORT}?socket=$SOCK" \
    --rw="$rw" --bs=4k --iodepth="$qd" --size=1g --number_ios="$IOS" \
    --randrepeat=1 --norandommap --output-format=json --output="$2"
}
run_case() { # $1 case, $2 workload, $3 json output: runs fio against the started server
  local c=$1 w=$2 json=$3
  rm -f "$json"
  if [ "$c" = umbra-volatile ]; then
    # A volatile software shadow of data-v (an engine snapshot, released when the script
    # ends), then fio, from one DiskShadow script the server runs (the pool is served).
    printf '#!/bin/sh\nexec %s >/dev/null\n' "$(fio_command "$w" "$json")" >"$WORK/fio-run.sh"
    chmod +x "$WORK/fio-run.sh"
    printf '%s\n' 'set context volatile nowriters' 'add volume data-v provider software' \
      create "exec $WORK/fio-run.sh" >"$WORK/volatile.dsh"
    "$UMBRA" --pool "$POOL" exec "$WORK/volatile.dsh" >"$WORK/exec.log" 2>&1 ||
      die "umbra exec of the volatile case failed: $(cat "$WORK/exec.log")"
    # The shadow went with the script: nothing is left standing on the LUN.
    if "$UMBRA" --pool "$POOL" --json shadow list | grep -q data-v; then
      die "the volatile case's shadow outlived its script"
    fi
  else
    eval "$(fio_command "$w" "$json")" >/dev/null
  fi
  [ -s "$json" ] || die "fio wrote no results for $c $w"
}

# Host LUN numbers, read once while no server owns the pool.
for lun in data read-snap data-v; do
  [ "$WANT_UMBRA" = 1 ] || break
  "$UMBRA" --pool "$POOL" lun detail "$lun" >/dev/null 2>&1 || continue
  NUMBERS[$lun]=$(lun_number "$lun")
done

# The page cache as the umbra cases find it. Filling a LUN writes large pieces, which leave its
# files in the page cache in large folios (ext4 since Linux 6.16), and every later 4 KiB write
# into a large folio walks all of it: 70% of `umbra serve`'s CPU under random writes, a cost of
# how the LUN was filled (the peers never write their base). So the LUN files are synced and
# evicted, then read once through `umbra serve` (not timed; its files are advised random access,
# so the reads bring the blocks in as 4 KiB folios): every case starts with its data in the page
# cache (the base file is there since it was written).
if [ "$WANT_UMBRA" = 1 ] && [ "$HAVE_SERVE" = 1 ]; then
  say "page cache: the pool's LUN files evicted, then read once through umbra serve"
  python3 - "$POOL"/luns/*/origin.img <<'EOF'
import os, sys
for p in sys.argv[1:]:
    fd = os.open(p, os.O_RDONLY)
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
EOF
  for lun in data data-v; do
    [ -n "${NUMBERS[$lun]:-}" ] || continue
    start_umbra_serve "$lun"
    nbdcopy "nbd+unix:///${EXPORT}?socket=$SOCK" null:
    stop_server
  done
fi

STAMP=$(date -u +%Y-%m-%dT%H:%MZ)
CSV=$OUT/peers.csv
echo "case,workload,rep,iops,mean_lat_us" >"$CSV"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
say "run $STAMP: $IOS I/Os per run, $REPS repetitions, load $LOAD_START"
for rep in $(seq 1 $REPS); do
  for w in $WORKLOADS; do
    for c in $CASES; do
      if ! available "$c"; then
        echo "$c,$w,$rep,missing," >>"$CSV"
        continue
      fi
      setup_case "$c" "$w"
      json=$WORK/fio-$c-$w-$rep.json
      run_case "$c" "$w" "$json"
      teardown_case "$c" "$w"
      line=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))["jobs"][0]
side = d["write"] if sys.argv[2].startswith("randwrite") else d["read"]
print("%.0f,%.1f" % (side["iops"], side["lat_ns"]["mean"] / 1000))' "$json" "$w")
      echo "$c,$w,$rep,$line" >>"$CSV"
      say "  rep $rep $w $c: ${line%%,*} IOPS"
    done
  done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

python3 "$HERE/summarize.py" "$CSV" "$OUT" \
  --stamp "$STAMP" --ios "$IOS" --reps "$REPS" --load "$LOAD_START -> $LOAD_END" \
  --versions "$(fio --version); $(qemu-nbd --version | head -1); $(nbdkit --version)"
if command -v rsvg-convert >/dev/null; then
  rsvg-convert "$OUT/peers.svg" -o "$OUT/peers.png" # librsvg2-bin: a PNG beside the SVG
fi
say "results: $OUT/summary.md, $OUT/peers.svg, $CSV"
cat "$OUT/summary.md"
