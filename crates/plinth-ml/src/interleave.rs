//! Interleaving: comparing two rankers on the same units, each unit shown
//! one list that merges both, and its clicks credited to the ranker that
//! contributed the clicked item.
//!
//! The merge is team-draft interleaving (Radlinski, Kurup & Joachims, "How
//! does clickthrough data reflect retrieval quality?", CIKM 2008): the two
//! rankers take turns as captains picking their best item not yet in the
//! list; whoever has picked fewer goes next, a coin decides ties. Each item
//! remembers its team. A unit prefers the ranker whose items it clicked more;
//! the analysis is the mean of the per-unit preference (+1 for the
//! challenger, −1 for the control, 0 for a tie) over units with at least
//! one credited click, with the intervals of [`crate::abtest`] — the
//! Δ_AB statistic of Chapelle, Joachims, Radlinski & Yue ("Large-scale
//! validation and analysis of interleaved search evaluation", TOIS 2012), a
//! difference of win shares.

use std::collections::HashSet;
use std::hash::Hash;

use serde::Serialize;

use crate::abtest::{self, Moments, Plan};

/// Which ranker contributed an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Team {
    /// The control (the deployment's first variant).
    A,
    /// The challenger.
    B,
}

/// Merges `a` and `b` (each best first) into at most `k` distinct items by
/// team draft; `coin(round)` says whether `A` picks first when both have
/// picked as many (a fair coin per round, seeded by the caller so a request
/// can be replayed).
pub fn team_draft<T: Clone + Eq + Hash>(
    a: &[T],
    b: &[T],
    k: usize,
    mut coin: impl FnMut(usize) -> bool,
) -> Vec<(T, Team)> {
    let mut out: Vec<(T, Team)> = Vec::with_capacity(k);
    let mut taken: HashSet<&T> = HashSet::with_capacity(2 * k);
    let (mut next_a, mut next_b) = (0, 0);
    let (mut picks_a, mut picks_b) = (0usize, 0usize);
    let mut round = 0;
    while out.len() < k {
        while next_a < a.len() && taken.contains(&a[next_a]) {
            next_a += 1;
        }
        while next_b < b.len() && taken.contains(&b[next_b]) {
            next_b += 1;
        }
        let (a_left, b_left) = (next_a < a.len(), next_b < b.len());
        let a_turn = match (a_left, b_left) {
            (false, false) => break,
            (true, false) => true,
            (false, true) => false,
            (true, true) if picks_a == picks_b => {
                round += 1;
                coin(round - 1)
            }
            (true, true) => picks_a < picks_b,
        };
        if a_turn {
            taken.insert(&a[next_a]);
            out.push((a[next_a].clone(), Team::A));
            picks_a += 1;
        } else {
            taken.insert(&b[next_b]);
            out.push((b[next_b].clone(), Team::B));
            picks_b += 1;
        }
    }
    out
}

/// The interleaving experiment's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Preference {
    /// Units with at least one credited click.
    pub units: u64,
    #[serde(rename = "control_wins")]
    pub a_wins: u64,
    #[serde(rename = "challenger_wins")]
    pub b_wins: u64,
    pub ties: u64,
    /// Mean preference for B: (B wins − A wins) / units, in [−1, 1].
    pub mean: Option<f64>,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
    /// The interval excludes 0.
    pub significant: bool,
    pub note: Option<String>,
}

