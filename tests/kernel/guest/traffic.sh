# Case 4: traffic on the kernel datapath, through bridges the appliance made (module not loaded
# before it started): veth system ports, an internal port's address, VLAN access and trunk
# ports (frames tagged by a host's own VLAN device), a patch pair, an LACP bond between two
# bridges, and VXLAN and Geneve tunnels between two appliances in two network namespaces.
. /kt/lib.sh

topology() {
  # br-t: two hosts on veth system ports and an internal port with an address.
  host_port ta a 10.0.0.1/24
  host_port tb b 10.0.0.2/24
  # br-v: access ports in VLAN 10 (va, vb) and 20 (vc, in the same subnet as va and vb, so
  # only the VLAN keeps them apart), and a trunk to host vt, which tags frames itself.
  host_port va va 10.10.0.1/24
  host_port vb vb 10.10.0.2/24
  host_port vc vc 10.10.0.3/24
  ip -n vc addr add 10.20.0.3/24 dev eth0
  host_port vt vt ''
  ip -n vt link add link eth0 name eth0.10 type vlan id 10
  ip -n vt link add link eth0 name eth0.20 type vlan id 20
  ip -n vt addr add 10.10.0.10/24 dev eth0.10
  ip -n vt addr add 10.20.0.10/24 dev eth0.20
  ip -n vt link set eth0.10 up
  ip -n vt link set eth0.20 up
  # br-p1 and br-p2, joined by a patch pair.
  host_port pa pa 10.30.0.1/24
  host_port pb pb 10.30.0.2/24
  # br-b1 and br-b2, joined by two veth pairs bonded with LACP on both sides.
  ip link add bd1a type veth peer name bd2a
  ip link add bd1b type veth peer name bd2b
  local l
  for l in bd1a bd2a bd1b bd2b; do ip link set "$l" up; done
  host_port qa qa 10.40.0.1/24
  host_port qb qb 10.40.0.2/24
}

bridges() {
  cat <<'TOML'
[[bridges]]
name = "br-t"
  [[bridges.ports]]
  name = "ta"
  [[bridges.ports]]
  name = "tb"
  [[bridges.ports]]
  name = "t-int"
  type = "internal"
  addresses = ["10.0.0.254/24"]

[[bridges]]
name = "br-v"
  [[bridges.ports]]
  name = "va"
  vlan = { mode = "access", tag = 10 }
  [[bridges.ports]]
  name = "vb"
  vlan = { mode = "access", tag = 10 }
  [[bridges.ports]]
  name = "vc"
  vlan = { mode = "access", tag = 20 }
  [[bridges.ports]]
  name = "vt"
  vlan = { mode = "trunk", trunks = [10, 20] }

[[bridges]]
name = "br-p1"
  [[bridges.ports]]
  name = "pa"
  [[bridges.ports]]
  name = "p1-to-p2"
  type = "patch"
  peer = "p2-to-p1"

[[bridges]]
name = "br-p2"
  [[bridges.ports]]
  name = "pb"
  [[bridges.ports]]
  name = "p2-to-p1"
  type = "patch"
  peer = "p1-to-p2"

[[bridges]]
name = "br-b1"
  [[bridges.ports]]
  name = "qa"
  [[bridges.ports]]
  name = "bond1"
  interfaces = ["bd1a", "bd1b"]
  bond_mode = "balance-tcp"
  lacp = "active"

[[bridges]]
name = "br-b2"
  [[bridges.ports]]
  name = "qb"
  [[bridges.ports]]
  name = "bond2"
  interfaces = ["bd2a", "bd2b"]
  bond_mode = "balance-tcp"
  lacp = "active"
TOML
}

start_main() {
  module_absent_or_fail || return 1
  topology
  bridges | app_init tr auto 9540
  app_start tr
  app_wait_ready tr 180 || return 1
  local b t
  for b in br-t br-v br-p1 br-p2 br-b1 br-b2; do
    t=$(dp_type tr "$b")
    expect "$b datapath_type is '$t', not system" [ "$t" = system ] || return 1
  done
  DETAIL="6 bridges, all datapath_type system, ready in ${READY_S} s"
}

veth_ping() {
  expect "a cannot ping b" ping_ok a 10.0.0.2 || return 1
  DETAIL="a -> b: 3/3"
}

veth_iperf3() {
  local mbps
  mbps=$(iperf3_mbps a b 10.0.0.2 3)
  expect "iperf3 a -> b measured nothing" [ -n "$mbps" ] || return 1
  expect "iperf3 a -> b: $mbps Mbit/s" awk -v m="$mbps" 'BEGIN { exit !(m > 0) }' || return 1
  DETAIL="a -> b TCP $mbps Mbit/s (3 s, under TCG)"
}

internal_port() {
  expect "t-int has no 10.0.0.254/24" has_addr t-int 10.0.0.254/24 || return 1
  expect "a cannot ping the internal port 10.0.0.254" ping_ok a 10.0.0.254 || return 1
  DETAIL="t-int 10.0.0.254/24 set by the appliance, answers a"
}

