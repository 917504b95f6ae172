//! Colour only where a person reads it: on a terminal, and not when NO_COLOR is set.

use std::io::IsTerminal;

/// The ANSI attributes the commands use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paint {
    Bold,
    Dim,
    Red,
    Green,
    Yellow,
}

impl Paint {
    fn code(self) -> &'static str {
        match self {
            Paint::Bold => "1",
            Paint::Dim => "2",
            Paint::Red => "31",
            Paint::Green => "32",
            Paint::Yellow => "33",
        }
    }
}

/// Whether one output stream gets colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
}

impl Style {
    pub const PLAIN: Style = Style { color: false };
    pub const COLOR: Style = Style { color: true };

    pub fn paint(&self, text: &str, paint: Paint) -> String {
        if self.color && !text.is_empty() {
            format!("\x1b[{}m{text}\x1b[0m", paint.code())
        } else {
            text.to_string()
        }
    }
}

/// How the process's stdout and stderr are to be written, decided once at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Console {
    pub stdout: Style,
    pub stderr: Style,
    /// Pretty-print JSON payloads: a person is reading stdout.
    pub stdout_is_terminal: bool,
}

impl Console {
    /// What tests snapshot: no colour, compact payloads.
    pub const PLAIN: Console =
        Console { stdout: Style::PLAIN, stderr: Style::PLAIN, stdout_is_terminal: false };

    pub fn detect() -> Console {
        // https://no-color.org: any non-empty value turns colour off.
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
        let stdout_is_terminal = std::io::stdout().is_terminal();
        Console {
            stdout: Style { color: stdout_is_terminal && !no_color },
            stderr: Style { color: std::io::stderr().is_terminal() && !no_color },
            stdout_is_terminal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_leaves_text_alone_and_color_wraps_it() {
        assert_eq!(Style::PLAIN.paint("ok", Paint::Green), "ok");
        assert_eq!(Style::COLOR.paint("ok", Paint::Green), "\x1b[32mok\x1b[0m");
        assert_eq!(Style::COLOR.paint("", Paint::Red), "");
    }
}
