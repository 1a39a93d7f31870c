# The tier-4 bench (benches/kernel.rs), inside one VM run:
#  1. TCP (iperf3) between the same two namespaces through an OVS bridge on the kernel datapath
#     (made by the appliance) and through a Linux bridge, alternating run by run;
#  2. cold start of the appliance to a configured bridge (readyz answers and the internal
#     port has its address), fresh database each run, with the openvswitch module absent (so the
#     appliance loads it) and, as the baseline, already loaded; and modprobe openvswitch alone;
# (Probes lost across restarts, with and without the flow restore: bench-restarts.sh.)
# Each figure is one line: BENCH <measure> <run> <value> <unit>. The host takes the medians.
. /kt/lib.sh

IPERF_RUNS=7 IPERF_SECONDS=4
COLD_RUNS=5 MODPROBE_RUNS=5

bench_line() { say "BENCH $*"; }

# wait_configured NAME ADDR DEV: until /readyz answers and DEV carries ADDR, polled every 50 ms.
wait_configured() {
  local name=$1 addr=$2 dev=$3 port pid i
  port=$(cat "$(dir_of "$name")/port")
  pid=$(app_pid "$name")
  for i in $(seq 1200); do
    alive "$pid" || return 1
    if has_addr "$dev" "$addr" 2>/dev/null &&
      "$BIN" healthcheck --url "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.05
  done
  return 1
}

COLD_BRIDGE='
[[bridges]]
name = "br-c"
  [[bridges.ports]]
  name = "c-int"
  type = "internal"
  addresses = ["10.70.0.1/24"]
'

# cold_start absent|loaded RUN: one cold start, measured from just before the exec.
cold_start() {
  local module=$1 run=$2 start s
  module_unload || { say "LOG bench: module could not be unloaded"; return 1; }
  [ "$module" = loaded ] && modprobe openvswitch
  app_init cold auto 9560 <<<"$COLD_BRIDGE"
  start=$(now)
  app_start cold
  if wait_configured cold 10.70.0.1/24 c-int; then
    s=$(since "$start")
    grep -q 'module loaded now' "$(dir_of cold)/log" && [ "$module" = loaded ] &&
      say "LOG bench: the appliance loaded a module that was loaded"
    bench_line "cold-start-module-$module" "$run" "$s" s
  else
    say "LOG bench: cold start $run ($module) not configured: $(tail -n 3 "$(dir_of cold)/log" | tr '\n' ' ')"
  fi
  app_stop cold
  ip link del c-int 2>/dev/null
  ovs-dpctl del-dp ovs-system 2>/dev/null
}

modprobe_alone() {
  local run=$1 start
  module_unload
  start=$(now)
  modprobe openvswitch && bench_line modprobe-openvswitch "$run" "$(since "$start")" s
}

iperf_paths() {
  ns_add h1
  ns_add h2
  # OVS: h1/eth0 <-> o1, h2/eth0 <-> o2, both ports of br-o on the kernel datapath.
  ip link add o1 type veth peer name eth0 netns h1
  ip link add o2 type veth peer name eth0 netns h2
  # Linux bridge: h1/eth1 <-> l1, h2/eth1 <-> l2, both in br-l.
  ip link add l1 type veth peer name eth1 netns h1
  ip link add l2 type veth peer name eth1 netns h2
  ip link add br-l type bridge
  ip link set l1 master br-l
  ip link set l2 master br-l
  local l
  for l in o1 o2 l1 l2 br-l; do ip link set "$l" up; done
  for l in 1 2; do
    ip -n "h$l" addr add "10.80.0.$l/24" dev eth0
    ip -n "h$l" addr add "10.81.0.$l/24" dev eth1
    ip -n "h$l" link set eth0 up
    ip -n "h$l" link set eth1 up
  done
  app_init iperf auto 9561 <<'TOML'
[[bridges]]
name = "br-o"
  [[bridges.ports]]
  name = "o1"
  [[bridges.ports]]
  name = "o2"
TOML
  app_start iperf
  app_wait_ready iperf 120 || { say "LOG bench: $WHY"; return 1; }
  [ "$(dp_type iperf br-o)" = system ] || { say "LOG bench: br-o is not on the kernel datapath"; return 1; }
  local via
  for via in 10.80.0.2:br-o 10.81.0.2:br-l; do
    ping_ok h1 "${via%%:*}" >/dev/null || {
      say "LOG bench: no ping through ${via#*:} (${via%%:*}): $(ip -br link | tr '\n' ' ') / $(vsctl iperf show | tr '\n' ' ')"
      say "LOG bench: $(appctl iperf dpctl/show | grep -o 'lookups:.*lost:[0-9]*'); handler counts set: $(handler_counts "$(dir_of iperf)/log")"
      return 1
    }
  done
  ip netns exec h2 iperf3 -s -D --logfile /dev/null
  sleep 0.5
  local run first second path mbps
  for run in $(seq "$IPERF_RUNS"); do
    # Alternate which path goes first, so a drift of the machine lands on both.
    if [ $((run % 2)) = 1 ]; then first=ovs second=linux-bridge; else first=linux-bridge second=ovs; fi
    for path in $first $second; do
      local addr=10.80.0.2
      [ "$path" = linux-bridge ] && addr=10.81.0.2
      mbps=$(ip netns exec h1 timeout $((IPERF_SECONDS + 20)) iperf3 -c "$addr" -t "$IPERF_SECONDS" -f m 2>/dev/null |
        awk '/receiver/ { for (i = 1; i < NF; i++) if ($(i+1) == "Mbits/sec") print $i }')
      [ -n "$mbps" ] && bench_line "iperf3-$path" "$run" "$mbps" Mbit/s
    done
  done
  app_stop iperf
}

say "BENCH-CONFIG iperf_runs=$IPERF_RUNS iperf_seconds=$IPERF_SECONDS cold_runs=$COLD_RUNS modprobe_runs=$MODPROBE_RUNS"
iperf_paths
cleanup_all
for run in $(seq "$COLD_RUNS"); do
  cold_start absent "$run"
  cold_start loaded "$run"
done
for run in $(seq "$MODPROBE_RUNS"); do
  modprobe_alone "$run"
done
exit 0
