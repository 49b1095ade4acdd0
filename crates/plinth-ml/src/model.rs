//! A trained recommender and its file format.
//!
//! File format, version 1 (little-endian):
//! `b"PLINTHRM"`, `u32` version, `u64` header length, a JSON header
//! (`algo`, `params`, `factors`, `user_ids`, `item_ids`, and the length of
//! each array), then the arrays in header order: `seen_indptr: u64`,
//! `seen_indices: u32`, `seen_values: f32`, `popularity: f32`, and per engine `user_factors` +
//! `item_factors: f32` (ALS, BPR) or `sim_indptr: u64`, `sim_indices: u32`,
//! `sim_values: f32` (item kNN). Loading reads it back in one pass. A second
//! reader, in Python, ships inside each model directory (see
//! `plinth-engine/src/pyfunc/`): a change here changes it too.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use rayon::prelude::*;
use serde_json::{Value, json};

use crate::als::Factors;
use crate::csr::Csr;
use crate::interactions::IdMap;
use crate::topk::top_k;
use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"PLINTHRM";
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq)]
pub enum Engine {
    /// Dot products of user and item factors (ALS, BPR).
    Factors(Factors),
    /// Item-item similarities (row i: neighbours of item i).
    ItemKnn(Csr),
    Popularity,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecModel {
    pub algo: String,
    pub params: Value,
    pub users: IdMap,
    pub items: IdMap,
    /// Training interactions, to exclude what a user has seen.
    pub seen: Csr,
    /// Users per item; the fallback for unknown users.
    pub popularity: Vec<f32>,
    pub engine: Engine,
    /// Item factors re-laid for fast scoring; built by
    /// [`RecModel::prepare_for_serving`], not stored in the file.
    pub scoring: Option<crate::simd::ItemBlocks>,
}

/// One recommendation query for [`RecModel::recommend_many`].
#[derive(Debug, Clone)]
pub struct Query {
    pub user: Option<u32>,
    pub k: usize,
    pub exclude_seen: bool,
    pub filter: ItemFilter,
}

/// Which items a recommendation may return.
#[derive(Debug, Clone, Default)]
pub struct ItemFilter {
    /// Only these items (if given).
    pub allowed: Option<Vec<u32>>,
    /// Never these items.
    pub blocked: Vec<u32>,
}

impl RecModel {
    /// Builds what serving needs beyond the file (the blocked item layout).
    pub fn prepare_for_serving(&mut self) {
        if let Engine::Factors(fs) = &self.engine {
            self.scoring = Some(crate::simd::ItemBlocks::new(&fs.items, fs.factors));
        }
    }

    pub fn n_items(&self) -> usize {
        self.items.len()
    }

    /// Scores of every item for a known user.
    pub fn scores(&self, user: u32, out: &mut Vec<f32>) {
        out.clear();
        out.resize(self.n_items(), 0.0);
        match &self.engine {
            Engine::Factors(fs) => {
                let f = fs.factors;
                let x = &fs.users[user as usize * f..(user as usize + 1) * f];
                match &self.scoring {
                    Some(blocks) => blocks.score(x, out),
                    None => crate::simd::score_rows(&fs.items, x, out),
                }
            }
            Engine::ItemKnn(sim) => {
                let (items, weights) = self.seen.row(user as usize);
                for (&i, &w) in items.iter().zip(weights) {
                    let (nbrs, sims) = sim.row(i as usize);
                    for (&j, &s) in nbrs.iter().zip(sims) {
                        out[j as usize] += w * s;
                    }
                }
            }
            Engine::Popularity => out.copy_from_slice(&self.popularity),
        }
    }

    /// The top `k` items for `user` (an internal index, or `None` for an
    /// unknown user, who gets the most popular items).
    pub fn recommend(&self, user: Option<u32>, k: usize, exclude_seen: bool, filter: &ItemFilter) -> Vec<(u32, f32)> {
        let mut scores = Vec::new();
        match user {
            Some(u) => self.scores(u, &mut scores),
            None => scores.extend_from_slice(&self.popularity),
        }
        self.rank(scores, user, k, exclude_seen, filter)
    }

