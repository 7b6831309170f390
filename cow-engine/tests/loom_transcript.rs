//! Keeps the loom model's transcription of the volume's I/O steps true to the engine.
//!
//! The loom model (`tests/loom.rs`) runs the engine's own block map (claim, parking, publish,
//! `get`), bitmaps and gate type, but transcribes the steps of `src/volume/io.rs` and
//! `src/volume/room.rs` that use them (its module doc and each part's head say why the volume
//! itself cannot run under loom). This test, an ordinary one that runs on every `cargo test`,
//! reads both sources and checks that each transcribed step stands in the engine's function in the
//! order the model takes it, and in the model in the same order: reorder the engine's steps (a
//! publish after the origin write, a `touched` set after the publish, a claim before the
//! reservations) and it fails, naming the step, until the model follows.

/// The engine's sources the model transcribes, and the model.
const IO: &str = include_str!("../src/volume/io.rs");
const ROOM: &str = include_str!("../src/volume/room.rs");
const MODEL: &str = include_str!("loom.rs");

/// One transcribed step: its name, the engine's source and function holding it, the text that
/// marks it there, and the text that marks it in the model's function (`None`: the step is a call
/// between the engine's functions, which the model inlines).
struct Step {
    name: &'static str,
    source: &'static str,
    function: &'static str,
    engine: &'static str,
    model: Option<&'static str>,
}

const fn step(
    name: &'static str,
    source: &'static str,
    function: &'static str,
    engine: &'static str,
    model: Option<&'static str>,
) -> Step {
    Step {
        name,
        source,
        function,
        engine,
        model,
    }
}

const WRITE_ORIGIN: &str = "fn write_origin_admitted<G>(";
const PRESERVE_RANGE: &str = "fn preserve_range(";
const COPY_BLOCK: &str = "fn copy_block(";
const READ_SNAPSHOT: &str = "fn read_snapshot(";
const READ_FROZEN: &str = "fn read_frozen_piece(";
const LOCATE: &str = "fn locate(";
const MAKE_ROOM: &str = "fn make_room(";

/// Steps the write and the full-area write share.
const GATE_SHARED: Step = step(
    "gate shared",
    "io.rs",
    WRITE_ORIGIN,
    "self.gate_for_write()",
    Some("self.gate.read()"),
);

const PRESERVE: Step = step(
    "preserve",
    "io.rs",
    WRITE_ORIGIN,
    "self.preserve_range(",
    None,
);

const COPY: Step = step(
    "copy the block",
    "io.rs",
    PRESERVE_RANGE,
    "self.copy_block(",
    None,
);

const PUBLISH: Step = step(
    "publish",
    "io.rs",
    PRESERVE_RANGE,
    "claim.publish(slot)",
    Some("claim.publish(slot)"),
);

const ORIGIN_WRITE: Step = step(
    "write the origin",
    "io.rs",
    WRITE_ORIGIN,
    "self.origin.write_at(data, offset)",
    Some("*self.origin[block as usize].lock().unwrap() = value"),
);

/// The body of the one function whose signature starts with `signature` in `src` (named `file`).
fn body<'a>(file: &str, src: &'a str, signature: &str) -> &'a str {
    let found: Vec<_> = src.match_indices(signature).collect();
    assert_eq!(
        found.len(),
        1,
        "{file}: `{signature}` stands {} times",
        found.len()
    );
    let start = found[0].0 + src[found[0].0..].find('{').expect("a body");
    let mut depth = 0usize;
    for (i, c) in src[start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &src[start..=start + i];
                }
            }
            _ => {}
        }
    }
    panic!("{file}: the body of `{signature}` does not close");
}

/// Checks `steps` against the engine (each function's steps in order) and against the model's
/// function `model_fn` (all of them in order).
fn check(part: &str, model_fn: &str, steps: &[Step]) {
    check_sources(IO, ROOM, MODEL, part, model_fn, steps);
}

