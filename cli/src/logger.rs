//! The tool's logger: the engine's log records, one line each on stderr, at the level chosen
//! with `-v` / `-q` (warnings and errors by default).

use std::io::Write;

struct Stderr;

impl log::Log for Stderr {
    fn enabled(&self, meta: &log::Metadata<'_>) -> bool {
        meta.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let level = record.level().as_str().to_lowercase();
            // A closed stderr has nowhere to report to.
            let _ = writeln!(
                std::io::stderr().lock(),
                "cairn [{level}] {}",
                record.args()
            );
        }
    }

    fn flush(&self) {}
}

/// Installs the logger with `level` (once; later calls keep the first logger).
pub fn init(level: log::LevelFilter) {
    if log::set_logger(&Stderr).is_ok() {
        log::set_max_level(level);
    }
}
