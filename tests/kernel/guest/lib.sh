# Helpers for the tier-4 case scripts (sourced by init and by every case script).
# Everything here runs inside the VM: it is the VM's own kernel, so loading and unloading the
# openvswitch module, and killing what the scripts started, touches nothing outside it.

BIN=/usr/local/bin/ovs-appliance
RESULTS=/dev/ttyS1
FAILS=0

say() { echo "$*" >"$RESULTS"; echo "$*"; }
now() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# result NAME PASS|FAIL DETAIL...: one line for the host, which turns it into an assertion.
result() {
  local name=$1 verdict=$2
  shift 2
  say "CASE $name $verdict $*"
  [ "$verdict" = PASS ] || FAILS=$((FAILS + 1))
}

# subcase NAME FUNCTION: runs FUNCTION; it sets DETAIL on success, or calls `fail` and returns 1.
subcase() {
  local name=$1 start
  shift
  DETAIL='' WHY=''
  start=$(now)
  echo "=== $name"
  if "$@"; then
    result "$name" PASS "$DETAIL ($(since "$start") s)"
  else
    result "$name" FAIL "${WHY:-returned non-zero} ($(since "$start") s)"
  fi
}
fail() { WHY="$*"; echo "fail: $*"; return 1; }
# expect WHAT CMD...: CMD must succeed, else the subcase fails saying WHAT.
expect() {
  local what=$1
  shift
  "$@" && return 0
  fail "$what"
}

# --- the openvswitch module -------------------------------------------------------------------
module_loaded() { [ -e /sys/module/openvswitch ]; }
lsmod_ovs() { lsmod | awk '$1 == "openvswitch" { print "loaded"; f = 1 } END { if (!f) print "absent" }'; }

# Unloads openvswitch (and its vport modules) so the next case starts without it. Its
# datapaths go first: ovs-vswitchd leaves them when it exits, as it should. ovs-dpctl is asked
# only when the module is there: asking genetlink for the family would load it.
module_unload() {
  module_loaded || return 0
  local dp
  for dp in $(ovs-dpctl dump-dps 2>/dev/null); do
    ovs-dpctl del-dp "$dp"
  done
  local m
  for m in vport_vxlan vport_geneve vport_gre openvswitch; do
    [ -e "/sys/module/$m" ] && rmmod "$m"
  done
  ! module_loaded
}

# Every case starts with the module out of the kernel.
module_absent_or_fail() {
  module_unload || { fail "openvswitch could not be unloaded before the case"; return 1; }
}

# --- appliances -------------------------------------------------------------------------------
dir_of() { echo "/tmp/app-$1"; }

# app_init NAME DATAPATH METRICS_PORT < bridges-toml: a fresh run_dir, db_dir and config.
app_init() {
  local name=$1 datapath=$2 port=$3 d
  d=$(dir_of "$name")
  rm -rf "$d"
  mkdir -p "$d/run" "$d/db"
  {
    printf '[ovs]\ndatapath = "%s"\nrun_dir = "%s/run"\ndb_dir = "%s/db"\n' "$datapath" "$d" "$d"
    printf 'instance = "%s"\n' "$name"
    printf '[metrics]\nlisten = "127.0.0.1:%s"\n' "$port"
    cat
  } >"$d/config.toml"
  echo "$port" >"$d/port"
}

# app_start NAME [WRAPPER...]: `run` in the background under WRAPPER (e.g. ip netns exec NS).
app_start() {
  local name=$1 d
  shift
  d=$(dir_of "$name")
  "$@" "$BIN" run --config "$d/config.toml" >>"$d/log" 2>&1 &
  echo $! >"$d/pid"
  echo $! >>/tmp/kt-pids
  echo "$*" >"$d/wrapper"
}