/// [`check`] over the sources given.
fn check_sources(io: &str, room: &str, model: &str, part: &str, model_fn: &str, steps: &[Step]) {
    let mut cursors: Vec<(&str, usize)> = Vec::new();
    for s in steps {
        let src = if s.source == "io.rs" { io } else { room };
        let text = body(s.source, src, s.function);
        let at = match cursors.iter_mut().find(|(f, _)| *f == s.function) {
            Some((_, at)) => at,
            None => {
                cursors.push((s.function, 0));
                &mut cursors.last_mut().unwrap().1
            }
        };
        let found = text[*at..].find(s.engine).unwrap_or_else(|| {
            panic!(
                "{part}: step {:?} (`{}`) is no longer in `{}` of src/volume/{} after the steps \
                 before it: the engine's steps changed; update the loom model (tests/loom.rs) and \
                 this transcript",
                s.name, s.engine, s.function, s.source
            )
        });
        *at += found + s.engine.len();
    }
    let model = body("tests/loom.rs", model, model_fn);
    let mut at = 0;
    for s in steps {
        let Some(m) = s.model else { continue };
        let found = model[at..].find(m).unwrap_or_else(|| {
            panic!(
                "{part}: step {:?} (`{m}`) is no longer in the model's `{model_fn}` after the \
                 steps before it: the model no longer follows the engine",
                s.name
            )
        });
        at += found + m.len();
    }
}

/// The model's `Model::write` against `Inner::write_origin_admitted`, `preserve_range` and
/// `copy_block`. (The model allocates and fills the diff slot in one step, after the origin read;
/// the engine allocates first: the allocator is apart from the block's protocol.)
#[test]
fn the_write_steps_are_the_engines() {
    check("write", MODEL_WRITE, &WRITE_STEPS);
}

/// The check is not vacuous: an engine that sets `copied` before it publishes, or a model that
/// no longer publishes, fails it.
#[test]
fn a_moved_step_fails_the_check() {
    let publish_then_copied = "claim.publish(slot);\n            newest.copied.set(block);";
    assert!(IO.contains(publish_then_copied));
    let io = IO.replace(
        publish_then_copied,
        "newest.copied.set(block);\n            claim.publish(slot);",
    );
    let engine_moved = std::panic::catch_unwind(|| {
        check_sources(&io, ROOM, MODEL, "write", MODEL_WRITE, &WRITE_STEPS)
    });
    assert!(engine_moved.is_err(), "a reordered engine passed");
    let model = MODEL.replacen("claim.publish(slot);", "", 1);
    let model_moved = std::panic::catch_unwind(|| {
        check_sources(IO, ROOM, &model, "write", MODEL_WRITE, &WRITE_STEPS)
    });
    assert!(model_moved.is_err(), "a model without its publish passed");
}

/// The model's function of the write steps.
const MODEL_WRITE: &str = "fn write(&self, blocks: std::ops::Range<u64>, value: u64)";

/// The write steps, in the model's order.
const WRITE_STEPS: [Step; 15] = [
    GATE_SHARED,
    PRESERVE,
    step(
        "reserve the newest map",
        "io.rs",
        PRESERVE_RANGE,
        "newest.map.reserve()",
        Some("newest.map.reserve()"),
    ),
    step(
        "reserve its copied summary",
        "io.rs",
        PRESERVE_RANGE,
        "newest.copied.reserve()",
        Some("newest.copied.reserve()"),
    ),
    step(
        "reserve touched",
        "io.rs",
        PRESERVE_RANGE,
        "st.touched.reserve()",
        Some("st.touched.reserve()"),
    ),
    step(
        "copied hint",
        "io.rs",
        PRESERVE_RANGE,
        "newest.copied.get(block)",
        Some("newest.copied.get(block)"),
    ),
    step(
        "claim",
        "io.rs",
        PRESERVE_RANGE,
        "newest.map.claim(block)",
        Some("newest.map.claim(block)"),
    ),
    step(
        "preserved already: set copied",
        "io.rs",
        PRESERVE_RANGE,
        "newest.copied.set(block)",
        Some("newest.copied.set(block)"),
    ),
    COPY,
    step(
        "read the origin block",
        "io.rs",
        COPY_BLOCK,
        "self.origin.read_at(buf, block << self.shift)",
        Some("self.origin[block as usize].lock()"),
    ),
    step(
        "fill the diff slot",
        "io.rs",
        COPY_BLOCK,
        "self.diff.write(slot, 0, buf)",
        Some("diff.push(old)"),
    ),
    step(
        "set touched",
        "io.rs",
        COPY_BLOCK,
        "st.touched.set(block)",
        Some("st.touched.set(block)"),
    ),
    PUBLISH,
    step(
        "set copied",
        "io.rs",
        PRESERVE_RANGE,
        "newest.copied.set(block)",
        Some("newest.copied.set(block)"),
    ),
    ORIGIN_WRITE,
];

