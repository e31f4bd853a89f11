//! Per-plugin metrics, read from the plugin host's counters
//! ([`outpost_plugin_host::PluginStats`]) at scrape time.

use outpost_plugin_host::{CALL_TIME_BUCKETS, PluginInfo, StatsSnapshot};

use super::{write_header, write_labelled};

/// A per-plugin counter: its name, its help, and where it is in a snapshot.
type Counter = (&'static str, &'static str, fn(&StatsSnapshot) -> u64);

/// Renders the loaded plugins' counters in the Prometheus text format, one labelled
/// sample per plugin (`plugin="name"`), for `/metrics` beside [`super::Metrics::render`].
/// Writes nothing when no plugin is loaded.
///
/// - `outpost_plugin_info{plugin,hook,version,on_error}` (gauge, always 1)
/// - `outpost_plugin_calls_total{plugin}`
/// - `outpost_plugin_failures_total{plugin,kind}`: `timeout`, `out_of_memory`,
///   `stack_overflow`, `trap`, `invalid_output`
/// - `outpost_plugin_rebuilds_total{plugin}`: instances rebuilt after a trap
/// - `outpost_plugin_instances_built_on_demand_total{plugin}`: instances a query had
///   to wait for, because every pre-built one was busy
/// - `outpost_plugin_call_seconds{plugin}` (histogram): time per call
/// - `outpost_plugin_retries_total{plugin}`: calls let through to a disabled plugin
///   after its backoff, to see whether it recovered
/// - `outpost_plugin_disabled{plugin}` (gauge): 1 while the plugin is disabled after
///   repeated failures
pub fn render_plugins(out: &mut String, plugins: &[PluginInfo]) {
    if plugins.is_empty() {
        return;
    }
    let snapshots: Vec<(&str, StatsSnapshot)> = plugins
        .iter()
        .map(|plugin| (&*plugin.name, plugin.stats.snapshot()))
        .collect();
    render_info(out, plugins);
    render_counters(out, &snapshots);
    render_call_times(out, &snapshots);
}

/// `outpost_plugin_info`: one sample of 1 per plugin, its facts as labels.
fn render_info(out: &mut String, plugins: &[PluginInfo]) {
    let name = "outpost_plugin_info";
    write_header(
        out,
        name,
        "gauge",
        "A loaded plugin: its hook, version and failure mode.",
    );
    for plugin in plugins {
        let version = plugin.version.to_string();
        let labels = [
            ("plugin", &*plugin.name),
            ("hook", plugin.hook.world()),
            ("version", version.as_str()),
            ("on_error", plugin.on_error.as_str()),
        ];
        write_labelled(out, name, &labels, 1);
    }
}

/// The counters per plugin, the failures by kind, and the disabled gauge.
fn render_counters(out: &mut String, snapshots: &[(&str, StatsSnapshot)]) {
    let counters: [Counter; 5] = [
        (
            "outpost_plugin_calls_total",
            "Calls of a plugin's hook (decide or transform), failed ones included.",
            |stats| stats.calls,
        ),
        (
            "outpost_plugin_rebuilds_total",
            "Plugin instances rebuilt (init run again) after a trap.",
            |stats| stats.rebuilds,
        ),
        (
            "outpost_plugin_instances_built_on_demand_total",
            "Plugin instances built while a query waited, every pre-built one being busy.",
            |stats| stats.instances_built_on_demand,
        ),
        (
            "outpost_plugin_memo_hits_total",
            "Queries a plugin that declared memoizable verdicts answered from a remembered one, without a call.",
            |stats| stats.memo_hits,
        ),
        (
            "outpost_plugin_retries_total",
            "Calls let through to a plugin disabled after repeated failures, once its backoff passed, to see whether it recovered.",
            |stats| stats.retries,
        ),
    ];
    for (name, help, value) in counters {
        write_header(out, name, "counter", help);
        for (plugin, stats) in snapshots {
            write_labelled(out, name, &[("plugin", plugin)], value(stats));
        }
    }

    let name = "outpost_plugin_failures_total";
    write_header(
        out,
        name,
        "counter",
        "Failed plugin calls, by kind of failure.",
    );
    for (plugin, stats) in snapshots {
        for (kind, value) in [
            ("timeout", stats.timeouts),
            ("out_of_memory", stats.out_of_memory),
            ("stack_overflow", stats.stack_overflows),
            ("trap", stats.traps),
            ("invalid_output", stats.invalid_outputs),
        ] {
            write_labelled(out, name, &[("plugin", plugin), ("kind", kind)], value);
        }
    }

    let name = "outpost_plugin_disabled";
    write_header(
        out,
        name,
        "gauge",
        "1 while a plugin is disabled after repeated failures (retried after a backoff, or until it is updated).",
    );
    for (plugin, stats) in snapshots {
        let disabled = u8::from(stats.disabled.is_some());
        write_labelled(out, name, &[("plugin", plugin)], disabled);
    }
}

/// `outpost_plugin_call_seconds`: a histogram per plugin.
fn render_call_times(out: &mut String, snapshots: &[(&str, StatsSnapshot)]) {
    let name = "outpost_plugin_call_seconds";
    write_header(out, name, "histogram", "Time per plugin call.");
    for (plugin, stats) in snapshots {
        let mut cumulative = 0;
        for (bound, count) in CALL_TIME_BUCKETS.iter().zip(&stats.time_histogram) {
            cumulative += count;
            let le = bound.as_secs_f64().to_string();
            let labels = [("plugin", *plugin), ("le", le.as_str())];
            write_labelled(
                out,
                "outpost_plugin_call_seconds_bucket",
                &labels,
                cumulative,
            );
        }
        let count: u64 = stats.time_histogram.iter().sum();
        let labels = [("plugin", *plugin), ("le", "+Inf")];
        write_labelled(out, "outpost_plugin_call_seconds_bucket", &labels, count);
        let labels = [("plugin", *plugin)];
        let sum = stats.total_time.as_secs_f64();
        write_labelled(out, "outpost_plugin_call_seconds_sum", &labels, sum);
        write_labelled(out, "outpost_plugin_call_seconds_count", &labels, count);
    }
}
