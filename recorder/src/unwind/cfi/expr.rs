//! DWARF expressions of unwind rules (GCC's PLT rule, a signal trampoline's saved registers),
//! run with gimli's evaluator on the registers and stack an event carries.
use gimli::{EndianSlice, LittleEndian};

use super::Arch;

/// Runs a DWARF expression of unwind information: registers sp and ip only, 8-byte memory reads
/// through `mem`, `initial` pushed first.
pub(super) fn evaluate(
    bytes: &[u8],
    arch: Arch,
    sp: u64,
    ip: u64,
    initial: Option<u64>,
    mem: &mut dyn FnMut(u64) -> Option<u64>,
) -> Option<u64> {
    let expr = gimli::Expression(EndianSlice::new(bytes, LittleEndian));
    let encoding = gimli::Encoding {
        format: gimli::Format::Dwarf64,
        version: 4,
        address_size: 8,
    };
    let (sp_reg, _, _) = arch.dwarf_regs();
    let mut eval = expr.evaluation(encoding);
    // A binary's expression may branch backwards: bounded, it cannot hang the drain.
    eval.set_max_iterations(256);
    if let Some(v) = initial {
        eval.set_initial_value(v);
    }
    let mut step = eval.evaluate().ok()?;
    loop {
        step = match step {
            gimli::EvaluationResult::Complete => break,
            gimli::EvaluationResult::RequiresRegister { register, .. } => {
                let v = if register == sp_reg {
                    sp
                } else if register == arch.dwarf_ip() {
                    ip
                } else {
                    return None;
                };
                eval.resume_with_register(gimli::Value::Generic(v)).ok()?
            }
            gimli::EvaluationResult::RequiresMemory {
                address, size: 8, ..
            } => eval
                .resume_with_memory(gimli::Value::Generic(mem(address)?))
                .ok()?,
            _ => return None,
        };
    }
    match eval.as_result().first()?.location {
        gimli::Location::Address { address } => Some(address),
        gimli::Location::Value { value } => value.to_u64(u64::MAX).ok(),
        _ => None,
    }
}
