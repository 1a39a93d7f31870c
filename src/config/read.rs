//! Reading the config file without letting the file decide how long or how much: a FIFO would
//! block for ever and `/dev/zero` would be read until memory runs out, so only a regular file
//! of at most `MAX_BYTES` is read.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Far above any real config (a 1000-port file is ~60 KiB).
pub const MAX_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug)]
pub enum Error {
    Io(std::io::Error),
    NotRegular(&'static str),
    TooLarge,
}

/// The file's text, when it is a regular file no larger than `MAX_BYTES`.
pub fn bounded(path: &Path) -> Result<String, Error> {
    // O_NONBLOCK: opening a FIFO with no writer would otherwise block before we can look at it.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(Error::Io)?;
    let kind = file.metadata().map_err(Error::Io)?.file_type();
    if !kind.is_file() {
        return Err(Error::NotRegular(describe(kind)));
    }
    read_at_most(file)
}

fn read_at_most(file: File) -> Result<String, Error> {
    // The size can change after the check: read one byte past the cap to tell.
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(Error::Io)?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(Error::TooLarge);
    }
    String::from_utf8(bytes).map_err(|e| {
        Error::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text: {e}"),
        ))
    })
}

fn describe(kind: std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_fifo_is_refused_at_once() {
        let dir = std::env::temp_dir().join(format!("config-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("config.toml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let start = Instant::now();
        let err = bounded(&fifo).unwrap_err();
        assert!(matches!(err, Error::NotRegular("a FIFO")), "{err:?}");
        assert!(start.elapsed() < Duration::from_secs(1));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_device_is_refused() {
        assert!(matches!(
            bounded(Path::new("/dev/zero")),
            Err(Error::NotRegular("a character device"))
        ));
    }

    #[test]
    fn a_file_past_the_cap_is_refused() {
        let file = std::env::temp_dir().join(format!("config-big-{}", std::process::id()));
        std::fs::write(&file, vec![b'#'; MAX_BYTES as usize + 1]).unwrap();
        assert!(matches!(bounded(&file), Err(Error::TooLarge)));
        std::fs::write(&file, b"# small\n").unwrap();
        assert_eq!(bounded(&file).unwrap(), "# small\n");
        std::fs::remove_file(&file).unwrap();
    }
}
