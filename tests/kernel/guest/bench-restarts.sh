# The tier-4 bench of hitless restarts (benches/kernel.rs), inside one VM run: probes lost by a
# 10 ms ping between two namespaces on system ports of a kernel-datapath bridge, across
#  1. kill -9 of ovs-vswitchd (kill9-vswitchd),
#  2. SIGTERM of the appliance and a new appliance on the same run_dir and db_dir (replace),
#  3. kill -9 of ovsdb-server, which the appliance answers by restarting both (kill9-ovsdb),
# with [ovs] restore_flows = true and = false, the two alternating run by run (the config is
# rewritten between them; the database and the snapshots stay). The run count is fixed here,
# before any figure is seen. Each figure: BENCH <measure> <run> <value> <unit>.
. /kt/lib.sh

RUNS=5
# 1000 probes 10 ms apart, the event 2 s in: 8 s to come back, inside the ping's own window.
PROBES=1000

bench_line() { say "BENCH $*"; }

config() {
  local restore=$1
  app_init hr auto 9563 <<TOML
[supervisor]
restart_window = "1s"

[[bridges]]
name = "br-h"
  [[bridges.ports]]
  name = "ha"
  [[bridges.ports]]
  name = "hb"
TOML
  # app_init starts from a fresh directory; restore_flows goes in [ovs], which it wrote first.
  sed -i "/^\[ovs\]/a restore_flows = $restore" "$(dir_of hr)/config.toml"
}

# The database and snapshots of the first config are kept across the mode switches.
switch_mode() {
  local restore=$1 d keep
  d=$(dir_of hr)
  keep=/tmp/hr-keep
  rm -rf "$keep"
  [ -d "$d/db" ] && cp -a "$d/db" "$keep"
  config "$restore"
  if [ -d "$keep" ]; then
    rm -rf "$d/db"
    mv "$keep" "$d/db"
  fi
}

# ping_during MEASURE RUN EVENT...: a 10 ms ping, EVENT run 2 s in; the probes lost.
ping_during() {
  local measure=$1 run=$2 out sent got ping
  shift 2
  ip netns exec ha ping -i 0.01 -c "$PROBES" -W 1 10.95.0.2 >/tmp/hr-ping.log 2>&1 &
  ping=$!
  sleep 2
  "$@" || say "LOG bench: $measure run $run: the event failed: $WHY"
  wait "$ping"
  out=$(cat /tmp/hr-ping.log)
  sent=$(awk '/packets transmitted/ { print $1 }' <<<"$out")
  got=$(awk '/packets transmitted/ { print $4 }' <<<"$out")
  if [ -n "$sent" ] && ping_ok ha 10.95.0.2 >/dev/null; then
    bench_line "$measure" "$run" "$((sent - got))" probes
  else
    say "LOG bench: $measure run $run: no summary or no traffic after: $(tail -n 2 <<<"$out" | tr '\n' ' ')"
  fi
}

# Waits until the daemon's pidfile names a new live process that answers (vswitchd) or until
# the appliance is ready again.
new_vswitchd() {
  local old=$1 i new
  for i in $(seq 300); do
    new=$(vswitchd_pid hr)
    [ -n "$new" ] && [ "$new" != "$old" ] && appctl hr version >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  WHY="no new ovs-vswitchd"
  return 1
}

kill_vswitchd() {
  local old
  old=$(vswitchd_pid hr)
  kill -9 "$old"
  new_vswitchd "$old"
}

kill_ovsdb() {
  local old db
  old=$(vswitchd_pid hr)
  db=$(cat "$(dir_of hr)/run/ovsdb-server.pid")
  kill -9 "$db"
  new_vswitchd "$old"
}

replace() {
  app_stop hr || { WHY="the appliance did not stop ($STOP_RC)"; return 1; }
  app_start hr
  app_wait_ready hr 120
}

# Until the snapshot of br-h exists (restore mode) and the flows are learnt.
settle() {
  local i
  for i in $(seq 100); do
    [ -s "$(dir_of hr)/db/flows/br-h.flows" ] && break
    sleep 0.1
  done
  ping_ok ha 10.95.0.2 >/dev/null
  sleep 1
}

one_run() {
  local restore=$1 run=$2 mode
  mode=restore
  [ "$restore" = false ] && mode=no-restore
  switch_mode "$restore"
  app_start hr
  app_wait_ready hr 120 || { say "LOG bench: $WHY"; return 1; }
  [ "$(dp_type hr br-h)" = system ] || { say "LOG bench: br-h is not on the kernel datapath"; return 1; }
  settle
  ping_during "kill9-vswitchd-$mode" "$run" kill_vswitchd
  settle
  ping_during "replace-$mode" "$run" replace
  settle
  ping_during "kill9-ovsdb-$mode" "$run" kill_ovsdb
  grep -c 'flows restored' "$(dir_of hr)/log" | sed "s/^/LOG bench: $mode run $run: restores logged: /" >/dev/ttyS1
  app_stop hr
}

host_port ha ha 10.95.0.1/24
host_port hb hb 10.95.0.2/24
say "BENCH-CONFIG restart_runs=$RUNS probes=$PROBES interval_ms=10"
for run in $(seq "$RUNS"); do
  if [ $((run % 2)) = 1 ]; then
    one_run true "$run"
    one_run false "$run"
  else
    one_run false "$run"
    one_run true "$run"
  fi
done
exit 0
