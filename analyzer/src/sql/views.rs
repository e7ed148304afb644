//! The book's analyses as SQL views, from `schemas/sql/` (the same files run on other engines).

/// (name, `CREATE VIEW` statement), in the order they are created.
pub const VIEWS: [(&str, &str); 6] = [
    (
        "runq_latency",
        include_str!("../../../schemas/sql/runq_latency.sql"),
    ),
    (
        "block_latency",
        include_str!("../../../schemas/sql/block_latency.sql"),
    ),
    (
        "syscall_latency",
        include_str!("../../../schemas/sql/syscall_latency.sql"),
    ),
    ("offcpu", include_str!("../../../schemas/sql/offcpu.sql")),
    ("samples", include_str!("../../../schemas/sql/samples.sql")),
    (
        "processes",
        include_str!("../../../schemas/sql/processes.sql"),
    ),
];
