//! The CLI's error policy (docs/DESIGN.md §9): one line, exit 2 for bad input, 1 for run-time failure.

use std::fmt;

/// Bad usage or input: the message says what is wrong and what to do. Exits with code 2.
#[derive(Debug)]
pub struct InputError(pub String);

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InputError {}

/// Shorthand for `Err(InputError(..).into())`.
#[macro_export]
macro_rules! bad_input {
    ($($arg:tt)*) => {
        anyhow::Error::from($crate::error::InputError(format!($($arg)*)))
    };
}

/// Exit code for an error: 2 when any error in its chain is bad input, else 1.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    let input = err.chain().any(|e| {
        e.is::<InputError>()
            || e.downcast_ref::<odelt_format::Error>()
                .is_some_and(|e| e.is_input())
            || e.downcast_ref::<odelt_runtime::Error>()
                .is_some_and(|e| e.is_input())
            || e.downcast_ref::<odelt_export::Error>()
                .is_some_and(|e| e.is_input())
            || e.downcast_ref::<odelt_engines::Error>()
                .is_some_and(|e| e.is_input())
    });
    if input {
        2
    } else {
        1
    }
}

/// The whole chain on one line: "outer: inner: cause".
pub fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string().replace('\n', " ");
        // thiserror messages often repeat their source; keep each piece once.
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}
