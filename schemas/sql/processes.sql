-- Processes (execsnoop + exitsnoop): one row per process that started, exec'd or exited in the
-- capture. start_time is its fork (null if it started before the capture), exec_time its last
-- exec, end_time its exit (null if still running). status is the wait status: exit_code for a
-- normal exit, signal when a signal killed it.
CREATE VIEW processes AS
WITH ev AS (
    SELECT host, boot_id, capture, event, ts, time, comm, filename, exit_code, group_dead,
           parent_tid, CASE WHEN event = 'fork' THEN tid ELSE COALESCE(tgid, tid) END AS pid
    FROM process
), tasks1 AS (
    SELECT capture, tid, MAX(tgid) AS tgid, MAX(ppid) AS ppid, MAX(exe) AS exe, MAX(comm) AS comm
    FROM tasks GROUP BY capture, tid
), p AS (
    SELECT host, boot_id, capture, pid,
           MIN(CASE WHEN event = 'fork' THEN ts END) AS start_ts,
           MIN(CASE WHEN event = 'fork' THEN time END) AS start_time,
           MIN(CASE WHEN event = 'fork' THEN parent_tid END) AS parent_tid,
           MAX(CASE WHEN event = 'exec' THEN time END) AS exec_time,
           MAX(CASE WHEN event = 'exec' THEN filename END) AS exec_file,
           MAX(CASE WHEN event = 'exit' AND group_dead THEN ts END) AS end_ts,
           MAX(CASE WHEN event = 'exit' AND group_dead THEN time END) AS end_time,
           MAX(CASE WHEN event = 'exit' AND group_dead THEN exit_code END) AS status,
           MAX(CASE WHEN event = 'exit' AND group_dead THEN comm END) AS exit_comm,
           MAX(CASE WHEN event = 'exec' THEN comm END) AS exec_comm
    FROM ev GROUP BY host, boot_id, capture, pid
)
SELECT p.host, p.boot_id, p.capture, p.pid, COALESCE(t.ppid, pt.tgid, p.parent_tid) AS ppid,
       COALESCE(p.exit_comm, p.exec_comm, t.comm, '[unknown]') AS comm,
       COALESCE(p.exec_file, t.exe) AS exe,
       p.start_time, p.exec_time, p.end_time,
       p.end_ts - p.start_ts AS lifetime_ns,
       p.status,
       CASE WHEN (p.status & 127) = 0 THEN CAST(FLOOR(p.status / 256) AS INT) END AS exit_code,
       CASE WHEN (p.status & 127) <> 0 THEN p.status & 127 END AS signal
FROM p
LEFT JOIN tasks1 t ON t.capture = p.capture AND t.tid = p.pid
LEFT JOIN tasks1 pt ON pt.capture = p.capture AND pt.tid = p.parent_tid
WHERE COALESCE(t.tgid, p.pid) = p.pid;
