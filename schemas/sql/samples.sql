-- CPU samples (profile): one row per sample with its folded stack, `comm;user;kernel` root
-- first; COUNT(*) GROUP BY folded is `flightrec-analyze profile --folded`.
CREATE VIEW samples AS
WITH tasks1 AS (
    SELECT capture, segment, tid, MAX(comm) AS comm
    FROM tasks GROUP BY capture, segment, tid
)
SELECT p.host, p.boot_id, p.capture, p.segment, p.time, p.ts, p.cpu, p.tid, p.tgid AS pid,
       COALESCE(t.comm, '[unknown]') AS comm, p.kstack, p.ustack,
       COALESCE(t.comm, '[unknown]') || COALESCE(';' || u.folded, '')
           || COALESCE(';' || k.folded, '') AS folded
FROM profile p
LEFT JOIN tasks1 t ON t.capture = p.capture AND t.segment = p.segment AND t.tid = p.tid
LEFT JOIN stacks u ON u.capture = p.capture AND u.segment = p.segment AND u.stack_id = p.ustack
LEFT JOIN stacks k ON k.capture = p.capture AND k.segment = p.segment AND k.stack_id = p.kstack;
