#!/usr/bin/env bash
# The launcher people write by hand, the baseline of benches/supervisor.rs: the steps of OVS's own
# "Starting Open vSwitch" instructions (create the database, start ovsdb-server, `ovs-vsctl
# --no-wait init`, start ovs-vswitchd), both daemons detached. The daemon flags are the ones the
# appliance and ovs-ctl pass (--mlockall, nice -10, the db: remotes), and the Open_vSwitch row gets
# the key the appliance stamps on the netdev datapath (userspace-tso-enable=true, its default),
# which vswitchd reads only at start (with 100 taps it makes vswitchd lock ~4x the memory); so the
# launcher is all that differs.
#
# Usage: hand-launch.sh RUN_DIR DB_DIR (absolute paths), inside the network namespace that the
# instance owns (`ip netns exec NAME bash hand-launch.sh ...`).
set -euo pipefail

run=$1
db=$2
export OVS_RUNDIR=$run OVS_DBDIR=$db OVS_LOGDIR=$run

ovsdb-tool create "$db/conf.db" /usr/share/openvswitch/vswitch.ovsschema
nice -n -10 ovsdb-server "$db/conf.db" \
  --remote="punix:$run/db.sock" \
  --remote=db:Open_vSwitch,Open_vSwitch,manager_options \
  --private-key=db:Open_vSwitch,SSL,private_key \
  --certificate=db:Open_vSwitch,SSL,certificate \
  --bootstrap-ca-cert=db:Open_vSwitch,SSL,ca_cert \
  --pidfile="$run/ovsdb-server.pid" --detach --no-chdir --log-file="$run/ovsdb-server.log"
ovs-vsctl --db="unix:$run/db.sock" --no-wait init \
  -- set Open_vSwitch . other_config:userspace-tso-enable=true
# Keep this argv in step with `vswitchd_by_hand` in supervisor/instance.rs (the respawn).
nice -n -10 ovs-vswitchd "unix:$run/db.sock" --mlockall \
  --pidfile="$run/ovs-vswitchd.pid" --detach --no-chdir --log-file="$run/ovs-vswitchd.log"
