-- Syscall latency (syscount -L): one row per syscall, from a thread's enter to its next exit. On
-- equal timestamps an exit comes before an enter. id and name are the enter's, ret the exit's.
CREATE VIEW syscall_latency AS
WITH ev AS (
    SELECT host, boot_id, capture, segment, tid, tgid, ts, time, id, name, ret,
           CASE WHEN enter THEN 1 ELSE 0 END AS is_open
    FROM syscall
), paired AS (
    SELECT host, boot_id, capture, tid, ts, ret, is_open,
           LAG(is_open) OVER w AS prev_open,
           LAG(ts) OVER w AS prev_ts,
           LAG(time) OVER w AS prev_time,
           LAG(segment) OVER w AS prev_segment,
           LAG(tgid) OVER w AS prev_tgid,
           LAG(id) OVER w AS prev_id,
           LAG(name) OVER w AS prev_name
    FROM ev
    WINDOW w AS (PARTITION BY capture, tid ORDER BY segment, ts, is_open)
), tasks1 AS (
    SELECT capture, segment, tid, MAX(comm) AS comm
    FROM tasks GROUP BY capture, segment, tid
)
SELECT p.host, p.boot_id, p.capture, p.prev_segment AS segment, p.tid, p.prev_tgid AS pid,
       COALESCE(t.comm, '[unknown]') AS comm, p.prev_id AS id, p.prev_name AS name, p.ret,
       p.prev_time AS time, p.prev_ts AS ts,
       GREATEST(p.ts - p.prev_ts, 0) AS latency_ns
FROM paired p
LEFT JOIN tasks1 t ON t.capture = p.capture AND t.segment = p.prev_segment AND t.tid = p.tid
WHERE p.is_open = 0 AND p.prev_open = 1;
