//! The order in which one request tries a model's targets: `ordered`, `weighted` or
//! `least_latency` (SPEC §2 `routing`).

use rand::Rng;

use crate::config::Routing;

/// What routing needs to know about a target.
pub trait Candidate {
    fn weight(&self) -> f64;
    fn latency_ms(&self) -> f64;
}

/// Indexes of `targets` in the order to try them. `unit` draws uniform numbers in [0, 1).
pub fn order<T: Candidate>(
    routing: Routing,
    targets: &[T],
    unit: &mut impl FnMut() -> f64,
) -> Vec<usize> {
    let mut indexes: Vec<usize> = (0..targets.len()).collect();
    match routing {
        Routing::Ordered => {}
        Routing::Weighted => {
            // Weighted sampling without replacement: each pick is proportional to weight.
            for slot in 0..indexes.len() {
                let total: f64 = indexes[slot..].iter().map(|&i| targets[i].weight()).sum();
                let mut point = unit() * total;
                let mut chosen = indexes.len() - 1;
                for (offset, &index) in indexes[slot..].iter().enumerate() {
                    point -= targets[index].weight();
                    if point < 0.0 {
                        chosen = slot + offset;
                        break;
                    }
                }
                indexes.swap(slot, chosen);
            }
        }
        // Stable: equal latencies (e.g. no samples yet) keep the configured order.
        Routing::LeastLatency => {
            indexes.sort_by(|&a, &b| targets[a].latency_ms().total_cmp(&targets[b].latency_ms()));
        }
    }
    indexes
}

/// Uniform numbers from the thread's random generator.
pub fn random_unit() -> impl FnMut() -> f64 {
    let mut rng = rand::rng();
    move || rng.random::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct T(f64, f64);

    impl Candidate for T {
        fn weight(&self) -> f64 {
            self.0
        }
        fn latency_ms(&self) -> f64 {
            self.1
        }
    }

    #[test]
    fn ordered_keeps_the_configured_order() {
        let targets = [T(1.0, 90.0), T(1.0, 10.0)];
        assert_eq!(order(Routing::Ordered, &targets, &mut || 0.5), [0, 1]);
    }

    #[test]
    fn least_latency_puts_the_fastest_first() {
        let targets = [T(1.0, 90.0), T(1.0, 10.0), T(1.0, 50.0)];
        assert_eq!(order(Routing::LeastLatency, &targets, &mut || 0.5), [1, 2, 0]);
    }

    #[test]
    fn weighted_picks_first_in_proportion_to_weight() {
        let targets = [T(3.0, 0.0), T(1.0, 0.0)];
        assert_eq!(order(Routing::Weighted, &targets, &mut || 0.70), [0, 1]);
        assert_eq!(order(Routing::Weighted, &targets, &mut || 0.80), [1, 0]);
        let mut unit = random_unit();
        let first_is_heavy =
            (0..4000).filter(|_| order(Routing::Weighted, &targets, &mut unit)[0] == 0).count();
        assert!((2800..3200).contains(&first_is_heavy), "{first_is_heavy} of 4000, expected ~3000");
    }
}
