#!/usr/bin/env bash
# pgbench on PostgreSQL 15 with its data directory and WAL on two volumes of a tandem group,
# beside the same on a native directory of the same disk, in the same run; then on tandem
# again while a group snapshot is taken every few seconds: once as it is (crash-consistent,
# `--skip-hooks`: what tandem's snapshot costs) and once with hooks/postgresql, whose
# CHECKPOINT before each snapshot costs PostgreSQL the same on any disk. So that the two are
# told apart, the native directory is also run with a CHECKPOINT every few seconds. Beside
# the native runs, the same on the FUSE passthrough (examples/passthrough: a minimal FUSE
# filesystem mounted as tandem mounts, serving a native directory of the same disk): the best
# any FUSE filesystem that writes to this disk does here, so that the gap to native splits
# into what the FUSE round trips cost (passthrough / native) and what tandem's own work costs
# (tandem / passthrough).
#
#   cargo build --release --all-targets && examples/pgbench.sh [--scale 10] [--seconds 30]
#       [--clients 4] [--block-size BYTES] [--snapshot-every SECONDS] [--dir DIR]
#       [--passthrough auto|on|off]
#
# --passthrough auto (the default) runs the passthrough when target/release/examples/passthrough
# is built (cargo build --release --example passthrough).
# Prints tps (without connection time) and average latency for each, the ratio to the native
# run, and for each periodic run its ratio to the same setup without it.
# Needs root (mounts, runs the server as `postgres`) and /usr/lib/postgresql/15/bin.
set -euo pipefail
scale=10 seconds=30 clients=4 bs="" every=5 dir=${TMPDIR:-/tmp} passthrough=auto
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) scale=$2 ;;
    --seconds) seconds=$2 ;;
    --clients) clients=$2 ;;
    --block-size) bs=$2 ;;
    --snapshot-every) every=$2 ;;
    --dir) dir=$2 ;;
    --passthrough) passthrough=$2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift 2
done
root=$(cd "$(dirname "$0")/.." && pwd)
tandem=$root/target/release/tandem
[ -x "$tandem" ] || { echo "$tandem is missing: run cargo build --release first" >&2; exit 1; }
passthru_bin=$root/target/release/examples/passthrough
case "$passthrough" in
  auto) [ -x "$passthru_bin" ] && passthrough=on || passthrough=off ;;
  on) [ -x "$passthru_bin" ] || { echo "$passthru_bin is missing: run cargo build --release --example passthrough first" >&2; exit 1; } ;;
  off) ;;
  *) echo "--passthrough takes auto, on or off, not $passthrough" >&2; exit 2 ;;
esac
PG=/usr/lib/postgresql/15/bin
base=$(mktemp -d "$dir/pgbench.XXXXXX")
chmod 755 "$base"
pool=$base/pool
port=$((30000 + $$ % 20000))
sock=$base/run
mkdir -p "$sock" && chmod 777 "$sock"
as_pg() { runuser -u postgres -- "$@"; }
T() { "$tandem" --pool "$pool" "$@"; }
passthru_pids=""
# Stops the passthrough daemons (SIGTERM unmounts); a mount left behind goes with umount -l.
passthru_stop() {
  for p in $passthru_pids; do
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  passthru_pids=""
  for m in "$base/passthrough/data" "$base/passthrough/wal"; do
    mountpoint -q "$m" 2>/dev/null && umount -l "$m" 2>/dev/null || true
  done
}
cleanup() {
  for d in "$base"/*/data/pg; do
    [ -f "$d/postmaster.pid" ] && as_pg "$PG/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1 || true
  done
  passthru_stop
  T shutdown >/dev/null 2>&1 || true
  rm -rf "$base"
}
trap cleanup EXIT

# run NAME DATA_PARENT WAL_PARENT [every MODE]: prints "tps latency_ms"; MODE is snap (a group
# snapshot without hooks), snap-hook (with them) or checkpoint (psql CHECKPOINT), each every
# `every` seconds.
run() {
  local name=$1 d=$2 w=$3 snap=${4:-0} mode=${5:-snap}
  as_pg "$PG/initdb" -D "$d/pg" --waldir "$w/wal" -A trust -U postgres >/dev/null
  as_pg "$PG/pg_ctl" -D "$d/pg" -l "$sock/$name.log" -w \
    -o "-c listen_addresses='' -k $sock -p $port" start >/dev/null
  as_pg "$PG/pgbench" -h "$sock" -p "$port" -i -s "$scale" -q postgres >/dev/null 2>&1
  local snapper=""
  if [ "$snap" -gt 0 ]; then
    case "$mode" in
      snap) each() { T snapshot create "b$1" --group pg --skip-hooks >/dev/null; } ;;
      snap-hook) each() { T snapshot create "b$1" --group pg >/dev/null; } ;;
      checkpoint) each() { as_pg "$PG/psql" -X -q -h "$sock" -p "$port" -c CHECKPOINT postgres >/dev/null; } ;;
    esac
    rm -f "$base/stop"
    ( i=0; while sleep "$snap" && [ ! -e "$base/stop" ]; do i=$((i + 1)); each "$i" || exit 1; done ) &
    snapper=$!
  fi
  local out
  out=$(as_pg "$PG/pgbench" -h "$sock" -p "$port" -c "$clients" -j 2 -T "$seconds" -n postgres 2>&1)
  if [ -n "$snapper" ]; then
    # The loop ends after the snapshot it may be taking: one taken while the server stops
    # would fail its hook (and a killed loop would leave its snapshot command running).
    touch "$base/stop"
    pkill -P "$snapper" sleep 2>/dev/null || true
    wait "$snapper" 2>/dev/null || true
  fi
  as_pg "$PG/pg_ctl" -D "$d/pg" -m fast -w stop >/dev/null
  local tps lat
  tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*without initial connection time.*/\1/p')
  lat=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
  [ -n "$tps" ] || { echo "pgbench failed on $name: $out" >&2; exit 1; }
  echo "$tps $lat"
}