    /// Answers several queries with one pass over the item factors (what
    /// a server does with requests that arrive together: memory bandwidth,
    /// not arithmetic, bounds scoring one user against every item).
    /// Same results as calling [`RecModel::recommend`] for each.
    pub fn recommend_many(&self, queries: &[Query]) -> Vec<Vec<(u32, f32)>> {
        let mut scores: Vec<Vec<f32>> = vec![Vec::new(); queries.len()];
        match &self.engine {
            Engine::Factors(fs) if queries.iter().filter(|q| q.user.is_some()).count() > 1 => {
                let f = fs.factors;
                let known: Vec<usize> = (0..queries.len()).filter(|&i| queries[i].user.is_some()).collect();
                let xs: Vec<&[f32]> = known
                    .iter()
                    .filter_map(|&i| queries[i].user)
                    .map(|u| &fs.users[u as usize * f..(u as usize + 1) * f])
                    .collect();
                let mut block = vec![0f32; known.len() * self.n_items()];
                match &self.scoring {
                    Some(blocks) => {
                        let mut outs: Vec<&mut [f32]> = block.chunks_exact_mut(self.n_items()).collect();
                        blocks.score_many(&xs, &mut outs);
                    }
                    None => crate::simd::score_many(&fs.items, &xs, &mut block),
                }
                for (row, &i) in block.chunks_exact(self.n_items()).zip(&known) {
                    scores[i] = row.to_vec();
                }
            }
            _ => {
                for (q, s) in queries.iter().zip(scores.iter_mut()) {
                    if let Some(u) = q.user {
                        self.scores(u, s);
                    }
                }
            }
        }
        queries
            .iter()
            .zip(scores)
            .map(|(q, mut s)| {
                if q.user.is_none() {
                    s = self.popularity.clone();
                }
                self.rank(s, q.user, q.k, q.exclude_seen, &q.filter)
            })
            .collect()
    }

    fn rank(
        &self,
        scores: Vec<f32>,
        user: Option<u32>,
        k: usize,
        exclude_seen: bool,
        filter: &ItemFilter,
    ) -> Vec<(u32, f32)> {
        let seen: &[u32] = match (user, exclude_seen) {
            (Some(u), true) => self.seen.row(u as usize).0,
            _ => &[],
        };
        let mut mask = vec![false; self.n_items()];
        if let Some(allowed) = &filter.allowed {
            mask.iter_mut().for_each(|m| *m = true);
            for &i in allowed {
                if let Some(m) = mask.get_mut(i as usize) {
                    *m = false;
                }
            }
        }
        for &i in seen.iter().chain(&filter.blocked) {
            if let Some(m) = mask.get_mut(i as usize) {
                *m = true;
            }
        }
        top_k(scores.into_iter().enumerate().map(|(i, s)| (i as u32, s)), k, |i| mask[i as usize])
    }

    /// `recommend` for many users at once, in parallel.
    pub fn recommend_batch(
        &self,
        users: &[Option<u32>],
        k: usize,
        exclude_seen: bool,
        filter: &ItemFilter,
    ) -> Vec<Vec<(u32, f32)>> {
        users.par_iter().map(|u| self.recommend(*u, k, exclude_seen, filter)).collect()
    }

    /// `similar_items` for many items at once, in parallel.
    pub fn similar_items_batch(&self, items: &[u32], k: usize) -> Vec<Vec<(u32, f32)>> {
        items.par_iter().map(|i| self.similar_items(*i, k)).collect()
    }

