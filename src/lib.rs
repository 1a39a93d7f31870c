//! ovs-appliance: a containerized Open vSwitch host appliance.
//!
//! Data flows one way: config -> preflight -> supervisor -> (reconcile) -> (metrics).

pub mod ovsdb;
pub mod unixctl;
