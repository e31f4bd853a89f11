//! A component with one more linear memory, for the tests of the memory cap: the first
//! core module of `component` that declares memories gets another one of `bytes`
//! (rounded up to whole 64 KiB pages), created when the component is instantiated.
//!
//! Plain byte surgery, with no WebAssembly crate: the component's top-level sections
//! and the module's sections are walked by their lengths, the module's memory section
//! gets one more entry, and the lengths around it are written again. Shared with the
//! integration tests (`tests/integration/plugins_limits.rs` includes this file).

/// The WebAssembly page size.
const PAGE_BYTES: usize = 64 << 10;
/// A core module section inside a component; a memory section inside a module.
const CORE_MODULE_SECTION: u8 = 1;
const MEMORY_SECTION: u8 = 5;
/// The magic and version at the start of a component or module.
const PREAMBLE_BYTES: usize = 8;

/// `component` with one more memory of `bytes` in its first module that has memories.
/// Panics if it has none: a test's input, not a user's.
pub fn with_extra_memory(component: &[u8], bytes: usize) -> Vec<u8> {
    let pages = u32::try_from(bytes.div_ceil(PAGE_BYTES)).expect("pages fit in u32");
    let mut out = component[..PREAMBLE_BYTES].to_vec();
    let mut done = false;
    for (id, body) in sections(component) {
        let body = match id {
            CORE_MODULE_SECTION if !done => match add_memory(body, pages) {
                Some(module) => {
                    done = true;
                    module
                }
                None => body.to_vec(),
            },
            _ => body.to_vec(),
        };
        push_section(&mut out, id, &body);
    }
    assert!(
        done,
        "the component has no core module with a memory section"
    );
    out
}

/// The module with one more memory of `pages`, or `None` if it declares none.
fn add_memory(module: &[u8], pages: u32) -> Option<Vec<u8>> {
    let mut out = module[..PREAMBLE_BYTES].to_vec();
    let mut found = false;
    for (id, body) in sections(module) {
        if id == MEMORY_SECTION {
            let (count, at) = read_leb(body, 0);
            let mut memories = Vec::new();
            write_leb(&mut memories, count + 1);
            memories.extend_from_slice(&body[at..]);
            // Limits with a minimum and no maximum.
            memories.push(0x00);
            write_leb(&mut memories, pages);
            push_section(&mut out, id, &memories);
            found = true;
        } else {
            push_section(&mut out, id, body);
        }
    }
    found.then_some(out)
}

/// The sections after the preamble, as (id, body).
fn sections(bytes: &[u8]) -> Vec<(u8, &[u8])> {
    let mut sections = Vec::new();
    let mut at = PREAMBLE_BYTES;
    while at < bytes.len() {
        let id = bytes[at];
        let (size, body_at) = read_leb(bytes, at + 1);
        let end = body_at + size as usize;
        sections.push((id, &bytes[body_at..end]));
        at = end;
    }
    sections
}

fn push_section(out: &mut Vec<u8>, id: u8, body: &[u8]) {
    out.push(id);
    write_leb(out, u32::try_from(body.len()).expect("section fits in u32"));
    out.extend_from_slice(body);
}

/// An unsigned LEB128 at `at`: its value and where it ends.
fn read_leb(bytes: &[u8], mut at: usize) -> (u32, usize) {
    let (mut value, mut shift) = (0u32, 0);
    loop {
        let byte = bytes[at];
        at += 1;
        value |= u32::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return (value, at);
        }
        shift += 7;
    }
}

fn write_leb(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}
