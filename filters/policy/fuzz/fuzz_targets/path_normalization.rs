//! Path normalisation on arbitrary bytes, with every option: never panics;
//! a normal form starts with `/` (or is empty or `*`, kept as they are),
//! holds no dot segment (plain or percent-encoded) and no empty segment
//! when slashes are merged, and normalising it again changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshward_policy::{EscapedSlashes, PathOptions, normalize_path};

fn is_dot_segment(segment: &str) -> bool {
    matches!(
        segment.to_ascii_lowercase().replace("%2e", ".").as_str(),
        "." | ".."
    )
}

fuzz_target!(|input: (u8, &[u8])| {
    let (flags, raw) = input;
    let opts = PathOptions::default()
        .merge_slashes(flags & 1 == 0)
        .escaped_slashes(if flags & 2 == 0 {
            EscapedSlashes::Refuse
        } else {
            EscapedSlashes::Keep
        });
    let Ok(n) = normalize_path(raw, &opts) else {
        return;
    };
    let path = n.path();
    // An empty path and `*` (asterisk form) are left as they are by
    // design; the request checks refuse them where they do not belong.
    assert!(
        path.starts_with('/') || path.is_empty() || path == "*",
        "normal form `{path}` is not absolute"
    );
    assert!(
        !path.contains('?') && !path.contains('#'),
        "normal form `{path}` keeps a delimiter"
    );
    for segment in path.split('/').skip(1) {
        assert!(
            !is_dot_segment(segment),
            "normal form `{path}` holds a dot segment"
        );
    }
    if opts.merges_slashes() {
        assert!(
            !path.contains("//"),
            "normal form `{path}` holds an empty segment"
        );
    }
    let again = normalize_path(n.to_path_and_query(), &opts)
        .unwrap_or_else(|e| panic!("normal form `{path}` is refused: {e}"));
    assert_eq!(again.path(), path, "normalisation is not idempotent");
    assert_eq!(again.query(), n.query());
    assert!(!again.changed(), "a normal form was changed again");
});
