//! ovs-appliance: a containerized Open vSwitch host appliance.
//!
//! Data flows one way: config -> preflight -> supervisor -> reconcile -> metrics.
//! `main.rs` is only the command line; everything it runs lives here.

pub mod app;
pub mod config;
pub mod ignition;
pub mod metrics;
pub mod netlink;
pub mod ovsdb;
pub mod preflight;
pub mod reconcile;
pub mod supervisor;
pub mod unixctl;
