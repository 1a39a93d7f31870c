# Case 6: ovs-vswitchd early after boot. Started before the host's monotonic clock passes 10 s,
# OVS 3.1's ovs-vswitchd runs no upcall handler on the kernel datapath (its log says "Overriding
# n-handler-threads to 0") and drops every packet that misses its flow cache until the clock
# passes 10 s; the appliance holds it back until then (src/supervisor/boot_clock.rs). The
# appliance runs in a time namespace whose monotonic clock reads 2 to 3 s, so the case does not
# depend on how fast this VM booted.
. /kt/lib.sh

early_clock_traffic() {
  module_absent_or_fail || return 1
  local offset
  offset=$((2 - $(cut -d. -f1 /proc/uptime)))
  expect "no time namespace here (unshare --time --monotonic=$offset)" \
    unshare --time --fork --monotonic="$offset" true || return 1
  host_port ea ea 10.65.0.1/24
  host_port eb eb 10.65.0.2/24
  app_init early auto 9565 <<'TOML'
[[bridges]]
name = "br-e"
  [[bridges.ports]]
  name = "ea"
  [[bridges.ports]]
  name = "eb"
TOML
  app_start early unshare --time --fork --kill-child --monotonic="$offset"
  app_wait_ready early 120 || return 1
  local log app
  log=$(dir_of early)/log
  expect "the appliance did not hold ovs-vswitchd back" grep -q 'holding it back' "$log" || return 1
  expect "br-e is not on the kernel datapath" [ "$(dp_type early br-e)" = system ] || return 1
  expect "ovs-vswitchd ran without upcall handlers (handler counts set: $(handler_counts "$log"))" \
    sh -c "! grep -q 'n-handler-threads to 0' '$log'" || return 1
  expect "ovs-vswitchd never said how many handlers it runs" grep -q 'n-handler-threads to [1-9]' "$log" || return 1
  expect "ea cannot ping eb right after ready" ping_ok ea 10.65.0.2 || return 1
  DETAIL="monotonic clock offset $offset s (2-3 s at the start); ready in $READY_S s; $(grep -o 'hold_ms=[0-9]*' "$log" | head -n 1); handler counts set: $(handler_counts "$log")"
  # unshare(1) is the recorded pid; the appliance is its child.
  app=$(pgrep -P "$(app_pid early)")
  [ -n "$app" ] && kill -TERM "$app"
}

subcase early-clock-traffic early_clock_traffic
exit "$FAILS"
