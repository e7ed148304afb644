-- Block I/O latency (biolatency, biosnoop): one row per request, from its issue to the next
-- completion of the same (device, sector). A completion with no issue before it is not counted;
-- on equal timestamps a completion comes before an issue. tid/pid are the issuer's: the task that
-- dispatched the request, which under load can be a kworker rather than the submitter.
CREATE VIEW block_latency AS
WITH ev AS (
    SELECT host, boot_id, capture, segment, dev, sector, ts, time, tid, tgid, disk, rwbs, bytes,
           error, CASE WHEN event = 'issue' THEN 1 ELSE 0 END AS is_open
    FROM block
), paired AS (
    SELECT host, boot_id, capture, dev, sector, disk, ts, error, is_open,
           LAG(is_open) OVER w AS prev_open,
           LAG(ts) OVER w AS prev_ts,
           LAG(time) OVER w AS prev_time,
           LAG(segment) OVER w AS prev_segment,
           LAG(tid) OVER w AS prev_tid,
           LAG(tgid) OVER w AS prev_tgid,
           LAG(rwbs) OVER w AS prev_rwbs,
           LAG(bytes) OVER w AS prev_bytes
    FROM ev
    WINDOW w AS (PARTITION BY capture, dev, sector ORDER BY segment, ts, is_open)
), tasks1 AS (
    SELECT capture, segment, tid, MAX(comm) AS comm
    FROM tasks GROUP BY capture, segment, tid
)
SELECT p.host, p.boot_id, p.capture, p.prev_segment AS segment, p.disk, p.dev, p.sector,
       p.prev_rwbs AS rwbs, p.prev_bytes AS bytes, p.error, p.prev_tid AS tid,
       p.prev_tgid AS pid, COALESCE(t.comm, '[unknown]') AS comm,
       p.prev_time AS time, p.prev_ts AS ts,
       GREATEST(p.ts - p.prev_ts, 0) AS latency_ns
FROM paired p
LEFT JOIN tasks1 t ON t.capture = p.capture AND t.segment = p.prev_segment AND t.tid = p.prev_tid
WHERE p.is_open = 0 AND p.prev_open = 1;
