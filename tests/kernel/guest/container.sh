# Case 2: the container's view without Docker. The appliance runs in a mount namespace of its
# own where /lib/modules is the host's, bind-mounted read-only (or an empty directory: not
# mounted), holding only Docker's default capabilities plus NET_ADMIN and SYS_NICE, and in some
# runs SYS_MODULE (setpriv sets the bounding set; as uid 0 the exec then has exactly those).
. /kt/lib.sh

# container MODULES EXTRA_CAP CMD...: see container-view.
container() { /kt/container-view "$@"; }
VIEW=/kt/container-view

BRIDGE='
[[bridges]]
name = "br-ct"
'

caps_are_dockers() {
  local eff
  eff=$(container ro '' grep CapEff /proc/self/status | awk '{print $2}')
  # Docker's defaults (0xa80425fb) plus NET_ADMIN (bit 12) and SYS_NICE (bit 23).
  expect "CapEff in the container view is $eff, not 00000000a88435fb" [ "$eff" = 00000000a88435fb ] || return 1
  local ro
  ro=$(container ro '' sh -c 'touch /lib/modules/x 2>&1 || true')
  expect "/lib/modules is writable in the container view" grep -qi 'read-only' <<<"$ro" || return 1
  DETAIL="CapEff $eff (Docker's defaults + NET_ADMIN, SYS_NICE), /lib/modules read-only"
}

auto_falls_back() {
  module_absent_or_fail || return 1
  app_init ct-auto auto 9530 <<<"$BRIDGE"
  app_start ct-auto "$VIEW" ro ''
  app_wait_ready ct-auto 120 || return 1
  local t log
  t=$(dp_type ct-auto br-ct)
  log=$(app_log ct-auto)
  app_stop ct-auto
  ip link del br-ct 2>/dev/null
  ip link del ovs-netdev 2>/dev/null
  expect "br-ct datapath_type is '$t', not netdev" [ "$t" = netdev ] || return 1
  expect "no loud fallback warning in the log" grep -q 'KERNEL DATAPATH UNAVAILABLE' <<<"$log" || return 1
  expect "the warning does not name --cap-add SYS_MODULE" grep -q -- '--cap-add SYS_MODULE' <<<"$log" || return 1
  expect "the appliance exited $STOP_RC after SIGTERM" [ "$STOP_RC" = 0 ] || return 1
  # Not the appliance's doing, and not asserted: ovs-vswitchd looks up the datapath's generic
  # netlink family at start, and the kernel loads a missing family's module by its alias
  # (request_module, no capability checked).
  AFTER_FALLBACK=$(lsmod_ovs)
  DETAIL="datapath_type netdev, warned 'KERNEL DATAPATH UNAVAILABLE ... --cap-add SYS_MODULE'; module after: $AFTER_FALLBACK"
}

# The same container started again on the same database: its datapath follows the module as
# it is now, and the bridge made on netdev moves with it.
auto_after_fallback() {
  local want=netdev t log
  [ "$AFTER_FALLBACK" = loaded ] && want=system
  app_start ct-auto "$VIEW" ro ''
  app_wait_ready ct-auto 120 || return 1
  t=$(dp_type ct-auto br-ct)
  log=$(app_log ct-auto)
  app_stop ct-auto
  ip link del br-ct 2>/dev/null
  ip link del ovs-netdev 2>/dev/null
  expect "module $AFTER_FALLBACK after the fallback, yet br-ct is '$t' on the next start, not $want" \
    [ "$t" = "$want" ] || return 1
  DETAIL="module $AFTER_FALLBACK after the fallback; next start: br-ct datapath_type $t"
}

system_needs_sys_module() {
  module_absent_or_fail || return 1
  app_init ct-nocap system 9531 <<<"$BRIDGE"
  app_once ct-nocap 60 $VIEW ro ''
  local log
  log=$(app_log ct-nocap)
  echo "$log" | tail -n 3
  expect "exit $ONCE_RC, not 77" [ "$ONCE_RC" = 77 ] || return 1
  expect "the error does not name --cap-add SYS_MODULE" grep -q -- '--cap-add SYS_MODULE' <<<"$log" || return 1
  expect "module loaded anyway" [ "$(lsmod_ovs)" = absent ] || return 1
  DETAIL="exit 77: $(grep -o 'datapath = "system" but [^;]*' <<<"$log" | head -n 1)"
}

system_needs_modules() {
  module_absent_or_fail || return 1
  app_init ct-nomod system 9532 <<<"$BRIDGE"
  app_once ct-nomod 60 $VIEW none sys_module
  local log
  log=$(app_log ct-nomod)
  echo "$log" | tail -n 3
  expect "exit $ONCE_RC, not 69" [ "$ONCE_RC" = 69 ] || return 1
  expect "the error does not name -v /lib/modules:/lib/modules:ro" \
    grep -q -- '-v /lib/modules:/lib/modules:ro' <<<"$log" || return 1
  DETAIL="exit 69: $(grep -o 'datapath = "system" but [^;]*' <<<"$log" | head -n 1)"
}

sys_module_loads() {
  module_absent_or_fail || return 1
  app_init ct-cap system 9533 <<<"$BRIDGE"
  app_start ct-cap $VIEW ro sys_module
  app_wait_ready ct-cap 120 || return 1
  local t
  t=$(dp_type ct-cap br-ct)
  app_stop ct-cap
  expect "br-ct datapath_type is '$t', not system" [ "$t" = system ] || return 1
  expect "module not loaded" module_loaded || return 1
  expect "the appliance exited $STOP_RC after SIGTERM" [ "$STOP_RC" = 0 ] || return 1
  DETAIL="loaded openvswitch from the read-only /lib/modules; datapath_type system"
}

preloaded_needs_nothing() {
  module_absent_or_fail || return 1
  modprobe openvswitch || { fail "modprobe openvswitch failed on the host"; return 1; }
  app_init ct-pre system 9534 <<<"$BRIDGE"
  app_start ct-pre $VIEW none ''
  app_wait_ready ct-pre 120 || return 1
  local t
  t=$(dp_type ct-pre br-ct)
  app_stop ct-pre
  expect "br-ct datapath_type is '$t', not system" [ "$t" = system ] || return 1
  DETAIL="module loaded beforehand: system datapath without SYS_MODULE or /lib/modules"
}

subcase container-caps caps_are_dockers
subcase container-auto-falls-back auto_falls_back
subcase container-auto-after-fallback auto_after_fallback
subcase container-system-needs-sys-module system_needs_sys_module
subcase container-system-needs-modules system_needs_modules
subcase container-sys-module-loads sys_module_loads
subcase container-preloaded-needs-nothing preloaded_needs_nothing
exit "$FAILS"
