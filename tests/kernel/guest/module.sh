# Case 1: datapath = "auto" with /lib/modules present and CAP_SYS_MODULE held: the appliance loads
# openvswitch itself and says so, its bridges are on the kernel datapath (system@ovs-system),
# and the module stays loaded after SIGTERM.
. /kt/lib.sh

auto_loads_module() {
  module_absent_or_fail || return 1
  app_init auto auto 9520 <<'TOML'
[[bridges]]
name = "br-auto"
  [[bridges.ports]]
  name = "auto-int"
  type = "internal"
  addresses = ["10.9.0.1/24"]
TOML
  app_start auto
  app_wait_ready auto 120 || return 1
  local log
  log=$(app_log auto)
  expect "module not loaded after start" module_loaded || return 1
  expect "the log does not say the appliance loaded the module: $(grep -m1 'datapath' <<<"$log")" \
    grep -q 'datapath system (module loaded now)' <<<"$log" || return 1
  DETAIL="ready in ${READY_S} s; log: $(grep -o 'datapath system (module loaded now)' <<<"$log" | head -n 1)"
}

auto_bridges_are_system() {
  local t show
  t=$(dp_type auto br-auto)
  expect "br-auto datapath_type is '$t', not system" [ "$t" = system ] || return 1
  show=$(appctl auto dpif/show)
  echo "$show"
  expect "dpif/show does not show system@ovs-system: $show" grep -q '^system@ovs-system:' <<<"$show" || return 1
  expect "dpif/show has no auto-int port on system@ovs-system" grep -q 'auto-int' <<<"$show" || return 1
  expect "auto-int has no 10.9.0.1/24" has_addr auto-int 10.9.0.1/24 || return 1
  DETAIL="datapath_type system; $(head -n 1 <<<"$show" | tr -s ' ')"
}

sigterm_keeps_module() {
  app_stop auto TERM
  expect "the appliance exited $STOP_RC after SIGTERM, not 0" [ "$STOP_RC" = 0 ] || return 1
  expect "openvswitch was unloaded at stop" module_loaded || return 1
  expect "lsmod lists no openvswitch after stop" [ "$(lsmod_ovs)" = loaded ] || return 1
  DETAIL="exit 0; lsmod: openvswitch still loaded"
}

subcase auto-loads-module auto_loads_module
subcase auto-bridges-system auto_bridges_are_system
subcase sigterm-keeps-module sigterm_keeps_module
exit "$FAILS"
