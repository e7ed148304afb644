"""Reads a flightrec Perfetto trace with the schema the `perfetto` PyPI package ships and checks
what trace_processor requires of it (its binary is downloaded at run time, so it cannot run in CI):

- system_info with sysname, release and machine; a clock snapshot with BOOTTIME, MONOTONIC and
  REALTIME before any timestamped packet;
- every ftrace bundle has its cpu; compact_sched arrays of equal length; comm indexes inside the
  bundle's intern table; per-CPU timestamps never go back;
- perf samples only after their sequence's interned state was cleared, and every callstack,
  frame, function name, mapping, build ID and path iid they use defined before them on that
  sequence;
- track events on tracks described before them, slices balanced and nested per track.

Prints a JSON summary (counts, thread names, function names) for the Rust test to compare with the
capture. Usage: perfetto_check.py TRACE
"""
import json
import sys

from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import Trace


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def main(path):
    trace = Trace()
    with open(path, "rb") as f:
        trace.ParseFromString(f.read())
    summary = {"switches": 0, "wakings": 0, "samples": 0, "slices": 0,
               "threads": [], "functions": [], "cpus": []}
    clocks = None
    system = None
    last_ts = {}
    interned = {}  # sequence -> {kind: {iid: value}}
    tracks = set()
    open_slices = {}
    functions = set()
    for n, p in enumerate(trace.packet):
        if p.HasField("clock_snapshot"):
            clocks = {c.clock_id: c.timestamp for c in p.clock_snapshot.clocks}
        if p.HasField("system_info"):
            system = p.system_info
        if p.HasField("timestamp") and clocks is None:
            fail(f"packet {n}: a timestamp before the clock snapshot")
        seq = p.trusted_packet_sequence_id
        if p.sequence_flags & 1:
            interned[seq] = {"function_names": {}, "frames": {}, "callstacks": {},
                             "build_ids": {}, "mapping_paths": {}, "mappings": {}}
        if p.HasField("interned_data"):
            if seq not in interned:
                fail(f"packet {n}: interned data on sequence {seq} before its state was cleared")
            d = p.interned_data
            state = interned[seq]
            for kind in ("function_names", "build_ids", "mapping_paths"):
                for s in getattr(d, kind):
                    state[kind][s.iid] = s.str
            for m in d.mappings:
                if m.build_id and m.build_id not in state["build_ids"]:
                    fail(f"mapping {m.iid}: build id {m.build_id} undefined")
                for pid in m.path_string_ids:
                    if pid not in state["mapping_paths"]:
                        fail(f"mapping {m.iid}: path {pid} undefined")
                state["mappings"][m.iid] = m
            for fr in d.frames:
                if fr.function_name_id not in state["function_names"]:
                    fail(f"frame {fr.iid}: function name {fr.function_name_id} undefined")
                if fr.mapping_id not in state["mappings"]:
                    fail(f"frame {fr.iid}: mapping {fr.mapping_id} undefined")
                state["frames"][fr.iid] = fr
            for cs in d.callstacks:
                for fid in cs.frame_ids:
                    if fid not in state["frames"]:
                        fail(f"callstack {cs.iid}: frame {fid} undefined")
                state["callstacks"][cs.iid] = cs
        if p.HasField("ftrace_events"):
            b = p.ftrace_events
            if not b.HasField("cpu"):
                fail(f"packet {n}: ftrace bundle without cpu")
            c = b.compact_sched
            sw = [c.switch_timestamp, c.switch_prev_state, c.switch_next_pid,
                  c.switch_next_prio, c.switch_next_comm_index]
            wk = [c.waking_timestamp, c.waking_pid, c.waking_target_cpu, c.waking_prio,
                  c.waking_comm_index, c.waking_common_flags]
            if len({len(a) for a in sw}) > 1 or len({len(a) for a in wk}) > 1:
                fail(f"packet {n}: compact_sched arrays of different lengths")
            for i in list(c.switch_next_comm_index) + list(c.waking_comm_index):
                if i >= len(c.intern_table):
                    fail(f"packet {n}: comm index {i} outside the intern table")
            for name, deltas in (("switch", c.switch_timestamp), ("waking", c.waking_timestamp)):
                ts = 0
                for d in deltas:
                    ts += d
                    key = (b.cpu, name)
                    if ts < last_ts.get(key, 0):
                        fail(f"cpu {b.cpu}: {name} time goes back to {ts}")
                    last_ts[key] = ts
            summary["switches"] += len(c.switch_timestamp)
            summary["wakings"] += len(c.waking_timestamp)
            summary["cpus"].append(b.cpu)
        if p.HasField("process_tree"):
            summary["threads"] += [t.name for t in p.process_tree.threads]
        if p.HasField("perf_sample"):
            s = p.perf_sample
            state = interned.get(seq)
            if state is None or not p.sequence_flags & 2:
                fail(f"packet {n}: a sample outside an interned sequence")
            cs = state["callstacks"].get(s.callstack_iid)
            if cs is None:
                fail(f"packet {n}: callstack {s.callstack_iid} undefined")
            for fid in cs.frame_ids:
                fr = state["frames"][fid]
                functions.add(state["function_names"][fr.function_name_id].decode())
            summary["samples"] += 1
        if p.HasField("track_descriptor"):
            tracks.add(p.track_descriptor.uuid)
        if p.HasField("track_event"):
            e = p.track_event
            if e.track_uuid not in tracks:
                fail(f"packet {n}: track {e.track_uuid} not described")
            depth = open_slices.get(e.track_uuid, 0)
            if e.type == 1:
                if depth:
                    fail(f"track {e.track_uuid}: overlapping slices on one lane")
                open_slices[e.track_uuid] = 1
                summary["slices"] += 1
            elif e.type == 2:
                if not depth:
                    fail(f"track {e.track_uuid}: a slice ends that never began")
                open_slices[e.track_uuid] = 0
    if system is None or not (system.utsname.sysname and system.utsname.release
                              and system.utsname.machine):
        fail("no system_info with uname")
    if clocks is None or not {1, 3, 6} <= set(clocks):
        fail("no clock snapshot with REALTIME, MONOTONIC and BOOTTIME")
    if any(open_slices.values()):
        fail("a slice never ended")
    summary["functions"] = sorted(functions)
    summary["cpus"] = sorted(set(summary["cpus"]))
    print(json.dumps(summary))


if __name__ == "__main__":
    main(sys.argv[1])
