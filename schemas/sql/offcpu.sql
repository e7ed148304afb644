-- Off-CPU time (offcputime): one row per interval a thread spent off CPU, from its switch-out to
-- its next switch-in, with the state and the stacks it left with. folded is the analyzer's
-- `comm;user frames;kernel frames`, root first; SUM(offcpu_ns) GROUP BY folded is
-- `flightrec-analyze offcpu --folded` (in ns). state is prev_state: 1 S, 2 D, 0 or 0x100 runnable.
-- Stack ids are per segment: the stacks are joined within the switch-out's segment.
CREATE VIEW offcpu AS
WITH ev AS (
    SELECT host, boot_id, capture, segment, next_tid AS tid, ts, time, 0 AS ord,
           CAST(NULL AS BIGINT) AS kstack, CAST(NULL AS BIGINT) AS ustack,
           CAST(NULL AS INT) AS tgid, CAST(NULL AS BIGINT) AS state
    FROM sched_switch WHERE next_tid > 0
    UNION ALL
    SELECT host, boot_id, capture, segment, prev_tid, ts, time, 1, kstack, ustack, prev_tgid,
           prev_state
    FROM sched_switch WHERE prev_tid > 0
), paired AS (
    SELECT host, boot_id, capture, tid, ts, ord,
           LAG(ord) OVER w AS prev_ord,
           LAG(ts) OVER w AS prev_ts,
           LAG(time) OVER w AS prev_time,
           LAG(segment) OVER w AS prev_segment,
           LAG(kstack) OVER w AS prev_kstack,
           LAG(ustack) OVER w AS prev_ustack,
           LAG(tgid) OVER w AS prev_tgid,
           LAG(state) OVER w AS prev_state
    FROM ev
    WINDOW w AS (PARTITION BY capture, tid ORDER BY segment, ts, ord)
), tasks1 AS (
    SELECT capture, segment, tid, MAX(comm) AS comm
    FROM tasks GROUP BY capture, segment, tid
)
SELECT p.host, p.boot_id, p.capture, p.prev_segment AS segment, p.tid, p.prev_tgid AS pid,
       COALESCE(t.comm, '[unknown]') AS comm, p.prev_state AS state,
       p.prev_time AS time, p.prev_ts AS ts,
       GREATEST(p.ts - p.prev_ts, 0) AS offcpu_ns,
       p.prev_kstack AS kstack, p.prev_ustack AS ustack,
       COALESCE(t.comm, '[unknown]') || COALESCE(';' || u.folded, '')
           || COALESCE(';' || k.folded, '') AS folded
FROM paired p
LEFT JOIN tasks1 t ON t.capture = p.capture AND t.segment = p.prev_segment AND t.tid = p.tid
LEFT JOIN stacks u
    ON u.capture = p.capture AND u.segment = p.prev_segment AND u.stack_id = p.prev_ustack
LEFT JOIN stacks k
    ON k.capture = p.capture AND k.segment = p.prev_segment AND k.stack_id = p.prev_kstack
WHERE p.ord = 0 AND p.prev_ord = 1;
