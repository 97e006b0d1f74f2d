//! Observability: the metric catalogue, alarms, logs.

pub mod catalogue;
pub mod corr_id;
pub mod dns;
pub mod event_loop;
pub mod faults;
pub mod logging;
pub mod process;
pub mod supervise;

use crate::config::AlertSettings;

/// Publish the alert thresholds the rules compare against, per pod.
pub fn publish_tolerances(alerts: &AlertSettings) {
    let pairs = [
        ("http_400_tolerance", alerts.http_400_tolerance),
        ("http_401_tolerance", alerts.http_401_tolerance),
        ("http_404_tolerance", alerts.http_404_tolerance),
        ("http_500_tolerance", alerts.http_500_tolerance),
        ("rbac_create_vq_proxy_error_tolerance", alerts.rbac_create_vq_proxy_error_tolerance),
        ("invalid_content_length_tolerance", alerts.invalid_content_length_tolerance),
    ];
    for (name, value) in pairs {
        metrics::gauge!(name).set(value);
    }
}
