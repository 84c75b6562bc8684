//! The Pareto front of points that minimise two figures (area and latency).

/// For each `(x, y)`, whether it is on the Pareto front when both are
/// minimised: no other point is at least as good in both and better in one.
/// Points with a non-finite figure are never on the front and dominate nothing.
/// Equal points are all on the front (none is better than the other).
pub fn front(points: &[(f64, f64)]) -> Vec<bool> {
    let ok = |p: &(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let mut order: Vec<usize> = (0..points.len()).filter(|&i| ok(&points[i])).collect();
    // By x, then y: a point can only be dominated by one before it.
    order.sort_by(|&a, &b| {
        points[a]
            .0
            .total_cmp(&points[b].0)
            .then(points[a].1.total_cmp(&points[b].1))
    });
    let mut on = vec![false; points.len()];
    let mut best_y = f64::INFINITY;
    let mut best: Option<(f64, f64)> = None;
    for i in order {
        let p = points[i];
        let dominated = p.1 > best_y || (p.1 == best_y && best.is_some_and(|b| b != p));
        if !dominated {
            on[i] = true;
            best_y = p.1;
            best = Some(p);
        }
    }
    on
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, checked pair by pair.
    fn brute(points: &[(f64, f64)]) -> Vec<bool> {
        let ok = |p: &(f64, f64)| p.0.is_finite() && p.1.is_finite();
        points
            .iter()
            .map(|p| {
                ok(p)
                    && !points
                        .iter()
                        .any(|q| ok(q) && q.0 <= p.0 && q.1 <= p.1 && (q.0 < p.0 || q.1 < p.1))
            })
            .collect()
    }

    #[test]
    fn synthetic_set() {
        let pts = [
            (1.0, 10.0), // front: smallest area
            (2.0, 5.0),  // front
            (2.0, 6.0),  // dominated by (2, 5): same area, slower
            (3.0, 5.0),  // dominated by (2, 5): bigger, same latency
            (4.0, 1.0),  // front: fastest
            (5.0, 1.0),  // dominated by (4, 1)
            (3.5, 4.0),  // front
            (6.0, 0.5),  // front
            (2.0, 5.0),  // a tie with a front point: also on it
            (f64::NAN, 0.1),
            (0.5, f64::INFINITY),
        ];
        let want = vec![
            true, true, false, false, true, false, true, true, true, false, false,
        ];
        assert_eq!(front(&pts), want);
        assert_eq!(brute(&pts), want);
    }

    #[test]
    fn matches_the_definition_on_random_sets() {
        let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 20) as f64
        };
        for _ in 0..200 {
            let n = (next() as usize) + 1;
            let pts: Vec<(f64, f64)> = (0..n).map(|_| (next(), next())).collect();
            assert_eq!(front(&pts), brute(&pts), "{pts:?}");
        }
    }

    #[test]
    fn empty_and_single() {
        assert!(front(&[]).is_empty());
        assert_eq!(front(&[(3.0, 4.0)]), vec![true]);
    }
}