vlan_access() {
  expect "va cannot ping vb (both VLAN 10)" ping_ok va 10.10.0.2 || return 1
  expect "va reaches vc across VLANs 10 and 20" ping_fails va 10.10.0.3 || return 1
  DETAIL="va -> vb (10) ok; va -> vc (20, same subnet) isolated"
}

vlan_trunk() {
  expect "vt's eth0.10 (tagged 10) cannot reach va (access 10)" ping_ok vt 10.10.0.1 || return 1
  expect "vt's eth0.20 (tagged 20) cannot reach vc (access 20)" ping_ok vt 10.20.0.3 || return 1
  expect "vt's eth0.10 reaches vc (access 20)" ping_fails vt 10.10.0.3 || return 1
  DETAIL="tagged 10 -> va, tagged 20 -> vc; VLAN 20 host not reachable on 10"
}

patch_pair() {
  expect "pa (br-p1) cannot ping pb (br-p2)" ping_ok pa 10.30.0.2 || return 1
  DETAIL="pa -> pb across p1-to-p2/p2-to-p1"
}

bond_lacp() {
  local i show
  for i in $(seq 60); do
    show=$(appctl tr bond/show bond1)
    grep -q 'lacp_status: negotiated' <<<"$show" &&
      [ "$(grep -c 'member bd1.: enabled' <<<"$show")" = 2 ] && break
    sleep 0.5
  done
  echo "$show"
  expect "bond1 LACP not negotiated: $(grep lacp_status <<<"$show")" grep -q 'lacp_status: negotiated' <<<"$show" || return 1
  expect "bond1 has not both members enabled" [ "$(grep -c 'member bd1.: enabled' <<<"$show")" = 2 ] || return 1
  expect "qa (br-b1) cannot ping qb (br-b2) over the bond" ping_ok qa 10.40.0.2 || return 1
  DETAIL="lacp_status negotiated, bd1a and bd1b enabled; qa -> qb"
}

tunnel_side() {
  local ns=$1 me=$2 peer=$3 port=$4
  ns_add "$ns"
  app_init "$ns" auto "$port" <<TOML
[[bridges]]
name = "br-x"
  [[bridges.ports]]
  name = "vx"
  type = "vxlan"
  options = { remote_ip = "172.16.0.$peer", key = "100" }
  [[bridges.ports]]
  name = "x-int"
  type = "internal"
  addresses = ["192.168.50.$me/24"]
  mtu = 1400

[[bridges]]
name = "br-g"
  [[bridges.ports]]
  name = "gn"
  type = "geneve"
  options = { remote_ip = "172.16.0.$peer", key = "200" }
  [[bridges.ports]]
  name = "g-int"
  type = "internal"
  addresses = ["192.168.51.$me/24"]
  mtu = 1400
TOML
}

vxlan_tunnel() {
  tunnel_side u1 1 2 9541
  tunnel_side u2 2 1 9542
  ip -n u1 link add ul type veth peer name ul netns u2
  ip -n u1 addr add 172.16.0.1/24 dev ul
  ip -n u2 addr add 172.16.0.2/24 dev ul
  ip -n u1 link set ul up
  ip -n u2 link set ul up
  app_start u1 ip netns exec u1
  app_start u2 ip netns exec u2
  app_wait_ready u1 180 u1 || return 1
  app_wait_ready u2 180 u2 || return 1
  local show mbps
  show=$(appctl u1 dpif/show)
  echo "$show"
  expect "u1's dpif/show has no vxlan port on system@ovs-system: $show" \
    grep -q 'vx .*vxlan' <<<"$show" || return 1
  expect "u1 (192.168.50.1) cannot ping u2 (192.168.50.2) through VXLAN" ping_ok u1 192.168.50.2 || return 1
  mbps=$(iperf3_mbps u1 u2 192.168.50.2 2)
  expect "no TCP through the tunnel" [ -n "$mbps" ] || return 1
  DETAIL="two appliances, one per netns, VXLAN key 100 over a veth underlay: ping ok, TCP $mbps Mbit/s"
}

# The same two appliances also run a Geneve tunnel (br-g), beside VXLAN on its own UDP port.
geneve_tunnel() {
  local show
  show=$(appctl u2 dpif/show)
  expect "u2's dpif/show has no geneve port: $show" grep -q 'gn .*geneve' <<<"$show" || return 1
  expect "u2 (192.168.51.2) cannot ping u1 (192.168.51.1) through Geneve" ping_ok u2 192.168.51.1 || return 1
  DETAIL="Geneve key 200 beside VXLAN: u2 -> u1 ping ok"
}

subcase traffic-bridges-system start_main || true
subcase veth-ping veth_ping
subcase veth-iperf3 veth_iperf3
subcase internal-port-ping internal_port
subcase vlan-access-isolation vlan_access
subcase vlan-trunk-tagged vlan_trunk
subcase patch-pair patch_pair
subcase bond-lacp bond_lacp
subcase vxlan-tunnel vxlan_tunnel
subcase geneve-tunnel geneve_tunnel
exit "$FAILS"
