//! Observability: the metric catalogue, alarms, logs.

pub mod catalogue;
pub mod dns;
pub mod event_loop;
pub mod faults;
pub mod handles;
pub mod log_writer;
pub mod logging;
pub mod otlp;
pub mod process;
pub mod request_context;
pub mod supervise;
pub mod trace_context;

use crate::config::AlertSettings;
use catalogue::{
    HTTP_400_TOLERANCE, HTTP_401_TOLERANCE, HTTP_404_TOLERANCE, HTTP_500_TOLERANCE, INVALID_CONTENT_LENGTH_TOLERANCE,
    RBAC_CREATE_VQ_PROXY_ERROR_TOLERANCE,
};

/// Publish the alert thresholds the rules compare against, per pod.
pub fn publish_tolerances(alerts: &AlertSettings) {
    let pairs = [
        (HTTP_400_TOLERANCE, alerts.http_400_tolerance),
        (HTTP_401_TOLERANCE, alerts.http_401_tolerance),
        (HTTP_404_TOLERANCE, alerts.http_404_tolerance),
        (HTTP_500_TOLERANCE, alerts.http_500_tolerance),
        (RBAC_CREATE_VQ_PROXY_ERROR_TOLERANCE, alerts.rbac_create_vq_proxy_error_tolerance),
        (INVALID_CONTENT_LENGTH_TOLERANCE, alerts.invalid_content_length_tolerance),
    ];
    for (name, value) in pairs {
        metrics::gauge!(name).set(value);
    }
}
