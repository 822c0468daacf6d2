//! The process's resident memory, from Linux's `/proc/self/status`: what `odelt eval` and the
//! memory benchmarks report per length. Elsewhere every reading is `None`.

/// One `kB` line of /proc/self/status (`VmHWM:`, `VmRSS:`) in MB.
fn status_mb(key: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Resident memory now, MB.
pub fn current_rss_mb() -> Option<f64> {
    status_mb("VmRSS:")
}

/// Peak resident memory since the start or the last [`reset_peak_rss`], MB.
pub fn peak_rss_mb() -> Option<f64> {
    status_mb("VmHWM:")
}

/// Starts a new peak: Linux resets VmHWM to the current RSS when 5 is written to clear_refs.
pub fn reset_peak_rss() {
    // Where the file does not exist the peak is simply cumulative.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