/// The preference of units, each given as its credits `(to A, to B)`; units
/// without credit do not count.
pub fn preference(credits: impl IntoIterator<Item = (f64, f64)>, plan: &Plan) -> Preference {
    let (mut a_wins, mut b_wins, mut ties) = (0u64, 0u64, 0u64);
    let rows: Vec<[f64; 4]> = credits
        .into_iter()
        .filter(|(a, b)| a + b > 0.0)
        .map(|(a, b)| {
            let s = if b > a {
                b_wins += 1;
                1.0
            } else if a > b {
                a_wins += 1;
                -1.0
            } else {
                ties += 1;
                0.0
            };
            [s, 1.0, 0.0, 1.0]
        })
        .collect();
    let m = Moments::of(rows);
    let plan = Plan { cuped: false, ..*plan };
    let s = abtest::summarize(&m, &plan);
    let significant = s.ci_low.is_some_and(|l| l > 0.0) || s.ci_high.is_some_and(|h| h < 0.0);
    Preference {
        units: a_wins + b_wins + ties,
        a_wins,
        b_wins,
        ties,
        mean: s.mean,
        ci_low: s.ci_low,
        ci_high: s.ci_high,
        significant,
        note: s.note,
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    use super::*;
    use crate::abtest::Mode;

    #[test]
    fn team_draft_takes_turns_and_never_repeats() {
        let a = ["1", "2", "3", "4"];
        let b = ["2", "5", "1", "6"];
        // A picks first in every tie.
        let merged = team_draft(&a, &b, 6, |_| true);
        assert_eq!(
            merged,
            [("1", Team::A), ("2", Team::B), ("3", Team::A), ("5", Team::B), ("4", Team::A), ("6", Team::B)]
        );
        let merged = team_draft(&a, &b, 3, |_| false);
        assert_eq!(merged, [("2", Team::B), ("1", Team::A), ("5", Team::B)]);
        // A list that runs out leaves the rest to the other.
        assert_eq!(team_draft(&["x"], &["x", "y", "z"], 5, |_| true), [("x", Team::A), ("y", Team::B), ("z", Team::B)]);
        assert!(team_draft::<&str>(&[], &[], 3, |_| true).is_empty());
    }

    #[test]
    fn preference_counts_wins_and_says_when_there_is_too_little() {
        let p = preference([(2.0, 0.0), (0.0, 1.0), (1.0, 1.0), (0.0, 0.0), (0.0, 3.0)], &Plan::default());
        assert_eq!((p.units, p.a_wins, p.b_wins, p.ties), (4, 1, 2, 1));
        assert_eq!(p.mean, Some(0.25));
        assert!(!p.significant);
        let none = preference([(0.0, 0.0)], &Plan::default());
        assert_eq!((none.units, none.mean), (0, None));
        assert!(none.note.is_some());
    }

    /// Simulated users over items of geometrically falling relevance:
    /// ranker A shows the ten most relevant in order, ranker B (weaker) every
    /// other one of the top twenty. Users differ as real ones do: in how
    /// often they come (sessions heavy-tailed, 1 + ⌊e^{2z}⌋, at most 200)
    /// and how readily they click; in each session they click down a
    /// position-biased list. For a number of units, the share of 100
    /// experiments that pick A at the 5% level: by interleaving (the
    /// preference) and by an A/B test on clicks per unit (Welch).
    fn power(units: usize, interleaved: bool, seed: u64) -> f64 {
        const K: usize = 10;
        let mut rng = StdRng::seed_from_u64(seed);
        // Item i is the i-th most relevant: clicked, once examined, with probability 0.5 × 0.9^i.
        let relevance: Vec<f64> = (0..4 * K).map(|i| 0.5 * 0.9f64.powi(i as i32)).collect();
        let a: Vec<usize> = (0..K).collect();
        let b: Vec<usize> = (0..2 * K).step_by(2).collect();
        let plan = Plan { mode: Mode::Fixed, ..Plan::default() };
        let experiments = 100;
        let mut picked_a = 0;
        for _ in 0..experiments {
            let mut credits = Vec::with_capacity(units);
            let mut per_variant = [Vec::new(), Vec::new()];
            for u in 0..units {
                // Box–Muller for z.
                let z = (-2.0 * (1.0 - rng.random::<f64>()).ln()).sqrt()
                    * (std::f64::consts::TAU * rng.random::<f64>()).cos();
                let sessions = (1.0 + (2.0 * z).exp().floor()).min(200.0) as usize;
                let appetite = 0.2 + 1.6 * rng.random::<f64>();
                // Clicked positions: examined with probability 1/(position+1), then clicked by relevance × appetite.
                let clicks = |list: &[usize], rng: &mut StdRng| -> Vec<bool> {
                    list.iter()
                        .enumerate()
                        .map(|(p, &i)| {
                            rng.random::<f64>() < 1.0 / (p as f64 + 1.0)
                                && rng.random::<f64>() < relevance[i] * appetite
                        })
                        .collect()
                };
                if interleaved {
                    let (mut to_a, mut to_b) = (0.0, 0.0);
                    for _ in 0..sessions {
                        let merged = team_draft(&a, &b, K, |_| rng.random::<f64>() < 0.5);
                        let items: Vec<usize> = merged.iter().map(|(i, _)| *i).collect();
                        for ((_, team), clicked) in merged.iter().zip(clicks(&items, &mut rng)) {
                            match (team, clicked) {
                                (Team::A, true) => to_a += 1.0,
                                (Team::B, true) => to_b += 1.0,
                                _ => {}
                            }
                        }
                    }
                    credits.push((to_a, to_b));
                } else {
                    let list = if u % 2 == 0 { &a } else { &b };
                    let n: usize = (0..sessions).map(|_| clicks(list, &mut rng).iter().filter(|c| **c).count()).sum();
                    per_variant[u % 2].push([n as f64, 1.0, 0.0, 1.0]);
                }
            }
            picked_a += usize::from(if interleaved {
                preference(credits, &plan).ci_high.is_some_and(|h| h < 0.0)
            } else {
                let [ma, mb] = per_variant.map(Moments::of);
                abtest::lift(&ma, &mb, &plan).absolute_high.is_some_and(|h| h < 0.0)
            });
        }
        picked_a as f64 / experiments as f64
    }

    /// The smallest number of units (of a doubling grid) that picks the better ranker in at least 80% of experiments.
    fn units_needed(interleaved: bool) -> usize {
        let mut units = 50;
        while units <= 100_000 {
            if power(units, interleaved, 11) >= 0.8 {
                return units;
            }
            units *= 2;
        }
        usize::MAX
    }

    #[test]
    fn interleaving_needs_far_fewer_units_than_an_ab_test() {
        let interleaving = units_needed(true);
        let ab = units_needed(false);
        let ratio = ab as f64 / interleaving as f64;
        println!("units for 80% power: interleaving {interleaving}, A/B {ab} (ratio {ratio:.0}x)");
        assert!(interleaving < usize::MAX && ab < usize::MAX, "both reach a decision");
        assert!(ratio >= 10.0, "interleaving {interleaving} units, A/B {ab}");
    }
}
