//! Scoring requests that arrive together as one batch: a user's scores
//! against every item cost one pass over the item factors, which is memory
//! bandwidth bound, so concurrent requests share that pass
//! ([`RecModel::recommend_many`]). Worker threads (one per core) each take
//! whatever is queued, up to [`MAX_BATCH`], group it by model and answer.
//! A lone request is answered at once: batching never waits for company.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use plinth_ml::model::{Query, RecModel};
use tokio::sync::oneshot;

const MAX_BATCH: usize = 64;

struct Job {
    model: Arc<RecModel>,
    query: Query,
    reply: oneshot::Sender<Vec<(u32, f32)>>,
}

#[derive(Clone)]
pub struct Batcher {
    tx: Sender<Job>,
}

impl Batcher {
    pub fn start(workers: usize) -> std::io::Result<Batcher> {
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..workers.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new().name(format!("plinth-score-{n}")).spawn(move || work(&rx))?;
        }
        Ok(Batcher { tx })
    }

    /// Ranks on a worker, batched with whatever else is queued.
    pub async fn recommend(&self, model: Arc<RecModel>, query: Query) -> Option<Vec<(u32, f32)>> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Job { model, query, reply }).ok()?;
        answer.await.ok()
    }
}

fn work(rx: &Mutex<Receiver<Job>>) {
    loop {
        let jobs = {
            let Ok(rx) = rx.lock() else { return };
            let Ok(first) = rx.recv() else { return };
            let mut jobs = vec![first];
            while jobs.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            jobs
        };
        let mut rest = jobs;
        while let Some(first) = rest.first() {
            let model = first.model.clone();
            let (same, others): (Vec<Job>, Vec<Job>) = rest.into_iter().partition(|j| Arc::ptr_eq(&j.model, &model));
            rest = others;
            let queries: Vec<Query> = same.iter().map(|j| j.query.clone()).collect();
            metrics::histogram!("plinth_serving_batch_size").record(queries.len() as f64);
            for (job, ranked) in same.into_iter().zip(model.recommend_many(&queries)) {
                let _ = job.reply.send(ranked);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plinth_ml::model::ItemFilter;

    #[tokio::test]
    async fn answers_like_recommend() {
        use plinth_ml::als::Factors;
        use plinth_ml::csr::Csr;
        use plinth_ml::interactions::IdMap;
        use plinth_ml::model::Engine;
        let model = Arc::new(RecModel {
            algo: "als".into(),
            params: serde_json::json!({}),
            users: IdMap::from_ids(vec!["u0".into(), "u1".into()]),
            items: IdMap::from_ids(vec!["i0".into(), "i1".into(), "i2".into()]),
            popularity: vec![3.0, 2.0, 1.0],
            seen: Csr::from_triples(2, 3, vec![(0, 0, 1.0), (1, 1, 1.0)]),
            engine: Engine::Factors(Factors {
                factors: 2,
                users: vec![1.0, 0.0, 0.0, 1.0],
                items: vec![1.0, 0.0, 0.5, 0.5, 0.0, 1.0],
            }),
            scoring: None,
        });
        let b = Batcher::start(2).unwrap();
        let mut tasks = Vec::new();
        for u in [Some(0), Some(1), None] {
            let (b, m) = (b.clone(), model.clone());
            tasks.push(tokio::spawn(async move {
                let q = Query { user: u, k: 2, exclude_seen: true, filter: ItemFilter::default() };
                (u, b.recommend(m, q).await)
            }));
        }
        for t in tasks {
            let (u, got) = t.await.unwrap();
            assert_eq!(got.unwrap(), model.recommend(u, 2, true, &ItemFilter::default()));
        }
    }
}
