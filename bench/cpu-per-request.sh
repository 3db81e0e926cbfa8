#!/usr/bin/env bash
# Where a server's time goes under one fio workload: IOPS and bandwidth, the server's CPU
# per request (all threads, from /proc/PID/stat), the share of it its main thread takes,
# fio's CPU and the machine's idle time (/proc/stat). One run; compare runs side by side.
# Like bench/run.ts, it fills and deletes a 2 GiB scratch file right before fio starts.
#
#   bash bench/cpu-per-request.sh rewind|nbdkit FIO-ARGS...
#   bash bench/cpu-per-request.sh rewind --rw=randwrite --bs=4k --iodepth=16 --size=1G --time_based --runtime=6
#
# Needs `npm run build` first (it runs bin/rewind). Serves a fresh 1 GiB sparse file on
# 127.0.0.1:PORT (PORT from $PORT, default 10901) from a temporary directory.
set -euo pipefail
srv=${1:?usage: cpu-per-request.sh rewind|nbdkit FIO-ARGS...}; shift
root=$(cd "$(dirname "$0")/.." && pwd)
port=${PORT:-10901}
work=$(mktemp -d -t rewind-cpu.XXXXXX)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
truncate -s 1G "$work/img"
sync
case "$srv" in
  nbdkit) nbdkit -f -p "$port" --ipaddr 127.0.0.1 file file="$work/img" 2>/dev/null & pid=$! ;;
  rewind) node --single-threaded-gc "$root/bin/rewind" serve --backing "$work/img" --size 1G --spool "$work/spool" \
            --spool-max 64G --listen "127.0.0.1:$port" > "$work/serve.log" 2>&1 & pid=$! ;;
  *) echo "server must be rewind or nbdkit" >&2; exit 2 ;;
esac
for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
# Same warm-up as bench/run.ts: just-freed page cache for the server to write into.
dd if=/dev/zero of="$work/warm" bs=8M count=256 status=none; rm "$work/warm"
cpu() { awk '{print $14+$15}' "$1"; }
read -r _ u n s idl iow irq sirq st _ < /proc/stat; i0=$((idl+iow)); a0=$((u+n+s+idl+iow+irq+sirq+st))
m0=$(cpu /proc/$pid/task/$pid/stat); t0=$(cpu /proc/$pid/stat)
f0=$(date +%s%N)
fio --name=b --ioengine=nbd --uri="nbd://127.0.0.1:$port/" --output-format=json "$@" > "$work/fio.json"
m1=$(cpu /proc/$pid/task/$pid/stat); t1=$(cpu /proc/$pid/stat)
read -r _ u n s idl iow irq sirq st _ < /proc/stat; i1=$((idl+iow)); a1=$((u+n+s+idl+iow+irq+sirq+st))
node -e '
  const [srv, file, m, t, idle, all] = process.argv.slice(1);
  const j = JSON.parse(require("fs").readFileSync(file, "utf8").replace(/^[^{]*/, "")).jobs[0].write;
  const wall = Number(all) / 2 / 100; // jiffies over two CPUs
  const pct = (x) => (x / wall * 100).toFixed(0) + "%";
  const ios = j.total_ios || 1;
  console.log(`${srv.padEnd(7)} iops ${j.iops.toFixed(0).padStart(6)}  MiB/s ${(j.bw_bytes / 1048576).toFixed(0).padStart(5)}  | main thread ${pct(Number(m) / 100)}  server ${pct(Number(t) / 100)}  idle ${(Number(idle) / Number(all) * 200).toFixed(0)}% (of 200)  | server CPU per request ${(Number(t) / 100 * 1e6 / ios).toFixed(1)} µs`);
' "$srv" "$work/fio.json" $((m1-m0)) $((t1-t0)) $((i1-i0)) $((a1-a0))
