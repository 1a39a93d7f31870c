//! `ignition` and `healthcheck`: the commands deployments use (Fedora CoreOS provisioning, the
//! image's HEALTHCHECK). Neither starts or talks to OVS.

use super::http_probe;
use super::Error;
use crate::{ignition, kubernetes};
use std::path::Path;
use std::time::Duration;

/// `ignition`: the Ignition JSON for `config_path` and `image` on stdout.
pub fn ignition(config_path: Option<&Path>, image: &str) -> Result<(), Error> {
    let path = config_path.ok_or_else(|| {
        Error::Usage("ignition needs the config file to embed: --config FILE".into())
    })?;
    let text = crate::config::read_file(path)?;
    let provision = ignition::provision(&text, path, image).map_err(|e| match e {
        ignition::Error::Config(e) => Error::Config(e),
        e @ ignition::Error::Image(_) => Error::Usage(e.to_string()),
    })?;
    print!("{}", ignition::render(&provision));
    Ok(())
}

/// `kubernetes`: the manifests of `part` for `config_path`, `image` and `namespace` on stdout;
/// nothing is printed unless the config is valid.
pub fn kubernetes(
    config_path: Option<&Path>,
    image: &str,
    namespace: &str,
    part: kubernetes::Part,
) -> Result<(), Error> {
    let path = config_path.ok_or_else(|| {
        Error::Usage("kubernetes needs the config file for its ConfigMap: --config FILE".into())
    })?;
    let text = crate::config::read_file(path)?;
    let manifests =
        kubernetes::render(&text, path, image, namespace, part).map_err(|e| match e {
            kubernetes::Error::Config(e) => Error::Config(e),
            e => Error::Usage(e.to_string()),
        })?;
    print!("{manifests}");
    Ok(())
}

/// `healthcheck`: exit 0 when `url` answers 200 within `timeout`, else the reason and exit 1.
pub fn healthcheck(url: &str, timeout: Duration) -> Result<(), Error> {
    let line = http_probe::probe(url, timeout).map_err(Error::Unhealthy)?;
    println!("{url}: {line}");
    Ok(())
}
