//! Interaction data: external ids mapped to dense indices, and events.

use std::collections::HashMap;

use crate::csr::Csr;

/// External ids (strings) ↔ dense indices, in order of first appearance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdMap {
    ids: Vec<String>,
    index: HashMap<String, u32>,
}

impl IdMap {
    pub fn from_ids(ids: Vec<String>) -> IdMap {
        let index = ids.iter().enumerate().map(|(i, s)| (s.clone(), i as u32)).collect();
        IdMap { ids, index }
    }
    pub fn intern(&mut self, id: &str) -> u32 {
        if let Some(&i) = self.index.get(id) {
            return i;
        }
        let i = self.ids.len() as u32;
        self.ids.push(id.to_string());
        self.index.insert(id.to_string(), i);
        i
    }
    pub fn get(&self, id: &str) -> Option<u32> {
        self.index.get(id).copied()
    }
    pub fn id(&self, i: u32) -> &str {
        &self.ids[i as usize]
    }
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    pub fn ids(&self) -> &[String] {
        &self.ids
    }
}

/// One (user, item) interaction. Duplicates are summed when aggregated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event {
    pub user: u32,
    pub item: u32,
    pub weight: f32,
    pub time: i64,
}

/// Events with their id maps.
#[derive(Debug, Clone, Default)]
pub struct Interactions {
    pub users: IdMap,
    pub items: IdMap,
    pub events: Vec<Event>,
}

impl Interactions {
    /// One event per (user, item): weights summed, latest time kept.
    pub fn aggregate(events: &[Event]) -> Vec<Event> {
        let mut sorted = events.to_vec();
        sorted.sort_unstable_by_key(|e| (e.user, e.item));
        let mut out: Vec<Event> = Vec::with_capacity(sorted.len());
        for e in sorted {
            match out.last_mut() {
                Some(last) if last.user == e.user && last.item == e.item => {
                    last.weight += e.weight;
                    last.time = last.time.max(e.time);
                }
                _ => out.push(e),
            }
        }
        out
    }

    /// The user×item matrix of the given events (weights summed).
    pub fn matrix(n_users: usize, n_items: usize, events: &[Event]) -> Csr {
        Csr::from_triples(n_users, n_items, events.iter().map(|e| (e.user, e.item, e.weight)).collect())
    }
}