mkdir -p "$base/native/data" "$base/native/wal"
chown -R postgres:postgres "$base/native"
native=$(run native "$base/native/data" "$base/native/wal")
rm -rf "$base/native/data/pg" "$base/native/wal/wal"
native_ckpt=$(run native-ckpt "$base/native/data" "$base/native/wal" "$every" checkpoint)

# passthru_mount NAME: serves $base/passthrough/back-NAME on $base/passthrough/NAME.
passthru_mount() {
  local back=$base/passthrough/back-$1 mnt=$base/passthrough/$1 log=$sock/passthrough-$1.log i=0
  mkdir -p "$back" "$mnt"
  "$passthru_bin" "$back" "$mnt" 2>"$log" &
  local pid=$!
  passthru_pids="$passthru_pids $pid"
  until mountpoint -q "$mnt"; do
    i=$((i + 1))
    if [ "$i" -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
      echo "passthrough did not mount $mnt: $(cat "$log")" >&2
      exit 1
    fi
    sleep 0.1
  done
  chown postgres:postgres "$mnt"
}
if [ "$passthrough" = on ]; then
  passthru_mount data
  passthru_mount wal
  passthru=$(run passthrough "$base/passthrough/data" "$base/passthrough/wal")
  passthru_stop
fi

T volume create pgdata ${bs:+--block-size "$bs"} >/dev/null
T volume create pgwal ${bs:+--block-size "$bs"} >/dev/null
T group create pg pgdata pgwal >/dev/null
mkdir -p "$base/tandem/data" "$base/tandem/wal"
T mount pgdata "$base/tandem/data" -o allow_other >/dev/null
T mount pgwal "$base/tandem/wal" -o allow_other >/dev/null
chown postgres:postgres "$base/tandem/data" "$base/tandem/wal"
mkdir -p "$pool/hooks/pre-snapshot.d"
ln -s "$root/hooks/postgresql" "$pool/hooks/pre-snapshot.d/20-postgresql"
printf 'PG_HOST=%s\nPG_PORT=%s\n' "$sock" "$port" >"$pool/hooks/hooks.conf"
plain=$(run tandem "$base/tandem/data" "$base/tandem/wal")
log_plain=$(T status | sed -n 's/^intent log: //p')
rm -rf "$base/tandem/data/pg" "$base/tandem/wal/wal"
T snapshot delete --group pg >/dev/null 2>&1 || true
snaps=$(run tandem-snap "$base/tandem/data" "$base/tandem/wal" "$every" snap)
# None are taken when the run is shorter than --snapshot-every: grep then finds nothing.
taken=$(T snapshot list --group pg --json | { grep -o '"name"' || true; } | wc -l)
rm -rf "$base/tandem/data/pg" "$base/tandem/wal/wal"
T snapshot delete --group pg >/dev/null 2>&1 || true
hooked=$(run tandem-snap-hook "$base/tandem/data" "$base/tandem/wal" "$every" snap-hook)
taken_hooked=$(T snapshot list --group pg --json | { grep -o '"name"' || true; } | wc -l)

echo "pgbench: scale $scale, $clients clients, ${seconds}s, block size ${bs:-default}; data + WAL on 2 volumes of a group"
printf '%-52s %10s %12s %8s %18s\n' "run" "tps" "latency ms" "ratio" "of the run without"
n_tps=${native% *}
p_tps=${plain% *}
rows=("native directory|$native|" "native, CHECKPOINT every ${every}s|$native_ckpt|$n_tps")
[ "$passthrough" = on ] && rows+=("FUSE passthrough to the same disk|$passthru|")
for row in "${rows[@]}" "tandem|$plain|" "tandem, group snapshot every ${every}s|$snaps|$p_tps" \
  "tandem, snapshot + hooks/postgresql every ${every}s|$hooked|$p_tps"; do
  IFS='|' read -r label v without <<<"$row"
  printf '%-52s %10.0f %12s %7.2fx' "$label" "${v% *}" "${v#* }" "$(awk -v a="${v% *}" -v b="$n_tps" 'BEGIN { print a / b }')"
  if [ -n "$without" ]; then
    printf ' %17.2fx' "$(awk -v a="${v% *}" -v b="$without" 'BEGIN { print a / b }')"
  fi
  echo
done
echo "group snapshots taken: $taken without hooks, $taken_hooked with (each CHECKPOINTs first)"
echo "intent log after the tandem run (fsyncs since the daemon started): $log_plain"
if [ "$passthrough" = on ]; then
  echo "tandem / FUSE passthrough: $(awk -v a="$p_tps" -v b="${passthru% *}" 'BEGIN { printf "%.2f", a / b }')x" \
    "(passthrough / native is what the FUSE round trips cost; this is what tandem's own work costs)"
fi
