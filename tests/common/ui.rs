//! Helpers shared by the egui_kittest UI tests.

use std::time::{Duration, Instant};

use egui_kittest::Harness;

/// Steps the harness until `done` holds (a background job finished), then two more frames.
pub fn wait<S>(h: &mut Harness<'_, S>, what: &str, done: impl Fn(&S) -> bool) {
    let start = Instant::now();
    while !done(h.state()) {
        h.step();
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    h.run_steps(2);
}
