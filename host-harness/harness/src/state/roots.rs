//! Several plugins (root contexts) in one VM, as Envoy runs the plugins
//! that share a `vm_id` and code: the module, its memory, globals, streams,
//! logs and metrics are the VM's; each plugin has its own configuration,
//! plugin properties and timer. The running root's part lives in
//! [`HostState`]'s fields; the others are parked here until a callback of
//! theirs (or of one of their streams) runs.

use std::sync::Arc;
use std::time::Duration;

use super::HostState;
use crate::host::PluginConfig;
use crate::properties::Properties;

/// What one plugin of a VM has of its own.
#[derive(Debug, Default)]
pub(crate) struct RootState {
    configuration: Vec<u8>,
    properties: Properties,
    tick_period: Option<Duration>,
    next_tick: Option<Duration>,
}

impl RootState {
    /// The state of a plugin about to start with `config`.
    pub(crate) fn new(config: &PluginConfig) -> Self {
        let mut properties = Properties::new();
        properties
            .set("plugin_name", config.name.as_str())
            .set("plugin_root_id", config.root_id.as_str())
            .set("plugin_vm_id", config.vm_id.as_str());
        properties.extend(&config.properties);
        Self {
            configuration: config.configuration.clone(),
            properties,
            tick_period: None,
            next_tick: None,
        }
    }
}

impl HostState {
    /// Adds plugin `id` (a root context not yet created) with `config`.
    /// Its callout upstreams and foreign functions join the VM's, as
    /// Envoy's clusters are the same for every plugin.
    pub(crate) fn add_root(&mut self, id: u32, config: &PluginConfig) {
        self.parked.insert(id, RootState::new(config));
        let http = Arc::make_mut(&mut self.http_upstreams);
        for (k, v) in &config.http_upstreams {
            http.entry(k.clone()).or_insert_with(|| v.clone());
        }
        let grpc = Arc::make_mut(&mut self.grpc_upstreams);
        for (k, v) in &config.grpc_upstreams {
            grpc.entry(k.clone()).or_insert_with(|| v.clone());
        }
        let foreign = Arc::make_mut(&mut self.foreign);
        for (k, v) in &config.foreign {
            foreign.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }

    /// True when `id` is one of this VM's root contexts.
    pub(crate) fn is_root(&self, id: u32) -> bool {
        id == self.root_context_id || self.parked.contains_key(&id)
    }

    /// Makes plugin `id` the running one; nothing happens for an id that
    /// is not a root context of this VM.
    pub(crate) fn switch_root(&mut self, id: u32) {
        if id == self.root_context_id {
            return;
        }
        let Some(next) = self.parked.remove(&id) else {
            return;
        };
        let current = RootState {
            configuration: std::mem::replace(&mut self.plugin_configuration, next.configuration),
            properties: std::mem::replace(&mut self.properties, next.properties),
            tick_period: std::mem::replace(&mut self.tick_period, next.tick_period),
            next_tick: std::mem::replace(&mut self.next_tick, next.next_tick),
        };
        self.parked.insert(self.root_context_id, current);
        self.root_context_id = id;
    }

    /// The plugin `context` belongs to: itself for a root context, its
    /// parent for a stream.
    pub(crate) fn root_of(&self, context: u32) -> u32 {
        if self.is_root(context) {
            return context;
        }
        self.context_roots
            .get(&context)
            .copied()
            .unwrap_or(self.root_context_id)
    }

    /// Records that stream `context` was created by plugin `root`.
    pub(crate) fn bind_context(&mut self, context: u32, root: u32) {
        self.context_roots.insert(context, root);
    }

    /// The plugin whose timer falls due first, at or before `target`
    /// (the lowest id on a tie).
    pub(crate) fn next_tick_root(&self, target: Duration) -> Option<u32> {
        let active = (self.root_context_id, self.next_tick);
        std::iter::once(active)
            .chain(self.parked.iter().map(|(id, r)| (*id, r.next_tick)))
            .filter_map(|(id, next)| Some((next?, id)))
            .filter(|(next, _)| *next <= target)
            .min()
            .map(|(_, id)| id)
    }

    /// The plugin that made callout `token`, if known.
    pub(crate) fn token_root(&self, token: u32) -> Option<u32> {
        self.token_roots.get(&token).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_plugin_keeps_its_configuration_and_properties() {
        let mut s = HostState::new(PluginConfig::new().name("a").configuration("A"), 1, 0);
        s.add_root(2, &PluginConfig::new().name("b").configuration("B"));
        s.bind_context(3, 2);
        s.enter(3);
        assert_eq!(s.plugin_configuration(), b"B");
        assert_eq!(s.root_of(3), 2);
        s.enter(1);
        assert_eq!(s.plugin_configuration(), b"A");
        s.set_tick_period(10);
        s.enter(2);
        s.set_tick_period(5);
        assert_eq!(s.next_tick_root(Duration::from_millis(7)), Some(2));
        assert_eq!(s.next_tick_root(Duration::from_millis(4)), None);
        s.enter(1);
        assert_eq!(s.tick_period(), Some(Duration::from_millis(10)));
        assert!(s.is_root(2) && s.is_root(1) && !s.is_root(3));
    }
}
