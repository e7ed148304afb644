//! The rolling window: which segments to delete so the capture stays inside its time span and size.
use flightrec_schemas::SegmentMeta;

/// Ids of the segments to evict, oldest first: every segment that ended before `now - window`, then
/// the oldest until the total fits in `max_bytes`. The newest segment is always kept, so a window
/// smaller than one segment still holds the latest data.
pub fn plan_eviction(
    segments: &[SegmentMeta],
    now_ns: u64,
    window_ns: u64,
    max_bytes: u64,
) -> Vec<u64> {
    let Some((_newest, older)) = segments.split_last() else {
        return Vec::new();
    };
    let cutoff = now_ns.saturating_sub(window_ns);
    let mut total: u64 = segments.iter().map(|s| s.bytes).sum();
    let mut evict = Vec::new();
    for s in older {
        if s.end_ns < cutoff || total > max_bytes {
            total -= s.bytes;
            evict.push(s.id);
        } else {
            break;
        }
    }
    evict
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(id: u64, start: u64, end: u64, bytes: u64) -> SegmentMeta {
        SegmentMeta {
            id,
            start_ns: start,
            end_ns: end,
            bytes,
            ..Default::default()
        }
    }

    #[test]
    fn evicts_by_age_oldest_first() {
        let s = [seg(1, 0, 10, 1), seg(2, 10, 20, 1), seg(3, 20, 30, 1)];
        assert_eq!(plan_eviction(&s, 30, 15, u64::MAX), vec![1]);
        assert_eq!(plan_eviction(&s, 30, 100, u64::MAX), Vec::<u64>::new());
        assert_eq!(
            plan_eviction(&s, 1000, 1, u64::MAX),
            vec![1, 2],
            "newest kept"
        );
    }

    #[test]
    fn evicts_by_size_until_it_fits() {
        let s = [seg(1, 0, 10, 50), seg(2, 10, 20, 50), seg(3, 20, 30, 50)];
        assert_eq!(plan_eviction(&s, 30, u64::MAX, 100), vec![1]);
        assert_eq!(plan_eviction(&s, 30, u64::MAX, 10), vec![1, 2]);
        assert_eq!(plan_eviction(&s, 30, u64::MAX, 150), Vec::<u64>::new());
    }

    #[test]
    fn empty_capture_evicts_nothing() {
        assert!(plan_eviction(&[], 100, 1, 1).is_empty());
    }
}
