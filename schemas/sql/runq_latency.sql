-- Run-queue latency (runqlat): one row per wait for a CPU, from a wake-up, or a switch-out while
-- still runnable (prev_state 0, or TASK_REPORT_MAX 0x100: preempted, also inside the kernel), to
-- the thread's next switch-in. Pairing is the analyzer's: a switch-in closes the thread's wait
-- only when the thread's previous event opened one; of two opens in a row the later counts; on
-- equal timestamps wake-ups come first, then a switch's switch-in, then its switch-out.
-- segment, pid and comm are those of the event that opened the wait.
CREATE VIEW runq_latency AS
WITH ev AS (
    SELECT host, boot_id, capture, segment, tid, ts, time, 0 AS ord, 1 AS is_open
    FROM sched_wakeup WHERE tid > 0
    UNION ALL
    SELECT host, boot_id, capture, segment, next_tid, ts, time, 1, 0
    FROM sched_switch WHERE next_tid > 0
    UNION ALL
    SELECT host, boot_id, capture, segment, prev_tid, ts, time, 2, 1
    FROM sched_switch WHERE prev_tid > 0 AND (prev_state = 0 OR (prev_state & 256) <> 0)
), paired AS (
    SELECT host, boot_id, capture, tid, ts, is_open,
           LAG(is_open) OVER w AS prev_open,
           LAG(ts) OVER w AS prev_ts,
           LAG(time) OVER w AS prev_time,
           LAG(segment) OVER w AS prev_segment
    FROM ev
    WINDOW w AS (PARTITION BY capture, tid ORDER BY segment, ts, ord)
), tasks1 AS (
    SELECT capture, segment, tid, MAX(tgid) AS tgid, MAX(comm) AS comm
    FROM tasks GROUP BY capture, segment, tid
)
SELECT p.host, p.boot_id, p.capture, p.prev_segment AS segment, p.tid,
       COALESCE(t.tgid, p.tid) AS pid, COALESCE(t.comm, '[unknown]') AS comm,
       p.prev_time AS time, p.prev_ts AS ts,
       GREATEST(p.ts - p.prev_ts, 0) AS latency_ns
FROM paired p
LEFT JOIN tasks1 t ON t.capture = p.capture AND t.segment = p.prev_segment AND t.tid = p.tid
WHERE p.is_open = 0 AND p.prev_open = 1;
