//! The few things peel asks of the terminal itself: its size, and keeping typed-ahead keys off the screen while
//! a turn draws on it.

use std::os::fd::AsRawFd;

/// Columns and rows of the terminal behind `fd`, if it is one.
pub fn size_of(fd: &impl AsRawFd) -> Option<(usize, usize)> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into the struct we pass, and nothing else.
    let ok = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_col > 0 && size.ws_row > 0).then(|| (size.ws_col.into(), size.ws_row.into()))
}

/// The terminal's size as seen on stderr, then stdout; 80x24 when neither is a terminal.
pub fn size() -> (usize, usize) {
    size_of(&std::io::stderr())
        .or_else(|| size_of(&std::io::stdout()))
        .unwrap_or((80, 24))
}

/// While alive, keys typed on the terminal are not echoed: they wait, unseen, in the terminal's input queue
/// and the next prompt reads them (typeahead), instead of being printed into the turn's output.
pub struct NoEcho {
    saved: Option<libc::termios>,
}

impl NoEcho {
    pub fn start() -> NoEcho {
        let stdin = std::io::stdin();
        let fd = stdin.as_raw_fd();
        // SAFETY: tcgetattr/tcsetattr read and write a termios struct for a file descriptor we own (stdin);
        // a zeroed termios is a valid value to be overwritten.
        let saved = unsafe {
            let mut termios: libc::termios = std::mem::zeroed();
            if libc::isatty(fd) != 1 || libc::tcgetattr(fd, &mut termios) != 0 {
                None
            } else {
                let mut quiet = termios;
                quiet.c_lflag &= !(libc::ECHO | libc::ECHONL);
                (libc::tcsetattr(fd, libc::TCSANOW, &quiet) == 0).then_some(termios)
            }
        };
        NoEcho { saved }
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        if let Some(termios) = &self.saved {
            // SAFETY: as above; restores what tcgetattr returned.
            unsafe {
                libc::tcsetattr(std::io::stdin().as_raw_fd(), libc::TCSANOW, termios);
            }
        }
    }
}
