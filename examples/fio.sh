#!/usr/bin/env bash
# fio on a tandem volume beside a native directory of the same disk, in the same run, with
# the jobs of the database-speed table: psync, --refill_buffers (fresh random data for every
# write, so nothing deduplicates or compresses).
#
#   cargo build --release && examples/fio.sh [--size-mib 1024] [--seconds 15]
#       [--block-sizes 131072,16384] [--dir DIR] [--passthrough auto|on|off]
#
# Rows: 4 KiB random write with fsync every 32, 1 MiB sequential write + fsync, 1 MiB
# sequential read (cold: page caches dropped), 4 KiB random read (cold). Each row prints
# native, then the FUSE passthrough (examples/passthrough: the same disk behind a minimal
# FUSE filesystem with tandem's mount options, i.e. what the FUSE round trips alone allow;
# auto = when built), then each tandem block size, each with its ratio to native. Needs root
# (mounts, drop_caches) and fio.
set -euo pipefail
size=1024 seconds=15 sizes=131072,16384 dir=${TMPDIR:-/tmp} passthrough=auto
while [ $# -gt 0 ]; do
  case "$1" in
    --size-mib) size=$2 ;;
    --seconds) seconds=$2 ;;
    --block-sizes) sizes=$2 ;;
    --dir) dir=$2 ;;
    --passthrough) passthrough=$2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift 2
done
root=$(cd "$(dirname "$0")/.." && pwd)
tandem=$root/target/release/tandem
[ -x "$tandem" ] || { echo "$tandem is missing: run cargo build --release first" >&2; exit 1; }
command -v fio >/dev/null || { echo "fio is missing (apt-get install fio)" >&2; exit 1; }
passthru_bin=$root/target/release/examples/passthrough
case "$passthrough" in
  auto) [ -x "$passthru_bin" ] && passthrough=on || passthrough=off ;;
  on) [ -x "$passthru_bin" ] || { echo "$passthru_bin is missing: run cargo build --release --example passthrough first" >&2; exit 1; } ;;
  off) ;;
  *) echo "--passthrough takes auto, on or off, not $passthrough" >&2; exit 2 ;;
esac
base=$(mktemp -d "$dir/fio.XXXXXX")
pool=$base/pool
T() { "$tandem" --pool "$pool" "$@"; }
passthru_pid=""
cleanup() {
  if [ -n "$passthru_pid" ]; then
    kill "$passthru_pid" 2>/dev/null || true
    wait "$passthru_pid" 2>/dev/null || true
  fi
  mountpoint -q "$base/pt" 2>/dev/null && umount -l "$base/pt" 2>/dev/null || true
  T shutdown >/dev/null 2>&1 || true
  rm -rf "$base"
}
trap cleanup EXIT
cold() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# fio JOB DIR: prints the job's figure (IOPS or MiB/s).
run() {
  local job=$1 d=$2 out
  local common=(--name=bench --directory="$d" --ioengine=psync --refill_buffers
    --output-format=json --filename=bench.dat)
  case $job in
    randwrite) out=$(fio "${common[@]}" --rw=randwrite --bs=4k --size="${size}m" --fsync=32 \
      --runtime="$seconds" --time_based) ;;
    seqwrite) rm -f "$d/bench.dat"
      out=$(fio "${common[@]}" --rw=write --bs=1m --size="${size}m" --end_fsync=1) ;;
    seqread) cold; out=$(fio "${common[@]}" --rw=read --bs=1m --size="${size}m") ;;
    randread) cold; out=$(fio "${common[@]}" --rw=randread --bs=4k --size="${size}m" \
      --runtime="$seconds" --time_based) ;;
  esac
  python3 -c '
import json, sys
j = json.loads(sys.stdin.read())["jobs"][0]
kind = sys.argv[1]
side = j["write"] if "write" in kind else j["read"]
print(round(side["iops"]) if kind.startswith("rand") else round(side["bw_bytes"] / 2**20))
' "$job" <<<"$out"
}

IFS=, read -ra bss <<<"$sizes"
mkdir -p "$base/native"
for bs in "${bss[@]}"; do
  T volume create "v$bs" --block-size "$bs" >/dev/null
  mkdir -p "$base/m$bs"
  T mount "v$bs" "$base/m$bs" >/dev/null
done
if [ "$passthrough" = on ]; then
  mkdir -p "$base/pt-back" "$base/pt"
  "$passthru_bin" "$base/pt-back" "$base/pt" 2>"$base/pt.log" &
  passthru_pid=$!
  i=0
  until mountpoint -q "$base/pt"; do
    i=$((i + 1))
    if [ "$i" -gt 100 ] || ! kill -0 "$passthru_pid" 2>/dev/null; then
      echo "passthrough did not mount $base/pt: $(cat "$base/pt.log")" >&2
      exit 1
    fi
    sleep 0.1
  done
fi
printf 'fio: %s MiB file, %s s timed jobs, tandem block sizes %s, under %s\n' \
  "$size" "$seconds" "$sizes" "$dir"
header=$(printf '%-36s %10s' "workload" "native")
[ "$passthrough" = on ] && header+=$(printf ' %16s' "FUSE passthru")
for bs in "${bss[@]}"; do header+=$(printf ' %16s' "tandem $((bs / 1024))K"); done
echo "$header"
for job in randwrite seqwrite seqread randread; do
  case $job in
    randwrite) label="4 KiB random write, fsync/32 (IOPS)" ;;
    seqwrite) label="1 MiB seq write + fsync (MiB/s)" ;;
    seqread) label="1 MiB seq read, cold (MiB/s)" ;;
    randread) label="4 KiB random read, cold (IOPS)" ;;
  esac
  # The file the timed jobs work on is laid out first (fio does it untimed).
  n=$(run "$job" "$base/native")
  line=$(printf '%-36s %10s' "$label" "$n")
  if [ "$passthrough" = on ]; then
    t=$(run "$job" "$base/pt")
    line+=$(printf ' %8s (%5.2fx)' "$t" "$(python3 -c "print($t / max($n, 1))")")
  fi
  for bs in "${bss[@]}"; do
    t=$(run "$job" "$base/m$bs")
    line+=$(printf ' %8s (%5.2fx)' "$t" "$(python3 -c "print($t / max($n, 1))")")
  done
  echo "$line"
done
T status | grep 'intent log' || true