    /// Items most similar to `item` (cosine of factors, or kNN neighbours).
    pub fn similar_items(&self, item: u32, k: usize) -> Vec<(u32, f32)> {
        match &self.engine {
            Engine::Factors(fs) => {
                let f = fs.factors;
                let row = |i: usize| &fs.items[i * f..(i + 1) * f];
                let norm = |v: &[f32]| v.iter().map(|a| a * a).sum::<f32>().sqrt();
                let target = row(item as usize);
                let tn = norm(target);
                let scores = (0..self.n_items()).map(|j| {
                    let v = row(j);
                    let d = tn * norm(v);
                    let s = if d > 0.0 { target.iter().zip(v).map(|(a, b)| a * b).sum::<f32>() / d } else { 0.0 };
                    (j as u32, s)
                });
                top_k(scores, k, |j| j == item)
            }
            Engine::ItemKnn(sim) => {
                let (nbrs, sims) = sim.row(item as usize);
                top_k(nbrs.iter().copied().zip(sims.iter().copied()), k, |_| false)
            }
            Engine::Popularity => {
                top_k(self.popularity.iter().enumerate().map(|(i, s)| (i as u32, *s)), k, |j| j == item)
            }
        }
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let mut arrays: Vec<(&str, Vec<u8>)> = vec![
            ("seen_indptr", self.seen.indptr.iter().flat_map(|v| (*v as u64).to_le_bytes()).collect()),
            ("seen_indices", u32_bytes(&self.seen.indices)),
            ("seen_values", f32_bytes(&self.seen.data)),
            ("popularity", f32_bytes(&self.popularity)),
        ];
        let (engine, factors) = match &self.engine {
            Engine::Factors(fs) => {
                arrays.push(("user_factors", f32_bytes(&fs.users)));
                arrays.push(("item_factors", f32_bytes(&fs.items)));
                ("factors", fs.factors)
            }
            Engine::ItemKnn(sim) => {
                arrays.push(("sim_indptr", sim.indptr.iter().flat_map(|v| (*v as u64).to_le_bytes()).collect()));
                arrays.push(("sim_indices", u32_bytes(&sim.indices)));
                arrays.push(("sim_values", f32_bytes(&sim.data)));
                ("item_knn", 0)
            }
            Engine::Popularity => ("popularity", 0),
        };
        let header = json!({
            "algo": self.algo,
            "engine": engine,
            "params": self.params,
            "factors": factors,
            "user_ids": self.users.ids(),
            "item_ids": self.items.ids(),
            "arrays": arrays.iter().map(|(n, b)| json!({"name": n, "bytes": b.len()})).collect::<Vec<_>>(),
        });
        let header = serde_json::to_vec(&header).map_err(|e| Error::Model(e.to_string()))?;
        let tmp = path.with_extension("tmp");
        {
            let mut w = BufWriter::new(std::fs::File::create(&tmp)?);
            w.write_all(MAGIC)?;
            w.write_all(&FORMAT_VERSION.to_le_bytes())?;
            w.write_all(&(header.len() as u64).to_le_bytes())?;
            w.write_all(&header)?;
            for (_, bytes) in &arrays {
                w.write_all(bytes)?;
            }
            w.into_inner().map_err(|e| Error::Io(e.into_error()))?.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    pub fn load(path: &Path) -> Result<RecModel> {
        Self::read_from(BufReader::new(std::fs::File::open(path)?))
            .map_err(|e| Error::Model(format!("{}: {e}", path.display())))
    }

    /// Reads a model from bytes (an artifact fetched from the store).
    pub fn from_bytes(bytes: &[u8]) -> Result<RecModel> {
        Self::read_from(bytes)
    }

    fn read_from(mut r: impl Read) -> Result<RecModel> {
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic).map_err(|_| Error::Model("not a Plinth recommender model (too short)".into()))?;
        if &magic != MAGIC {
            return Err(Error::Model("not a Plinth recommender model".into()));
        }
        let mut b4 = [0u8; 4];
        r.read_exact(&mut b4)?;
        let version = u32::from_le_bytes(b4);
        if version != FORMAT_VERSION {
            return Err(Error::Model(format!("unsupported model format version {version}")));
        }
        let mut b8 = [0u8; 8];
        r.read_exact(&mut b8)?;
        let len = u64::from_le_bytes(b8) as usize;
        if len > 1 << 32 {
            return Err(Error::Model("header too large".into()));
        }
        let mut header = Vec::new();
        (&mut r).take(len as u64).read_to_end(&mut header)?;
        if header.len() != len {
            return Err(Error::Model("truncated model header".into()));
        }
        let header: Value = serde_json::from_slice(&header).map_err(|e| Error::Model(e.to_string()))?;
        let strings = |key: &str| -> Result<Vec<String>> {
            header[key]
                .as_array()
                .ok_or_else(|| Error::Model(format!("missing {key}")))?
                .iter()
                .map(|v| v.as_str().map(str::to_string).ok_or_else(|| Error::Model(format!("bad {key}"))))
                .collect()
        };
        let users = IdMap::from_ids(strings("user_ids")?);
        let items = IdMap::from_ids(strings("item_ids")?);
        let mut arrays = std::collections::HashMap::new();
        for a in header["arrays"].as_array().ok_or_else(|| Error::Model("missing arrays".into()))? {
            let name = a["name"].as_str().ok_or_else(|| Error::Model("bad array name".into()))?.to_string();
            let bytes = a["bytes"].as_u64().ok_or_else(|| Error::Model("bad array size".into()))? as usize;
            // Grows as bytes arrive, so a lying header cannot make it allocate.
            let mut buf = Vec::new();
            (&mut r).take(bytes as u64).read_to_end(&mut buf)?;
            if buf.len() != bytes {
                return Err(Error::Model(format!("truncated model file (array {name})")));
            }
            arrays.insert(name, buf);
        }
        let take = |name: &str| arrays.get(name).ok_or_else(|| Error::Model(format!("missing array {name}")));
        let indptr = |name: &str| -> Result<Vec<usize>> {
            Ok(take(name)?
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as usize)
                .collect())
        };
        let seen = Csr {
            n_rows: users.len(),
            n_cols: items.len(),
            indptr: indptr("seen_indptr")?,
            indices: from_u32(take("seen_indices")?),
            data: from_f32(take("seen_values")?),
        };
        let engine = match header["engine"].as_str() {
            Some("factors") => Engine::Factors(Factors {
                factors: header["factors"].as_u64().unwrap_or(0) as usize,
                users: from_f32(take("user_factors")?),
                items: from_f32(take("item_factors")?),
            }),
            Some("item_knn") => Engine::ItemKnn(Csr {
                n_rows: items.len(),
                n_cols: items.len(),
                indptr: indptr("sim_indptr")?,
                indices: from_u32(take("sim_indices")?),
                data: from_f32(take("sim_values")?),
            }),
            Some("popularity") => Engine::Popularity,
            other => return Err(Error::Model(format!("unknown engine {other:?}"))),
        };
        let model = RecModel {
            algo: header["algo"].as_str().unwrap_or_default().to_string(),
            params: header["params"].clone(),
            popularity: from_f32(take("popularity")?),
            users,
            items,
            seen,
            engine,
            scoring: None,
        };
        model.validate()?;
        Ok(model)
    }

