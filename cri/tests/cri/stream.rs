//! A client of the CRI streaming server (the URLs `Exec` and `Attach` return), as
//! `kubectl exec` and `kubectl attach` reach it through the kubelet: a WebSocket with the
//! `v4.channel.k8s.io` protocol, where every binary message starts with its channel (0 stdin,
//! 1 stdout, 2 stderr, 3 the final status as JSON, 4 terminal resizes).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;

/// One open stream.
pub struct Stream {
    sock: TcpStream,
    /// What arrived on each channel so far.
    pub channels: [Vec<u8>; 5],
    /// The server closed the stream (a close message, or the end of the connection).
    pub closed: bool,
}

impl Stream {
    /// Open the WebSocket at `url` (`http://HOST:PORT/PATH`).
    pub fn connect(url: &str) -> Result<Stream, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("not an http URL: {url}"))?;
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let mut sock = TcpStream::connect(host).map_err(|e| format!("connect {host}: {e}"))?;
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(|e| e.to_string())?;
        // The key only has to be 16 bytes in base64; the server answers with its hash.
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: Y2FzdWxvLWNyaS1zdWl0ZQ==\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n"
        );
        sock.write_all(request.as_bytes())
            .map_err(|e| format!("write the upgrade request: {e}"))?;
        // The response's head, a byte at a time: the first messages may follow it at once.
        let mut head = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8];
            match sock.read(&mut b) {
                Ok(1) => head.push(b[0]),
                Ok(_) => return Err(format!("connection closed in the response: {head:?}")),
                Err(e) if Instant::now() < deadline && is_timeout(&e) => continue,
                Err(e) => return Err(format!("read the upgrade response: {e}")),
            }
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        if !head.starts_with("HTTP/1.1 101") || !head.contains("v4.channel.k8s.io") {
            return Err(format!("no v4.channel.k8s.io WebSocket: {head}"));
        }
        Ok(Stream {
            sock,
            channels: Default::default(),
            closed: false,
        })
    }

    /// Send `data` on `channel` (a client's frames are masked).
    pub fn send(&mut self, channel: u8, data: &[u8]) -> Result<(), String> {
        let mut payload = vec![channel];
        payload.extend_from_slice(data);
        let mut frame = vec![0x82u8];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xffff => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = (std::process::id() ^ 0x5a3c_96e1).to_be_bytes();
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.sock
            .write_all(&frame)
            .map_err(|e| format!("send on channel {channel}: {e}"))
    }

    /// Read messages until `done` holds or the server closes the stream, for at most 60 s
    /// (an exec's start alone took more than 30 s in an emulated guest under CI's load).
    pub fn read_until(&mut self, done: impl FnMut(&Stream) -> bool) -> Result<(), String> {
        if self.read_until_for(done, Duration::from_secs(60))? {
            return Ok(());
        }
        Err(format!(
            "stream: not done after 60 s; stdout {:?}, stderr {:?}, status {:?}",
            self.text(STDOUT),
            self.text(STDERR),
            self.text(ERROR)
        ))
    }

    /// Read messages until `done` holds or the server closes the stream (true), or `limit`
    /// has passed (false).
    pub fn read_until_for(
        &mut self,
        mut done: impl FnMut(&Stream) -> bool,
        limit: Duration,
    ) -> Result<bool, String> {
        let deadline = Instant::now() + limit;
        while !self.closed && !done(self) {
            if Instant::now() > deadline {
                return Ok(false);
            }
            self.read_message()?;
        }
        Ok(true)
    }

    /// Read all until the server closes the stream.
    pub fn read_to_end(&mut self) -> Result<(), String> {
        self.read_until(|_| false)
    }

    pub fn text(&self, channel: u8) -> String {
        String::from_utf8_lossy(&self.channels[channel as usize]).into_owned()
    }

    /// Read one message (or nothing within the socket's short timeout) into its channel.
    fn read_message(&mut self) -> Result<(), String> {
        let mut hdr = [0u8; 2];
        match self.sock.read(&mut hdr[..1]) {
            Ok(0) => {
                self.closed = true;
                return Ok(());
            }
            Ok(_) => {}
            Err(e) if is_timeout(&e) => return Ok(()),
            Err(e) => return Err(format!("read: {e}")),
        }
        self.read_exact(&mut hdr[1..])?;
        let opcode = hdr[0] & 0x0f;
        let mut len = u64::from(hdr[1] & 0x7f);
        if len == 126 {
            let mut b = [0u8; 2];
            self.read_exact(&mut b)?;
            len = u64::from(u16::from_be_bytes(b));
        } else if len == 127 {
            let mut b = [0u8; 8];
            self.read_exact(&mut b)?;
            len = u64::from_be_bytes(b);
        }
        let mut mask = [0u8; 4];
        if hdr[1] & 0x80 != 0 {
            self.read_exact(&mut mask)?;
        }
        let mut payload = vec![0u8; usize::try_from(len).map_err(|e| e.to_string())?];
        self.read_exact(&mut payload)?;
        if hdr[1] & 0x80 != 0 {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= mask[i % 4];
            }
        }
        match opcode {
            // Binary (or text) data: the channel, then the bytes.
            1 | 2 => {
                if let Some((&ch, data)) = payload.split_first() {
                    let ch = usize::from(ch);
                    if ch >= self.channels.len() {
                        return Err(format!("a message on unknown channel {ch}"));
                    }
                    self.channels[ch].extend_from_slice(data);
                }
            }
            8 => self.closed = true,
            // A ping gets its pong (the server's own frames are never masked; ours are).
            9 => {
                let mut pong = vec![0x8a, 0x80 | payload.len() as u8, 0, 0, 0, 0];
                pong.extend_from_slice(&payload);
                self.sock
                    .write_all(&pong)
                    .map_err(|e| format!("pong: {e}"))?;
            }
            _ => {}
        }
        Ok(())
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = 0;
        while got < buf.len() {
            match self.sock.read(&mut buf[got..]) {
                Ok(0) => return Err("the connection ended inside a message".into()),
                Ok(n) => got += n,
                Err(e) if is_timeout(&e) && Instant::now() < deadline => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
        Ok(())
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}
