# Case 3: `ovs-appliance check` says whether the openvswitch module can be loaded, and leaves
# the kernel as it found it (a report must not change the host).
. /kt/lib.sh

check_reports_without_loading() {
  module_absent_or_fail || return 1
  local mode out rc
  for mode in auto system; do
    app_init "check-$mode" "$mode" 9510 </dev/null
    local before after
    before=$(lsmod_ovs)
    out=$("$BIN" check --config "$(dir_of "check-$mode")/config.toml" 2>&1)
    rc=$?
    after=$(lsmod_ovs)
    echo "--- check, datapath = $mode: rc=$rc lsmod before=$before after=$after"
    echo "$out"
    expect "check (datapath = $mode) exited $rc: $(echo "$out" | tail -n 1)" [ "$rc" -eq 0 ] || return 1
    expect "check (datapath = $mode) loaded the module (lsmod: $before -> $after)" \
      [ "$after" = absent ] || return 1
    expect "check (datapath = $mode) does not say the module is loadable: $(echo "$out" | grep -i datapath | head -n 1)" \
      grep -qi 'loadable' <<<"$out" || return 1
  done
  DETAIL="lsmod before/after: absent/absent; says: $(grep -i 'datapath system' <<<"$out" | head -n 1)"
}

check_without_sys_module() {
  module_absent_or_fail || return 1
  app_init check-nocap system 9511 </dev/null
  local out rc
  out=$(setpriv --bounding-set -sys_module --inh-caps -all -- \
    "$BIN" check --config "$(dir_of check-nocap)/config.toml" 2>&1)
  rc=$?
  echo "$out"
  expect "check without CAP_SYS_MODULE exited $rc, not 77" [ "$rc" -eq 77 ] || return 1
  expect "check without CAP_SYS_MODULE does not name --cap-add SYS_MODULE" \
    grep -q -- '--cap-add SYS_MODULE' <<<"$out" || return 1
  expect "check without CAP_SYS_MODULE loaded the module" [ "$(lsmod_ovs)" = absent ] || return 1
  DETAIL="exit 77, names --cap-add SYS_MODULE, module still absent"
}

subcase check-does-not-load-module check_reports_without_loading
subcase check-without-sys-module-77 check_without_sys_module
exit "$FAILS"