    /// Checks the shapes agree, so a damaged file fails at load, not at serving.
    fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::Model(format!("inconsistent model: {what}")));
        let (nu, ni) = (self.users.len(), self.items.len());
        if self.seen.indptr.len() != nu + 1 || self.seen.indptr.last() != Some(&self.seen.indices.len()) {
            return bad("seen matrix");
        }
        if self.seen.indices.iter().any(|&i| i as usize >= ni) || self.popularity.len() != ni {
            return bad("item indices");
        }
        match &self.engine {
            Engine::Factors(fs)
                if fs.factors == 0 || fs.users.len() != nu * fs.factors || fs.items.len() != ni * fs.factors =>
            {
                bad("factor shapes")
            }
            Engine::ItemKnn(sim)
                if sim.indptr.len() != ni + 1
                    || sim.indices.iter().any(|&i| i as usize >= ni)
                    || sim.indices.len() != sim.data.len() =>
            {
                bad("similarity matrix")
            }
            _ => Ok(()),
        }
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
fn u32_bytes(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
fn from_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}
fn from_u32(b: &[u8]) -> Vec<u32> {
    b.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interactions::IdMap;

    fn model(engine: Engine) -> RecModel {
        let seen = Csr::from_triples(2, 3, vec![(0, 0, 1.0), (1, 1, 2.0), (1, 2, 1.0)]);
        RecModel {
            algo: "test".into(),
            params: json!({"a": 1}),
            users: IdMap::from_ids(vec!["u0".into(), "u1".into()]),
            items: IdMap::from_ids(vec!["i0".into(), "i1".into(), "i2".into()]),
            popularity: vec![1.0, 1.0, 1.0],
            seen,
            engine,
            scoring: None,
        }
    }

    #[test]
    fn file_roundtrip_for_every_engine() {
        let dir = tempfile::tempdir().unwrap();
        let factors = Engine::Factors(Factors {
            factors: 2,
            users: vec![1.0, 0.0, 0.0, 1.0],
            items: vec![1.0, 0.0, 0.5, 0.5, 0.0, 1.0],
        });
        let knn = Engine::ItemKnn(Csr::from_triples(3, 3, vec![(0, 1, 0.5), (1, 0, 0.5), (2, 1, 0.2)]));
        for engine in [factors, knn, Engine::Popularity] {
            let m = model(engine);
            let path = dir.path().join("m.plinthrec");
            m.save(&path).unwrap();
            assert_eq!(RecModel::load(&path).unwrap(), m);
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(RecModel::from_bytes(&bytes).unwrap(), m);
            for cut in [4, 20, bytes.len() / 2, bytes.len() - 1] {
                assert!(RecModel::from_bytes(&bytes[..cut]).is_err(), "truncated at {cut}");
            }
        }
        std::fs::write(dir.path().join("bad"), b"not a model").unwrap();
        assert!(RecModel::load(&dir.path().join("bad")).is_err());
        let mut lying = b"PLINTHRM".to_vec();
        lying.extend(1u32.to_le_bytes());
        lying.extend(u64::MAX.to_le_bytes());
        assert!(RecModel::from_bytes(&lying).is_err(), "a huge header length is refused, not allocated");
    }

    #[test]
    fn recommend_many_matches_recommend() {
        let m = model(Engine::Factors(Factors {
            factors: 2,
            users: vec![1.0, 0.0, 0.0, 1.0],
            items: vec![1.0, 0.0, 0.5, 0.5, 0.0, 1.0],
        }));
        let queries: Vec<Query> = [Some(0), Some(1), None, Some(0)]
            .into_iter()
            .enumerate()
            .map(|(n, user)| Query {
                user,
                k: 2,
                exclude_seen: n != 3,
                filter: ItemFilter { allowed: None, blocked: if n == 1 { vec![2] } else { vec![] } },
            })
            .collect();
        let many = m.recommend_many(&queries);
        let mut served = m.clone();
        served.prepare_for_serving();
        for (q, got) in queries.iter().zip(&many) {
            assert_eq!(got, &m.recommend(q.user, q.k, q.exclude_seen, &q.filter));
            assert_eq!(got, &served.recommend(q.user, q.k, q.exclude_seen, &q.filter));
        }
    }

    #[test]
    fn recommend_excludes_seen_and_honours_filters() {
        let m = model(Engine::Factors(Factors {
            factors: 2,
            users: vec![1.0, 0.0, 0.0, 1.0],
            items: vec![1.0, 0.0, 0.5, 0.5, 0.0, 1.0],
        }));
        // User 0 likes dimension 0: item 0 (seen), then item 1, then item 2.
        let ids = |v: Vec<(u32, f32)>| v.into_iter().map(|x| x.0).collect::<Vec<_>>();
        assert_eq!(ids(m.recommend(Some(0), 3, true, &ItemFilter::default())), vec![1, 2]);
        assert_eq!(ids(m.recommend(Some(0), 3, false, &ItemFilter::default())), vec![0, 1, 2]);
        assert_eq!(
            ids(m.recommend(Some(0), 3, false, &ItemFilter { allowed: Some(vec![2]), blocked: vec![] })),
            vec![2]
        );
        assert_eq!(ids(m.recommend(Some(0), 3, false, &ItemFilter { allowed: None, blocked: vec![0] })), vec![1, 2]);
        // Unknown users get the popular items.
        assert_eq!(m.recommend(None, 2, true, &ItemFilter::default()).len(), 2);
        assert_eq!(m.recommend_batch(&[Some(0), Some(1)], 1, true, &ItemFilter::default()).len(), 2);
        assert_eq!(ids(m.similar_items(0, 1)), vec![1]);
        assert_eq!(m.similar_items_batch(&[0, 2], 1).len(), 2);
    }
}
