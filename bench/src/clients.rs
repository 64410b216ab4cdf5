//! The native clients that drive every server the same way. Each returns a rate, higher is
//! better, and checks what it got back, so a broken server fails the run instead of scoring.

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const CHUNK: usize = 256 * 1024;

fn mb_per_s(bytes: usize, took: Duration) -> f64 {
    bytes as f64 / 1e6 / took.as_secs_f64()
}

/// Writes `total` bytes in 256 KiB writes, then shuts the sending side.
async fn send_and_shut(to: &mut (impl AsyncWrite + Unpin), total: usize) {
    let chunk = vec![0x5a; CHUNK];
    let mut sent = 0;
    while sent < total {
        let n = chunk.len().min(total - sent);
        to.write_all(&chunk[..n]).await.unwrap();
        sent += n;
    }
    to.shutdown().await.unwrap();
}

/// Streams `total` bytes in 256 KiB writes while reading the echo back: MB/s.
pub async fn echo_bulk(addr: SocketAddr, total: usize) -> f64 {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let start = Instant::now();
    let writer = tokio::spawn(async move { send_and_shut(&mut wr, total).await });
    let mut buf = vec![0; CHUNK];
    let mut got = 0;
    while got < total {
        let n = rd.read(&mut buf).await.unwrap();
        assert!(n > 0, "echo closed early after {got} bytes");
        got += n;
    }
    let took = start.elapsed();
    writer.await.unwrap();
    mb_per_s(total, took)
}

/// Streams `total` bytes and reads the sink's count: MB/s.
pub async fn sink_bulk(addr: SocketAddr, total: usize) -> f64 {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let start = Instant::now();
    send_and_shut(&mut stream, total).await;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    let took = start.elapsed();
    assert_eq!(
        reply.trim(),
        total.to_string(),
        "the sink counted every byte"
    );
    mb_per_s(total, took)
}

/// `round_trips` messages of `size` bytes, each waiting for its echo: round trips/s.
pub async fn ping_pong(addr: SocketAddr, size: usize, round_trips: usize) -> f64 {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let start = Instant::now();
    exchange(&mut stream, size, round_trips).await.unwrap();
    round_trips as f64 / start.elapsed().as_secs_f64()
}

/// `round_trips` echoed messages of `size` bytes. An I/O error is returned, not a panic: a
/// client task of [`concurrent`] can outlive its measurement by a moment when that is
/// abandoned as stalled and its server killed, and its error then goes unheard.
async fn exchange(stream: &mut TcpStream, size: usize, round_trips: usize) -> std::io::Result<()> {
    let msg = vec![7u8; size];
    let mut back = vec![0u8; size];
    for _ in 0..round_trips {
        stream.write_all(&msg).await?;
        stream.read_exact(&mut back).await?;
        assert_eq!(back, msg, "the echo changed bytes");
    }
    Ok(())
}

/// Connect, one byte each way, close, `connections` times in a row: connections/s.
pub async fn connection_rate(addr: SocketAddr, connections: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..connections {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        exchange(&mut stream, 1, 1).await.unwrap();
    }
    connections as f64 / start.elapsed().as_secs_f64()
}

/// `connections` clients at once, each doing `round_trips` 1 KiB exchanges: round trips/s
/// over all of them. Every connection is open before the first exchange starts.
pub async fn concurrent(addr: SocketAddr, connections: usize, round_trips: usize) -> f64 {
    let mut streams = Vec::with_capacity(connections);
    for _ in 0..connections {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        streams.push(stream);
    }
    let start = Instant::now();
    // A JoinSet, so that a measurement abandoned as stalled takes its clients with it.
    let mut tasks = tokio::task::JoinSet::new();
    for mut stream in streams {
        tasks.spawn(async move { exchange(&mut stream, 1024, round_trips).await });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a client task ends")
            .expect("every connection is served without error");
    }
    (connections * round_trips) as f64 / start.elapsed().as_secs_f64()
}

/// Opens `connections` connections that each exchange one byte (so the server has accepted
/// them and set up their streams) and then stay idle; they close when dropped.
pub async fn idle_connections(addr: SocketAddr, connections: usize) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(connections);
    for _ in 0..connections {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        exchange(&mut stream, 1, 1).await.unwrap();
        streams.push(stream);
    }
    streams
}

/// `datagrams` 64-byte datagrams, each waiting for its echo: datagrams/s. A datagram lost on
/// loopback (rare) is sent again after 100 ms, which shows in the figure rather than hiding.
pub async fn udp_ping_pong(addr: SocketAddr, datagrams: usize) -> f64 {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(addr).await.unwrap();
    let mut back = [0u8; 128];
    let start = Instant::now();
    for i in 0..datagrams {
        let msg = [(i % 251) as u8; 64];
        loop {
            socket.send(&msg).await.unwrap();
            match tokio::time::timeout(Duration::from_millis(100), socket.recv(&mut back)).await {
                Ok(n) => {
                    assert_eq!(&back[..n.unwrap()], &msg, "the echo changed the datagram");
                    break;
                }
                Err(_) => continue,
            }
        }
    }
    datagrams as f64 / start.elapsed().as_secs_f64()
}
