//! The texts the Ignition config writes: the Quadlet unit, the Docker-engine unit, the module
//! list. Each is a pure function of the image reference.

/// The Podman Quadlet unit (podman-systemd.unit(5)); Quadlet's generator turns
/// `/etc/containers/systemd/ovs-appliance.container` into `ovs-appliance.service` at boot.
pub fn quadlet(image: &str) -> String {
    format!(
        "\
# ovs-appliance under Podman. Quadlet turns this file into ovs-appliance.service.
[Unit]
Description=Open vSwitch appliance (ovs-appliance)
Wants=network-online.target
After=network-online.target systemd-modules-load.service

[Container]
Image={image}
ContainerName=ovs-appliance
# OVS switches the host's own interfaces.
Network=host
# NET_ADMIN: bridges, ports and devices. SYS_MODULE: load openvswitch if the host has not.
# SYS_NICE: the daemons at nice -10. NET_RAW: system and veth ports (Podman drops it by default).
AddCapability=NET_ADMIN SYS_MODULE SYS_NICE NET_RAW
# Tap devices of the userspace datapath, the fallback when the kernel module is missing.
AddDevice=/dev/net/tun
# The OVS database (conf.db, system-id.conf) outlives the container in this named volume.
Volume=ovs-appliance-db:/etc/openvswitch
Volume=/etc/ovs-appliance:/etc/ovs-appliance:ro
Volume=/lib/modules:/lib/modules:ro
# The host variables a config may name (${{NODE_IP}}, ${{NODE_NAME}}), so one config serves every
# host: NODE_NAME is the host's name; NODE_IP comes from /etc/ovs-appliance/environment
# (NODE_IP=..., written per host; optional) and is passed only when set.
Environment=NODE_NAME=%H
PodmanArgs=--env NODE_IP
# SELinux's container_t may refuse the datapath's netlink family and the tap devices; holding
# SYS_MODULE and the host's network, the container gains little from it, so it runs unconfined.
SecurityLabelDisable=true
HealthCmd=/usr/local/bin/ovs-appliance healthcheck
HealthInterval=10s
HealthTimeout=3s
HealthRetries=3
HealthStartPeriod=30s
# systemd counts the service started once the health check passes, not when the container
# starts (Podman 5; Fedora CoreOS ships it).
Notify=healthy

[Service]
EnvironmentFile=-/etc/ovs-appliance/environment
Restart=always
# The first start pulls the image.
TimeoutStartSec=900

[Install]
WantedBy=multi-user.target
"
    )
}

/// The same container under the Docker engine: installed, not enabled.
pub fn docker(image: &str) -> String {
    format!(
        "\
# ovs-appliance under the Docker engine, the alternative to the Podman Quadlet unit
# ovs-appliance.service (the two conflict). To switch: remove
# /etc/containers/systemd/ovs-appliance.container, then
# systemctl enable --now ovs-appliance-docker.service
[Unit]
Description=Open vSwitch appliance (ovs-appliance) under Docker
Requires=docker.service
Wants=network-online.target
After=docker.service network-online.target systemd-modules-load.service
Conflicts=ovs-appliance.service

[Service]
# NODE_IP=... for a config that names ${{NODE_IP}} (optional; NODE_NAME is the host's name)
EnvironmentFile=-/etc/ovs-appliance/environment
ExecStartPre=-/usr/bin/docker rm --force ovs-appliance
ExecStart=/usr/bin/docker run --rm --name ovs-appliance --net host \\
  --cap-add NET_ADMIN --cap-add SYS_MODULE --cap-add SYS_NICE --device /dev/net/tun \\
  --security-opt label=disable \\
  --env NODE_NAME=%H --env NODE_IP \\
  -v ovs-appliance-db:/etc/openvswitch \\
  -v /etc/ovs-appliance:/etc/ovs-appliance:ro \\
  -v /lib/modules:/lib/modules:ro \\
  {image}
ExecStop=/usr/bin/docker stop ovs-appliance
Restart=always
TimeoutStartSec=900

[Install]
WantedBy=multi-user.target
"
    )
}

/// systemd-modules-load reads this at boot: the kernel datapath is there before the container
/// starts, so it needs neither SYS_MODULE nor /lib/modules in the common case.
pub fn modules_load() -> String {
    "# The Open vSwitch kernel datapath, loaded at boot for ovs-appliance.\nopenvswitch\n".into()
}