app_pid() { cat "$(dir_of "$1")/pid"; }
app_log() { cat "$(dir_of "$1")/log"; }
alive() { [ -e "/proc/$1" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

# app_wait_ready NAME SECONDS [NETNS]: until /readyz answers 200 (daemons up, config applied).
app_wait_ready() {
  local name=$1 limit=$2 ns=${3:-} pid port start
  pid=$(app_pid "$name")
  port=$(cat "$(dir_of "$name")/port")
  start=$(now)
  while awk -v s="$start" -v n="$(now)" -v l="$limit" 'BEGIN { exit !(n - s < l) }'; do
    if ! alive "$pid"; then
      fail "appliance $name exited before ready: $(tail -n 5 "$(dir_of "$name")/log" | tr '\n' ' ')"
      return 1
    fi
    if ${ns:+ip netns exec "$ns"} "$BIN" healthcheck --url "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then
      READY_S=$(since "$start")
      return 0
    fi
    sleep 0.2
  done
  fail "appliance $name not ready after $limit s: $(tail -n 5 "$(dir_of "$name")/log" | tr '\n' ' ')"
}

# app_stop NAME [SIGNAL]: signals the appliance and waits (30 s) for it; STOP_RC is its status.
app_stop() {
  local name=$1 sig=${2:-TERM} pid i
  pid=$(app_pid "$name")
  STOP_RC=''
  kill -s "$sig" "$pid" 2>/dev/null
  for i in $(seq 150); do
    alive "$pid" || break
    sleep 0.2
  done
  if alive "$pid"; then
    kill -9 "$pid"
    wait "$pid" 2>/dev/null
    STOP_RC=timeout
    return 1
  fi
  wait "$pid" 2>/dev/null
  STOP_RC=$?
}

# app_once NAME SECONDS [WRAPPER...]: `run` in the foreground, expected to exit; ONCE_RC.
app_once() {
  local name=$1 limit=$2 d
  shift 2
  d=$(dir_of "$name")
  timeout -k 5 "$limit" "$@" "$BIN" run --config "$d/config.toml" >>"$d/log" 2>&1
  ONCE_RC=$?
}

vsctl() {
  local name=$1
  shift
  OVS_RUNDIR=$(dir_of "$name")/run ovs-vsctl --timeout=20 "$@"
}
vswitchd_pid() { cat "$(dir_of "$1")/run/ovs-vswitchd.pid" 2>/dev/null; }
appctl() {
  local name=$1
  shift
  ovs-appctl --timeout=20 -t "$(dir_of "$name")/run/ovs-vswitchd.$(vswitchd_pid "$name").ctl" "$@"
}
# handler_counts LOG: how often ovs-vswitchd's log set each upcall handler count ("2 to 0;1 to 2;").
handler_counts() { grep -o 'n-handler-threads to [0-9]*' "$1" | sed 's/n-handler-threads //' | sort | uniq -c | tr -s ' ' | tr '\n' ';'; }
dp_type() { vsctl "$1" get bridge "$2" datapath_type | tr -d '"'; }

# Kills whatever appliance a case left running, its daemons, namespaces and the module.
cleanup_all() {
  local pid
  for pid in $(cat /tmp/kt-pids 2>/dev/null); do
    alive "$pid" && kill -TERM "$pid"
  done
  sleep 1
  for pid in $(cat /tmp/kt-pids 2>/dev/null) $(cat /tmp/app-*/run/*.pid 2>/dev/null); do
    alive "$pid" && kill -9 "$pid"
  done
  rm -f /tmp/kt-pids
  local ns
  for ns in $(ip netns list | awk '{print $1}'); do
    ip netns pids "$ns" | xargs -r kill -9
    ip netns del "$ns"
  done
  module_unload >/dev/null 2>&1
}

# --- namespaces and links ---------------------------------------------------------------------
ns_add() {
  ip netns add "$1"
  ip -n "$1" link set lo up
}

# host_port HOSTIF NS ADDR/LEN: a namespace NS (made if missing) whose eth0 is a veth peer of
# HOSTIF, left in this (the "host") namespace for a bridge to take as a system port.
host_port() {
  local hostif=$1 ns=$2 addr=$3
  [ -e "/run/netns/$ns" ] || ns_add "$ns"
  ip link add "$hostif" type veth peer name eth0 netns "$ns"
  ip link set "$hostif" up
  [ -n "$addr" ] && ip -n "$ns" addr add "$addr" dev eth0
  ip -n "$ns" link set eth0 up
}

# has_addr DEV ADDR/LEN [NS]: the device carries that address.
has_addr() { ip ${3:+-n "$3"} -o addr show dev "$1" | grep -q "inet $2 "; }

# ping_ok NS ADDR [COUNT]: every probe answered. A bridge that has to learn the first
# addresses may drop the first; one warm-up probe is sent before.
ping_ok() {
  local ns=$1 addr=$2 count=${3:-3}
  ip netns exec "$ns" ping -c 1 -W 2 "$addr" >/dev/null 2>&1
  ip netns exec "$ns" ping -c "$count" -i 0.2 -W 2 "$addr"
}
ping_fails() {
  local ns=$1 addr=$2
  ! ip netns exec "$ns" ping -c 2 -i 0.2 -W 1 "$addr"
}

# iperf3_mbps CLIENT_NS SERVER_NS SERVER_ADDR SECONDS: TCP throughput in Mbit/s (receiver side).
iperf3_mbps() {
  local cns=$1 sns=$2 addr=$3 secs=$4 out
  ip netns exec "$sns" iperf3 -s -1 -B "$addr" -D --logfile /dev/null
  sleep 0.3
  out=$(ip netns exec "$cns" timeout $((secs + 15)) iperf3 -c "$addr" -t "$secs" -f m 2>&1)
  echo "$out" >&2
  echo "$out" | awk '/receiver/ { for (i = 1; i < NF; i++) if ($(i+1) == "Mbits/sec") print $i }'
}
