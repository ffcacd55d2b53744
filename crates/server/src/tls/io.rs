//! Sending responses over TLS: [`SendFile`] for the TLS stream's write
//! half. sendfile(2) would bypass the encryption, so a file region is read
//! in pieces and written through the TLS stream.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use tokio::io::{AsyncWriteExt, WriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::write::SendFile;

/// The piece of a file read and encrypted at a time (four TLS records).
const FILE_PIECE: usize = 64 * 1024;

impl SendFile for WriteHalf<TlsStream<TcpStream>> {
    async fn send_file(&mut self, file: &File, offset: u64, len: u64) -> io::Result<u64> {
        let mut buf = vec![0u8; FILE_PIECE.min(usize::try_from(len).unwrap_or(FILE_PIECE))];
        let mut sent = 0u64;
        while sent < len {
            let want = usize::try_from(len - sent).map_or(buf.len(), |n| n.min(buf.len()));
            let Some(piece) = buf.get_mut(..want) else {
                break;
            };
            // A read of the page cache, as nginx's own (non-aio) reads are.
            let n = file.read_at(piece, offset + sent)?;
            if n == 0 {
                break;
            }
            self.write_all(piece.get(..n).unwrap_or_default()).await?;
            sent += n as u64;
        }
        self.flush().await?;
        Ok(sent)
    }

    async fn write_more(&mut self, data: &[u8]) -> io::Result<()> {
        // rustls collects it into records; nothing to hint to the kernel.
        self.write_all(data).await
    }
}