/// The model's `Model::read` against `read_snapshot`, `read_frozen_piece` and `locate`.
#[test]
fn the_read_steps_are_the_engines() {
    check(
        "read",
        "fn read(&self, i: usize, block: u64)",
        &[
            step(
                "gate shared",
                "io.rs",
                READ_SNAPSHOT,
                "self.state.read()",
                Some("self.gate.read()"),
            ),
            step(
                "locate",
                "io.rs",
                READ_FROZEN,
                "self.locate(st, i, block)",
                None,
            ),
            step(
                "touched hint",
                "io.rs",
                LOCATE,
                "st.touched.get(block)",
                Some("st.touched.get(block)"),
            ),
            step(
                "walk the chain from snapshot i",
                "io.rs",
                LOCATE,
                "for s in &st.snaps[i..]",
                Some("for s in &st.snaps[i..]"),
            ),
            step(
                "a preserved entry on the chain",
                "io.rs",
                LOCATE,
                "s.map.get(block)",
                Some("s.map.get(block)"),
            ),
            step(
                "read the origin",
                "io.rs",
                READ_FROZEN,
                "self.origin.read_at(out",
                Some("self.origin[block as usize].lock()"),
            ),
            step(
                "recheck the newest map",
                "io.rs",
                READ_FROZEN,
                "newest.map.get(block)",
                Some(".map.get(block)"),
            ),
        ],
    );
}

/// The third part's `FullModel::write` and `make_room` against `write_origin_admitted`,
/// `preserve_range`, `copy_block` and `Inner::make_room`.
#[test]
fn the_full_area_steps_are_the_engines() {
    check(
        "full-area write",
        "fn write(&self, block: u64, value: u64)",
        &[
            GATE_SHARED,
            step(
                "count of frees",
                "io.rs",
                WRITE_ORIGIN,
                "self.frees.load(",
                Some("self.frees.load("),
            ),
            PRESERVE,
            step(
                "claim",
                "io.rs",
                PRESERVE_RANGE,
                "newest.map.claim(block)",
                Some("newest.claim(block)"),
            ),
            COPY,
            step(
                "allocate a slot (refused at the limit)",
                "io.rs",
                COPY_BLOCK,
                "self.diff.alloc_from(reservation)",
                Some("self.alloc()"),
            ),
            step(
                "read the origin block",
                "io.rs",
                COPY_BLOCK,
                "self.origin.read_at(buf",
                Some("self.origin[block as usize].lock()"),
            ),
            PUBLISH,
            step(
                "refused: release the gate",
                "io.rs",
                WRITE_ORIGIN,
                "drop(st)",
                Some("drop(st)"),
            ),
            step(
                "make room",
                "io.rs",
                WRITE_ORIGIN,
                "self.make_room(",
                Some("self.make_room("),
            ),
            step(
                "start over",
                "io.rs",
                WRITE_ORIGIN,
                "continue;",
                Some("continue;"),
            ),
            ORIGIN_WRITE,
        ],
    );
    check(
        "make room",
        "fn make_room(&self, block: u64, frees: usize)",
        &[
            step(
                "gate exclusive",
                "room.rs",
                MAKE_ROOM,
                "self.state.write()",
                Some("self.gate.write()"),
            ),
            step(
                "frees moved: retry",
                "room.rs",
                MAKE_ROOM,
                "self.frees.load(Ordering::Relaxed) != frees",
                Some("self.frees.load(loom::sync::atomic::Ordering::Relaxed) != frees"),
            ),
            step(
                "delete oldest first",
                "room.rs",
                MAKE_ROOM,
                "self.delete_snapshot_locked(",
                Some("st.drain(..n)"),
            ),
        ],
    );
}
