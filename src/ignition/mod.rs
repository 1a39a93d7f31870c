//! The Ignition config (spec 3.5.0) that provisions a Fedora CoreOS host with the appliance, from
//! a config file and an image reference: the Podman Quadlet unit (the primary runner), the
//! Docker-engine unit (installed, not enabled), the module list and the config file itself.
//!
//! Owns text only: it reads no file and touches no host. `ignition/ovs-appliance.bu` is the
//! Butane source of the same output; a test keeps the two equal.

pub mod dataurl;
mod units;

use crate::config::{self, Config};
use serde::Serialize;
use std::path::Path;

/// The Ignition spec version written; Butane's fcos 1.6.0 variant produces it.
pub const IGNITION_VERSION: &str = "3.5.0";
/// Where Quadlet looks for system containers.
pub const QUADLET_PATH: &str = "/etc/containers/systemd/ovs-appliance.container";
/// The appliance's default config path (see `config::DEFAULT_PATH`), mounted read-only.
pub const CONFIG_PATH: &str = config::DEFAULT_PATH;
pub const MODULES_LOAD_PATH: &str = "/etc/modules-load.d/openvswitch.conf";
pub const DOCKER_UNIT: &str = "ovs-appliance-docker.service";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid image reference {0:?}: expected registry/name[:tag][@digest] without spaces")]
    Image(String),
    #[error(transparent)]
    Config(#[from] config::Error),
}

/// One file Ignition writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub path: &'static str,
    pub mode: u32,
    pub contents: String,
}

/// One systemd unit Ignition writes, not enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub name: &'static str,
    pub contents: String,
}

/// Everything the host gets, before encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provision {
    pub files: Vec<File>,
    pub units: Vec<Unit>,
}

/// What `config_toml` and `image` provision. The config is validated first (an invalid one
/// would only fail on the host, at boot), as a host will read it: `${NODE_IP}` and
/// `${NODE_NAME}` with stand-ins (the units pass the host's own), any other variable from its
/// default; then it is embedded byte for byte.
pub fn provision(config_toml: &str, origin: &Path, image: &str) -> Result<Provision, Error> {
    Config::from_toml_with(config_toml, origin, &crate::config::host_stand_in)?;
    check_image(image)?;
    Ok(Provision {
        files: vec![
            File {
                path: QUADLET_PATH,
                mode: 0o644,
                contents: units::quadlet(image),
            },
            File {
                path: MODULES_LOAD_PATH,
                mode: 0o644,
                contents: units::modules_load(),
            },
            File {
                path: CONFIG_PATH,
                mode: 0o644,
                contents: config_toml.to_string(),
            },
        ],
        units: vec![Unit {
            name: DOCKER_UNIT,
            contents: units::docker(image),
        }],
    })
}

/// The reference lands in unit files: a space or newline would split or add directives.
pub(crate) fn check_image(image: &str) -> Result<(), Error> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._-/:@".contains(c);
    if image.is_empty() || !image.chars().all(allowed) || image.starts_with(['-', '/', ':']) {
        return Err(Error::Image(image.to_string()));
    }
    Ok(())
}

/// The Ignition JSON, pretty-printed with a final newline.
pub fn render(provision: &Provision) -> String {
    let doc = Document {
        ignition: Header {
            version: IGNITION_VERSION,
        },
        storage: Storage {
            files: provision
                .files
                .iter()
                .map(|f| FileNode {
                    path: f.path,
                    contents: Resource {
                        source: dataurl::encode(f.contents.as_bytes()),
                    },
                    mode: f.mode,
                })
                .collect(),
        },
        systemd: Systemd {
            units: provision
                .units
                .iter()
                .map(|u| UnitNode {
                    contents: &u.contents,
                    name: u.name,
                })
                .collect(),
        },
    };
    let mut text = serde_json::to_string_pretty(&doc).expect("plain structs serialize");
    text.push('\n');
    text
}

// The Ignition document, fields in the order Butane writes them.
#[derive(Serialize)]
struct Document<'a> {
    ignition: Header,
    storage: Storage,
    systemd: Systemd<'a>,
}

#[derive(Serialize)]
struct Header {
    version: &'static str,
}

#[derive(Serialize)]
struct Storage {
    files: Vec<FileNode>,
}

#[derive(Serialize)]
struct FileNode {
    path: &'static str,
    contents: Resource,
    mode: u32,
}

#[derive(Serialize)]
struct Resource {
    source: String,
}

#[derive(Serialize)]
struct Systemd<'a> {
    units: Vec<UnitNode<'a>>,
}

#[derive(Serialize)]
struct UnitNode<'a> {
    contents: &'a str,
    name: &'static str,
}

#[cfg(test)]
mod tests;
