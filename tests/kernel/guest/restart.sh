# Case 5: kill -9 of ovs-vswitchd under a ping every 10 ms on the kernel datapath, on a
# fail_mode=secure bridge that forwards only by flows added with ovs-ofctl (not in the config):
# the appliance restarts it under flow-restore-wait (the kernel keeps its flows), puts the
# flows back from its snapshot and clears the flag; the packets lost are reported and bounded.
. /kt/lib.sh

MAX_LOST=5

kill_vswitchd_under_ping() {
  module_absent_or_fail || return 1
  host_port ra ra 10.60.0.1/24
  host_port rb rb 10.60.0.2/24
  app_init rs auto 9550 <<'TOML'
[[bridges]]
name = "br-r"
fail_mode = "secure"
  [[bridges.ports]]
  name = "ra"
  [[bridges.ports]]
  name = "rb"
TOML
  app_start rs
  app_wait_ready rs 120 || return 1
  local pa pb of
  pa=$(vsctl rs get interface ra ofport)
  pb=$(vsctl rs get interface rb ofport)
  of() { OVS_RUNDIR=$(dir_of rs)/run ovs-ofctl "$@"; }
  of add-flow br-r "priority=100,in_port=$pa,actions=output:$pb"
  of add-flow br-r "priority=100,in_port=$pb,actions=output:$pa"
  expect "ra cannot ping rb before the kill" ping_ok ra 10.60.0.2 || return 1
  local i
  # Compared every second, less often when a dump is slow (held to 1/20 of a core): under TCG
  # a dump of the few flows here takes a few hundred ms.
  for i in $(seq 300); do
    grep -q "in_port=$pb" "$(dir_of rs)/db/flows/br-r.flows" 2>/dev/null && break
    sleep 0.1
  done
  expect "no flow snapshot of br-r" grep -q "in_port=$pb" "$(dir_of rs)/db/flows/br-r.flows" || return 1
  local old new start back='' out sent got i
  old=$(vswitchd_pid rs)
  # -D stamps every line with the wall clock, -O reports each probe unanswered when the next
  # goes out: the lost probes' times, against the kill's, say when the datapath dropped traffic.
  ip netns exec ra ping -D -O -i 0.01 -c 1500 -W 1 10.60.0.2 >/tmp/rs-ping.log 2>&1 &
  local ping=$!
  sleep 3
  start=$(now)
  local killed_at
  killed_at=$(date +%s.%N)
  kill -9 "$old"
  for i in $(seq 300); do
    new=$(vswitchd_pid rs)
    if [ -n "$new" ] && [ "$new" != "$old" ] && appctl rs version >/dev/null 2>&1; then
      back=$(since "$start")
      break
    fi
    sleep 0.1
  done
  wait "$ping"
  out=$(cat /tmp/rs-ping.log)
  echo "$out" | tail -n 3
  sent=$(awk '/packets transmitted/ { print $1 }' <<<"$out")
  got=$(awk '/packets transmitted/ { print $4 }' <<<"$out")
  # First and last unanswered probe, in seconds after the kill.
  local window
  window=$(awk -v k="$killed_at" '/no answer yet/ { t = substr($1, 2, length($1) - 2) - k;
    if (n++ == 0) first = t; last = t } END { if (n) printf "%.2f s to %.2f s after the kill", first, last; else print "no probe" }' <<<"$out")
  expect "ovs-vswitchd (pid $old) was not restarted" [ -n "$back" ] || return 1
  expect "the appliance died" alive "$(app_pid rs)" || return 1
  expect "ping -i 0.01 printed no summary" [ -n "$sent" ] || return 1
  expect "ra cannot ping rb after the restart" ping_ok ra 10.60.0.2 || return 1
  expect "br-r is no longer on the kernel datapath" [ "$(dp_type rs br-r)" = system ] || return 1
  expect "the flows were not restored" grep -q 'flows restored' "$(dir_of rs)/log" || return 1
  expect "the hand-added flows are not back" of dump-flows br-r | grep -q "in_port=$pa" || return 1
  expect "flow-restore-wait left set" sh -c "! OVS_RUNDIR=$(dir_of rs)/run ovs-vsctl get open_vswitch . other_config | grep -q flow-restore-wait" || return 1
  # The bench's target is 1 (benches/kernel.rs); a few more under a loaded TCG host.
  expect "$((sent - got)) of $sent probes lost (more than $MAX_LOST)" [ $((sent - got)) -le "$MAX_LOST" ] || return 1
  DETAIL="vswitchd $old -> $new, answering $back s after the kill; flows restored; ping every 10 ms: $((sent - got)) of $sent lost, unanswered: $window; traffic back"
}

subcase kill9-vswitchd-under-ping kill_vswitchd_under_ping
exit "$FAILS"
