//! Interleaved deployments ([`TrafficMode::Interleave`]): both variants rank
//! for every unit and the answer merges their lists by team draft
//! ([`plinth_ml::interleave::team_draft`], a coin per round seeded by the
//! request id and unit, so a replayed request gets the same list), each item
//! tagged with the variant that contributed it. One exposure per unit, under
//! the variant name [`INTERLEAVED`], keeps the items shown and their rankers;
//! both variants' counters count the request. A shadow is not mirrored.
//!
//! [`TrafficMode::Interleave`]: plinth_core::deployments::TrafficMode

use std::hash::BuildHasher;
use std::sync::Arc;

use plinth_ml::interleave::{Team, team_draft};

use crate::answer::{Answered, Endpoint, RequestContext, Task};
use crate::recommend::{RankTask, Ranked, ScoredItem};
use crate::{Error, Exposure, Live, Result, Serving};

/// A ranking's item ids, best first.
fn ids(r: &Ranked) -> Vec<&str> {
    r.items.iter().map(|i| &*i.item).collect()
}

/// The variant name interleaved exposures are logged under.
pub const INTERLEAVED: &str = "interleaved";

impl Serving {
    pub(crate) async fn interleave(
        &self,
        live: &Arc<Live>,
        task: RankTask,
        ctx: &RequestContext,
    ) -> Result<Vec<Answered<Ranked>>> {
        let (this, live, ctx) = (self.clone(), live.clone(), ctx.clone());
        tokio::task::spawn_blocking(move || this.interleave_parts(&live, &task, &ctx))
            .await
            .map_err(|e| Error::Internal(format!("serving task failed: {e}")))?
    }

    fn interleave_parts(&self, live: &Live, task: &RankTask, ctx: &RequestContext) -> Result<Vec<Answered<Ranked>>> {
        let [control, challenger] = live.variants.as_slice() else {
            return Err(Error::Internal(format!(
                "deployment '{}' interleaves other than two variants",
                live.spec.name
            )));
        };
        let models = [control.model(), challenger.model()];
        let model = format!("{}/{}+{}/{}", models[0].name, models[0].version, models[1].name, models[1].version);
        let mut answers = Vec::with_capacity(task.units().len());
        for (part, unit) in task.units().iter().enumerate() {
            let ranked = [task.run(&models[0], part), task.run(&models[1], part)];
            let micros = ctx.arrived.elapsed().as_micros() as u64;
            for (slot, out) in [control, challenger].into_iter().zip(&ranked) {
                self.count(live, slot, Endpoint::Recommend, micros, out.as_ref().ok().map(|r| r.fallback.is_some()));
            }
            let mut exposure = Exposure {
                time_ms: self.now_ms(),
                deployment: live.spec.name.clone(),
                variant: INTERLEAVED.to_string(),
                model: model.clone(),
                model_version: 0,
                unit: unit.clone(),
                request_id: ctx.request_id.clone(),
                endpoint: Endpoint::Recommend.as_str().to_string(),
                latency_us: micros,
                shadow: false,
                fallback: false,
                items: Vec::new(),
                rankers: Vec::new(),
                error: false,
            };
            let [a, b] = ranked;
            let (a, b) = match (a, b) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(e), _) | (_, Err(e)) => {
                    if !e.kind().is_callers() {
                        exposure.error = true;
                        self.exposures().record(exposure);
                    }
                    return Err(e);
                }
            };
            let seed = foldhash::fast::FixedState::with_seed(0x7465_616d).hash_one((&ctx.request_id, unit));
            let coin = |round: usize| foldhash::fast::FixedState::with_seed(seed).hash_one(round) & 1 == 0;
            let merged = team_draft(&ids(&a), &ids(&b), task.k, coin);
            let items: Vec<ScoredItem> = merged
                .iter()
                .map(|(id, team)| {
                    let (list, slot) = match team {
                        Team::A => (&a, control),
                        Team::B => (&b, challenger),
                    };
                    let found = list.items.iter().find(|i| &*i.item == *id);
                    ScoredItem {
                        item: found.map_or_else(|| Arc::from(*id), |i| i.item.clone()),
                        score: found.map_or(0.0, |i| i.score),
                        ranker: Some(slot.variant.name.as_str().into()),
                    }
                })
                .collect();
            exposure.fallback = a.fallback.is_some() || b.fallback.is_some();
            exposure.items = items.iter().map(|i| i.item.clone()).collect();
            exposure.rankers = items.iter().filter_map(|i| i.ranker.as_deref().map(Arc::from)).collect();
            self.exposures().record(exposure);
            answers.push(Answered {
                variant: INTERLEAVED.to_string(),
                model: model.clone(),
                model_version: 0,
                output: Ranked { items, fallback: a.fallback.or(b.fallback) },
            });
        }
        Ok(answers)
    }
}
